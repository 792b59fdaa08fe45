# shellcheck shell=bash disable=SC2034  # sourced; `status` is read by the scripts that source it
# Sourced by the GPU check scripts (run from the repository root, the bundle folder in $1): the
# bundle's libraries and binaries, $OUT for logs, a fresh $WORK, NCCL_NVLS_ENABLE=0 (never change
# the card's settings), and the helpers `step` (a heading) and `gtest NAME` (a bundled GPU unit
# test, XML and log under $OUT; a failure sets status=1), and `ipc_receive_checks` (the CUDA IPC
# receive: CRC32C and loader GPU tests, PyTorch's load_into bit-exact and timed, its trace).
BUNDLE=${1:-bundle}
OUT=${OUT:-gpu_results}
mkdir -p "$OUT"
export LD_LIBRARY_PATH="$PWD/$BUNDLE/lib:${LD_LIBRARY_PATH:-}"
export NCCL_NVLS_ENABLE=0
BIN="$PWD/$BUNDLE/bin"
WORK=${WORK:-/tmp/shardcast_gpu}
rm -rf "$WORK" && mkdir -p "$WORK"
status=0
step() { echo; echo "=== $* ==="; }
gtest() {
  "$BIN/$1" --gtest_output=xml:"$OUT/$1.xml" 2>&1 | tee "$OUT/$1.log" | tail -4
  [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
}
ipc_receive_checks() {
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
}
