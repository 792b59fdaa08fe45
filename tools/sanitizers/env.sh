#!/usr/bin/env bash
# Test wrapper of the sanitizer configs (.bazelrc: `test:asan --run_under=//tools/sanitizers:env`,
# same for tsan): sets the runtime options for the test and every process it starts (shardcastd
# ranks under mpirun, the CLI), then runs the test. $SHARDCAST_SANITIZER (asan|tsan) comes from
# the config. The one place where the options live; README "Testing" explains the choices.
#
# If $SHARDCAST_SANITIZER_LOG_DIR is set (tools/test.sh sets it), reports go to files there
# (<dir>/<kind>.<exe>.<pid>) instead of stderr, so that a report from a process the test never
# checks (a shardcastd rank, whose output goes to a temporary log) is still seen: ci_summary.py
# counts each file as a failure and prints it.
set -euo pipefail
here=$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")
kind=${SHARDCAST_SANITIZER:?"set by .bazelrc (--config=asan or --config=tsan)"}
log=""
if [ -n "${SHARDCAST_SANITIZER_LOG_DIR:-}" ]; then
  mkdir -p "$SHARDCAST_SANITIZER_LOG_DIR"
  log=":log_path=$SHARDCAST_SANITIZER_LOG_DIR/$kind:log_exe_name=1"
fi
case "$kind" in
  asan)
    # protect_shadow_gap=0: cudart maps memory in ASan's shadow gap (needed even without a GPU).
    export ASAN_OPTIONS="protect_shadow_gap=0:detect_leaks=1:check_initialization_order=1:detect_stack_use_after_return=1:strict_string_checks=1:halt_on_error=1${log}"
    export LSAN_OPTIONS="suppressions=$here/lsan.supp:print_suppressions=0"
    # -fno-sanitize-recover makes every UBSan finding fatal; the options add a stack trace.
    export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1${log}"
    runtime=libasan.so
    # Jobs started with `mpirun` (shardcastd ranks) also get fast_unwind_on_malloc=0: Debian's Open
    # MPI has no frame pointers, the fast unwinder stops in it, and lsan.supp could not see that a
    # leak comes from MPI_Init. Only there: it makes every malloc slow (timing bounds of other tests).
    if real_mpirun=$(command -v mpirun); then
      shim=$(mktemp -d "${TEST_TMPDIR:-/tmp}/sanitizer-mpirun.XXXXXX")
      printf '#!/bin/sh\nASAN_OPTIONS="$ASAN_OPTIONS:fast_unwind_on_malloc=0" exec %s "$@"\n' "$real_mpirun" > "$shim/mpirun"
      chmod +x "$shim/mpirun"
      export PATH="$shim:$PATH"
    fi
    ;;
  tsan)
    export TSAN_OPTIONS="suppressions=$here/tsan.supp:ignore_noninstrumented_modules=1:second_deadlock_stack=1:history_size=4${log}"
    runtime=libtsan.so
    ;;
  *) echo "env.sh: unknown SHARDCAST_SANITIZER=$kind" >&2; exit 2 ;;
esac
# Python tests load libshardcast_client.so with ctypes into an uninstrumented python; the runtime
# must be loaded first. tests/junit_unittest.py re-executes the test's python with this LD_PRELOAD
# (and only that process: the processes it starts do not inherit it).
SHARDCAST_SANITIZER_PRELOAD=$(readlink -f "$(${CC:-gcc} -print-file-name=$runtime)")
export SHARDCAST_SANITIZER_PRELOAD
exec "$@"
