# shellcheck shell=bash disable=SC2034  # sourced; `status` is read by the scripts that source it
# Sourced by the GPU check scripts (run from the repository root, the bundle folder in $1): the
# bundle's libraries and binaries, $OUT for logs, a fresh $WORK, NCCL_NVLS_ENABLE=0 (never change
# the card's settings), and the helpers `step` (a heading) and `gtest NAME` (a bundled GPU unit
# test, XML and log under $OUT; a failure sets status=1).
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
