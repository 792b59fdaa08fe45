#!/usr/bin/env bash
# Issue 13's GPU measurements in one go (one GPU is enough), logs under $OUT:
#   the batched-copy and CRC32C kernels (gtests), the loader on the CUDA space, PyTorch's
#   load_into over CUDA IPC against the per-tensor D2D copy (tests/gpu/torch_receive_test.py),
#   where a receive spends its time (bench/ipc_profile.py, SHARDCAST_TRACE=1), and the sidecar's
#   cold start against a plain read (bench/cold_start.sh, --device cuda and cpu) with read_bench.
#
#   bench/gpu_issue13.sh [BUNDLE_DIR]     (from the repository root; needs root for drop_caches)
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
source deploy/gpu/common.sh "$@"  # BUNDLE, OUT, BIN, WORK, status, step, gtest

step "machine" | tee "$OUT/machine.txt"
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; nproc; } 2>&1 | tee -a "$OUT/machine.txt"

FINAL_OUT=$OUT
OUT="$WORK/logs" && mkdir -p "$OUT"  # everything goes in one archive at the end (few files come back)

step "the batched-copy kernel"
gtest batch_copy_gpu_test
ipc_receive_checks

step "cold start against a plain read (ViT-H-sized, 1 writer)"
ckpt="$WORK/vith"
python3 tools/gen_synthetic_dcp.py --preset vit-h --writers 1 "$ckpt" > "$OUT/gen.log" 2>&1 || status=1
for run in "cuda mpirun" "cuda none" "cpu mpirun" "cpu none" "cuda none --warm" "cpu none --warm"; do
  set -- $run
  name="cold_start.$1.$2${3:+.warm}"
  OUT="$OUT/$name" bash bench/cold_start.sh "$ckpt" --device "$1" --launcher "$2" ${3:-} --runs 3 --bin "$BIN" 2>&1 \
    | tee "$OUT/$name.log" | grep -v "^run" | sed 's/.*steps=/  /' | tail -5
done
"$BIN/read_bench" "$ckpt" --threads 8 --repeat 2 2>&1 | tee "$OUT/read_bench.log" | tail -4

step "done: status $status"
tar -czf "$FINAL_OUT/logs.tgz" -C "$WORK" logs
exit $status
