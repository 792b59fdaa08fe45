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

step "the CRC32C check and the loader on the GPU"
gtest device_crc32c_gpu_test
mkdir -p "$WORK/srcdir" && ln -sfn "$PWD/$BUNDLE/fixtures" "$WORK/srcdir/shared_fixtures"
TEST_SRCDIR="$WORK/srcdir" gtest loader_gpu_test

step "PyTorch load_into over CUDA IPC, timed against the per-tensor D2D copy"
python3 tests/gpu/torch_receive_test.py --bundle "$BUNDLE" --out "$OUT/torch_receive" --devices cuda:0 \
  2>&1 | tee "$OUT/torch_receive.log" | tail -16
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1

step "where a CUDA IPC receive spends its time"
SHARDCAST_TRACE=1 python3 bench/ipc_profile.py --bundle "$BUNDLE" > "$OUT/ipc_profile.log" 2>&1 || status=1
grep -v "^  model\|LayoutWarning\|return self" "$OUT/ipc_profile.log" | tail -12

step "done: status $status"
tar -czf "$FINAL_OUT/logs.tgz" -C "$WORK" logs
exit $status
