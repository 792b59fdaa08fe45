#!/usr/bin/env bash
# The CUDA IPC receive alone (issue 13, goal 1), short enough for a small device budget; logs in
# $OUT/logs.tgz: the GPU CRC32C check (device_crc32c_gpu_test), the loader on the CUDA space
# (loader_gpu_test), PyTorch's load_into over CUDA
# IPC for TP 1/2/4, every rank, bit-exact against dcp.load + slicing and timed against the
# per-tensor D2D copy (tests/gpu/torch_receive_test.py --devices cuda:0), and where a receive
# spends its time (bench/ipc_profile.py, SHARDCAST_TRACE=1). bench/gpu_issue13.sh adds the kernels
# and the cold starts.
#
#   bench/gpu_ipc_receive.sh [BUNDLE_DIR]     (from the repository root)
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
source deploy/gpu/common.sh "$@"  # BUNDLE, OUT, BIN, WORK, status, step, gtest
FINAL_OUT=$OUT
OUT="$WORK/logs" && mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/machine.txt" 2>&1

ipc_receive_checks

step "done: status $status"
tar -czf "$FINAL_OUT/logs.tgz" -C "$WORK" logs
exit $status
