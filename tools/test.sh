#!/usr/bin/env bash
# Runs the whole test suite: installs what is missing (tools/setup.sh), then `bazel test //...`,
# then prints the count of test cases: `N passed, N failed` (non-zero exit on any failure).
# Extra arguments go to bazel test (e.g. a narrower pattern: tools/test.sh //checkpoint/...).
set -uo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh >&2 || { echo "setup failed"; echo "0 passed, 1 failed"; exit 1; }
start=$(date +%s)
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(//...)
bazel test --color=no --curses=no --nocache_test_results "${targets[@]}"
rc=$?
# bazel exits 3 when tests failed (counted from their XML) and 1/2 on build or usage errors.
build_failed=()
[ $rc -ne 0 ] && [ $rc -ne 3 ] && build_failed=(--build-failed)
python3 tools/ci_summary.py --since "$((start - 1))" "${build_failed[@]}"
