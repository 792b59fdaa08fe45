#!/usr/bin/env bash
# Runs the whole test suite as CI does: installs what is missing (tools/setup.sh), then three phases,
#   normal  bazel test //...                  every test, normal build
#   asan    bazel test --config=asan //...    every test under AddressSanitizer + UBSan
#   tsan    bazel test --config=tsan //...    the tests tagged "service" (they start shardcastd)
#                                             under ThreadSanitizer
# each config in its own output tree (.bazelrc), then prints the count of test cases per phase and,
# last, of all phases: `N passed, N failed` (non-zero exit on any failure or sanitizer report).
# Extra arguments go to every bazel test (e.g. a narrower pattern: tools/test.sh //checkpoint/...).
# SHARDCAST_CI_PHASES picks phases (default "normal asan tsan"; e.g. SHARDCAST_CI_PHASES=normal).
set -uo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh >&2 || { echo "setup failed"; echo "0 passed, 1 failed"; exit 1; }
# The Python 3.12 venv with megatron-core that //tests:megatron_test runs in (cached; .bazelrc passes it).
SHARDCAST_MEGATRON_PYTHON=$(bash tools/setup_megatron.sh | tail -n 1) \
  || { echo "setup_megatron failed"; echo "0 passed, 1 failed"; exit 1; }
export SHARDCAST_MEGATRON_PYTHON
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(//...)
phases=(${SHARDCAST_CI_PHASES:-normal asan tsan})
logs=$(mktemp -d "${TMPDIR:-/tmp}/shardcast-ci.XXXXXX")  # sanitizer reports, one folder per phase
summary=()
for phase in "${phases[@]}"; do
  case "$phase" in
    normal) config=() ;;
    asan|tsan) config=(--config="$phase") ;;
    *) echo "unknown phase '$phase' in SHARDCAST_CI_PHASES"; echo "0 passed, 1 failed"; exit 1 ;;
  esac
  echo "==== phase $phase: bazel test ${config[*]} ${targets[*]}" >&2
  start=$(date +%s)
  SHARDCAST_SANITIZER_LOG_DIR="$logs/$phase" \
    bazel test "${config[@]}" --color=no --curses=no --nocache_test_results "${targets[@]}"
  rc=$?
  secs=$(( $(date +%s) - start ))
  echo "==== phase $phase: bazel exited $rc after $secs s" >&2
  testlogs=$(bazel info "${config[@]}" bazel-testlogs 2>/dev/null) || testlogs=bazel-testlogs
  summary+=(--phase "$phase" "$testlogs" "$((start - 1))" "$rc" "$secs" "$logs/$phase")
done
echo "==== sanitizer reports, if any: $logs/<phase>/" >&2
python3 tools/ci_summary.py "${summary[@]}"
