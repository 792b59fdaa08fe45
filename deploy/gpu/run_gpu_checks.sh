#!/usr/bin/env bash
# Runs shardcast's GPU checks and benchmarks on a GPU host from a bundle made by
# deploy/bundle/make_gpu_bundle.sh (no Bazel needed there). Logs and JSON results go to $OUT
# (default ./gpu_results). Needs python3; the PyTorch cross-checks need torch (skipped with a
# message if absent). Keeps NCCL_NVLS_ENABLE=0 and never changes the card's settings.
#
#   deploy/gpu/run_gpu_checks.sh [BUNDLE_DIR]
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
source deploy/gpu/common.sh "$@"  # BUNDLE, OUT, BIN, WORK, status, step, gtest

step "machine" | tee "$OUT/machine.txt"
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; nproc; free -g | head -2; df -h /tmp | tail -1; } \
  2>&1 | tee -a "$OUT/machine.txt"

step "CUDA executor vs CPU reference (random shapes, dtypes, casts; poisoned outputs)"
"$BIN/cuda_executor_gpu_test" --gtest_output=xml:"$OUT/cuda_executor_gpu_test.xml" 2>&1 | tee "$OUT/cuda_executor_gpu_test.log" | tail -8
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1

step "CRC32C on the GPU vs the host CRC32C"
"$BIN/device_crc32c_gpu_test" --gtest_output=xml:"$OUT/device_crc32c_gpu_test.xml" 2>&1 | tee "$OUT/device_crc32c_gpu_test.log" | tail -6
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1

step "the loader on the CUDA memory space vs the host loader (bytes and CRCs, TP 2, two ranks)"
mkdir -p "$WORK/srcdir" && ln -sfn "$PWD/$BUNDLE/fixtures" "$WORK/srcdir/shared_fixtures"  # as Bazel's runfiles
TEST_SRCDIR="$WORK/srcdir" "$BIN/loader_gpu_test" --gtest_output=xml:"$OUT/loader_gpu_test.xml" 2>&1 | tee "$OUT/loader_gpu_test.log" | tail -6
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1

step "PyTorch receives into CUDA parameters (NCCL, CUDA IPC, stream) vs dcp.load + slicing"
if python3 -c "import torch" 2>/dev/null; then
  python3 tests/gpu/torch_receive_test.py --bundle "$BUNDLE" --out "$OUT/torch_receive" 2>&1 | tee "$OUT/torch_receive.log" | tail -12
  [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
  step "the toy Megatron warm-start job (2 GPUs)"
  examples/megatron_warmstart/run_toy.sh --bundle "$BUNDLE" --out "$OUT/toy" 2>&1 | tee "$OUT/toy.log" | tail -14
  [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
else
  echo "torch not importable here: skipped" | tee "$OUT/torch_receive.log"
fi

step "kernel vs cudaMemcpy (RADIO-H bf16 row-parallel slices)"
"$BIN/kernel_bench" --iters 100 | tee "$OUT/kernel_bench.txt"
"$BIN/kernel_bench" --iters 100 --json > "$OUT/kernel_bench.json" || status=1

step "shardcast reshard --device cuda: every fixture shard vs expected.json"
SHARDCAST_BIN="$BIN/shardcast" SHARDCAST_FIXTURES="$PWD/$BUNDLE/fixtures" SHARDCAST_LAYOUT="$PWD/$BUNDLE/test_data/fixtures.layout" \
  SHARDCAST_GENERATOR="$PWD/tools/gen_synthetic_dcp.py" SHARDCAST_TEST_DEVICE=cuda \
  python3 tests/reshard_cli_test.py ReshardCli.test_every_shard_tp_1_2_4_matches_expected \
  ReshardCli.test_tp3_shards_of_the_tensors_that_divide ReshardCli.test_megatron_preset_with_fixture_overrides \
  ReshardCli.test_stacked_unstack_equals_per_layer ReshardCli.test_dtype_cast_to_fp32 2>&1 | tee "$OUT/reshard_cuda.log" | tail -4
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1

step "generator proven by PyTorch dcp.load"
if python3 -c "import torch" 2>/dev/null; then
  python3 tools/check_synthetic_with_torch.py --generate 2>&1 | tee "$OUT/torch_check.log" | tail -3
  [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
else
  echo "torch not importable here: skipped" | tee "$OUT/torch_check.log"
fi

step "read benchmark: ViT-H-sized checkpoint (1.26 GB bf16), cold and warm"
python3 tools/gen_synthetic_dcp.py "$WORK/vith" --preset vit-h --writers 2 --force | tail -1
"$BIN/shardcast" inspect "$WORK/vith" --digest --json > "$WORK/vith.inspect.json" && python3 - "$WORK" <<'PY' | tee "$OUT/vith_digest_check.txt"
import json, sys
w = sys.argv[1]
exp = json.load(open(w + "/vith.expected.json"))["tensors"]
got = json.load(open(w + "/vith.inspect.json"))["tensors"]
bad = [t["key"] for t in got if t["sha256"] != exp[t["key"]]["sha256"]]
print("vit-h digests: %d tensors, %d mismatches" % (len(got), len(bad)))
sys.exit(1 if bad or len(got) != len(exp) else 0)
PY
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
for t in 4 8 16; do
  "$BIN/read_bench" "$WORK/vith" --threads $t --repeat 3 | tee -a "$OUT/read_bench.txt"
  "$BIN/read_bench" "$WORK/vith" --threads $t --repeat 3 --json > "$OUT/read_bench_t$t.json"
done

step "read benchmark: the encoder out of a whole-VLM checkpoint (--prefix), decoy 3 GB"
python3 tools/gen_synthetic_dcp.py "$WORK/vlm" --preset vit-h --writers 2 --with-llm-decoy 3000 --force | tail -1
"$BIN/read_bench" "$WORK/vlm" --prefix model.vision_model. --threads 8 --repeat 3 | tee "$OUT/read_bench_prefix.txt"
"$BIN/read_bench" "$WORK/vlm" --prefix model.vision_model. --threads 8 --repeat 3 --json > "$OUT/read_bench_prefix.json"

rm -rf "$WORK"
echo
echo "gpu checks: $([ $status -eq 0 ] && echo PASSED || echo FAILED)"
exit $status
