#!/usr/bin/env bash
# The GPU checks of everything between the checkpoint and a training rank's parameters, without
# the benchmarks of run_gpu_checks.sh (a few minutes on one GPU): the CUDA executor, the GPU
# CRC32C, the loader on the CUDA memory space, `shardcast reshard --device cuda` against the
# fixtures' expected shards, and PyTorch receiving into CUDA / CPU parameters through the Python
# package (CUDA IPC on the sidecar's GPU, NCCL from another GPU when there is one, the stream)
# compared bit for bit with dcp.load + slicing, timed against PyTorch's own way.
# Logs and results go to $OUT (default ./gpu_results). Keeps NCCL_NVLS_ENABLE=0.
#
#   deploy/gpu/run_data_plane_checks.sh [BUNDLE_DIR]
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
source deploy/gpu/common.sh "$@"  # BUNDLE, OUT, BIN, WORK, status, step, gtest

step "machine" | tee "$OUT/machine.txt"
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; nproc; } 2>&1 | tee -a "$OUT/machine.txt"
gpus=$(nvidia-smi --query-gpu=name --format=csv,noheader | wc -l)

step "GPU unit tests: CUDA executor, CRC32C kernel, loader on the CUDA memory space"
gtest cuda_executor_gpu_test
gtest device_crc32c_gpu_test
gtest batch_copy_gpu_test
mkdir -p "$WORK/srcdir" && ln -sfn "$PWD/$BUNDLE/fixtures" "$WORK/srcdir/shared_fixtures"  # as Bazel's runfiles
TEST_SRCDIR="$WORK/srcdir" gtest loader_gpu_test

step "shardcast reshard --device cuda: fixture shards vs expected.json"
SHARDCAST_BIN="$BIN/shardcast" SHARDCAST_FIXTURES="$PWD/$BUNDLE/fixtures" SHARDCAST_LAYOUT="$PWD/$BUNDLE/test_data/fixtures.layout" \
  SHARDCAST_GENERATOR="$PWD/tools/gen_synthetic_dcp.py" SHARDCAST_TEST_DEVICE=cuda \
  python3 tests/reshard_cli_test.py ReshardCli.test_every_shard_tp_1_2_4_matches_expected \
  ReshardCli.test_dtype_cast_to_fp32 2>&1 | tee "$OUT/reshard_cuda.log" | tail -3
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1

step "PyTorch receives into its parameters ($gpus GPU(s))"
devices="cuda:0,cpu"
[ "$gpus" -ge 2 ] && devices="cuda:1,cuda:0,cpu"
python3 tests/gpu/torch_receive_test.py --bundle "$BUNDLE" --out "$OUT/torch_receive" --devices "$devices" \
  2>&1 | tee "$OUT/torch_receive.log" | tail -14
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1

step "done: status $status"
exit $status
