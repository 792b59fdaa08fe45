#!/usr/bin/env bash
# Builds the libFuzzer targets, prepares their seed corpora and runs a fuzzing campaign.
#
#   tests/fuzz/run_fuzzers.sh [--sequential] [--keep-going] [--minimize] [--only NAME] [SECONDS]
#   tests/fuzz/run_fuzzers.sh --regressions
#
#   SECONDS        how long each fuzzer runs (-max_total_time); default 600
#   --sequential   run the fuzzers one after the other (default: all at once, one core each)
#   --keep-going   fork mode (-fork=1 -ignore_crashes=1 ...): keep fuzzing after a crash, so a
#                  known bug does not end the campaign; every crash still lands in artifacts/
#   --only NAME    run one fuzzer only (metadata, record, json or request)
#   --minimize     afterwards, shrink each corpus to the inputs that keep its coverage (-merge=1)
#   --regressions  build, then only replay the reproducers of reported bugs (make_regressions.py)
#                  through the fuzzers (-timeout=10); exits 1 while any still fails
#
# Needs clang (14 or newer) with libFuzzer and the sanitizer runtimes (Debian:
# clang-14 libclang-rt-14-dev), Debian's libabsl-dev, libre2-dev, libprotobuf-dev and
# protobuf-compiler (the request target), python3; `zstd` optional (seeds).
# Does not use Bazel. Everything it writes is git-ignored:
#   tests/fuzz/build/{metadata,record,request}_fuzzer   the binaries (ASan + UBSan + libFuzzer)
#   tests/fuzz/build/{metadata,record,request}.log      libFuzzer's output of the last run
#   tests/fuzz/build/artifacts/{metadata,record,request}/  crash-*, leak-*, timeout-*, oom-* inputs
#   tests/fuzz/build/gen/                       protoc's C++ for the request target
#   tests/fuzz/corpus_{metadata,record,request}/  the corpora (seeds + what the fuzzer kept;
#                                               they grow from run to run)
#   tests/fuzz/corpus_json/                     seeded from tests/fuzz/seeds_json/ and the
#                                               fixtures' *.json files
# Ends with a summary per fuzzer: executions, corpus size, new artifacts; exits 1 if any fuzzer
# produced a crash/leak/timeout/oom artifact during this run (or failed), 0 otherwise.
# Environment: CXX (default clang++), FIXTURES (default <repo>/../shared/fixtures, else
# /work/shared/fixtures), EXTRA_FUZZ_FLAGS (appended to every libFuzzer command line). The
# request target plans against $FIXTURES/dcp-torch2.11/vit_tp2/.metadata (SHARDCAST_FUZZ_METADATA).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
BUILD="$HERE/build"
CXX="${CXX:-clang++}"
if [[ -z "${FIXTURES:-}" ]]; then
  FIXTURES="$ROOT/../shared/fixtures"
  [[ -d "$FIXTURES" ]] || FIXTURES=/work/shared/fixtures
fi

SECONDS_EACH=600
PARALLEL=1
KEEP_GOING=0
MINIMIZE=0
REGRESSIONS=0
ONLY=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --sequential) PARALLEL=0 ;;
    --parallel) PARALLEL=1 ;;
    --keep-going) KEEP_GOING=1 ;;
    --only) ONLY="$2"; shift ;;
    --minimize) MINIMIZE=1 ;;
    --regressions) REGRESSIONS=1 ;;
    -h|--help) sed -n '2,33p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    [0-9]*) SECONDS_EACH="$1" ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

FUZZERS=(metadata record json request)
[[ -n "$ONLY" ]] && FUZZERS=("$ONLY")

# ---- build ------------------------------------------------------------------------------------
ABSL_LIBS="$(pkg-config --libs absl_status absl_statusor absl_strings absl_str_format absl_hash absl_raw_hash_set)"
REQUEST_LIBS="$(pkg-config --libs protobuf re2)"
# shellcheck disable=SC2054  # the commas belong to -fsanitize=
CXXFLAGS=(-std=c++17 -O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined
          -fno-sanitize-recover=all -I"$ROOT" -I"$BUILD/gen")
declare -A SOURCES=(
  [metadata]="tests/fuzz/metadata_fuzzer.cc checkpoint/pickle.cc checkpoint/metadata_parser.cc checkpoint/torch_record.cc common/box.cc common/dtype.cc"
  [record]="tests/fuzz/record_fuzzer.cc checkpoint/pickle.cc checkpoint/torch_record.cc checkpoint/region_copy.cc common/box.cc common/dtype.cc"
  [request]="tests/fuzz/request_fuzzer.cc tests/fuzz/build/gen/proto/shardcast/v1/shardcast.pb.cc proto/request_convert.cc common/shard_request.cc reshard/layout.cc reshard/layout_cache.cc reshard/planner.cc checkpoint/pickle.cc checkpoint/metadata_parser.cc checkpoint/torch_record.cc common/box.cc common/dtype.cc"
  [json]="tests/fuzz/json_fuzzer.cc common/json.cc common/text_escape.cc"
)
declare -A EXTRA_LIBS=([request]="$REQUEST_LIBS")
declare -A MAX_LEN=([metadata]=65536 [record]=1048576 [request]=65536 [json]=2048)

mkdir -p "$BUILD"
for f in "${FUZZERS[@]}"; do
  if [[ "$f" == request ]]; then
    mkdir -p "$BUILD/gen"
    (cd "$ROOT" && protoc -I. --cpp_out="$BUILD/gen" proto/shardcast/v1/shardcast.proto)
  fi
done
echo "== building with $("$CXX" --version | head -1)"
build_pids=()
for f in "${FUZZERS[@]}"; do
  [[ -n "${SOURCES[$f]:-}" ]] || { echo "unknown fuzzer '$f'" >&2; exit 2; }
  # shellcheck disable=SC2086  # word splitting of the source list and the link flags is intended
  (cd "$ROOT" && nice -n 10 "$CXX" "${CXXFLAGS[@]}" ${SOURCES[$f]} -o "$BUILD/${f}_fuzzer" $ABSL_LIBS ${EXTRA_LIBS[$f]:-} \
     > "$BUILD/${f}_build.log" 2>&1) &
  build_pids+=($!)
done
for i in "${!build_pids[@]}"; do
  if ! wait "${build_pids[$i]}"; then
    echo "build of ${FUZZERS[$i]}_fuzzer failed:" >&2
    cat "$BUILD/${FUZZERS[$i]}_build.log" >&2
    exit 2
  fi
done
echo "   built: $(for f in "${FUZZERS[@]}"; do printf 'tests/fuzz/build/%s_fuzzer ' "$f"; done)"

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:symbolize=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1:symbolize=1}"

# ---- regressions only (optional) --------------------------------------------------------------
if [[ "$REGRESSIONS" == 1 ]]; then
  python3 "$HERE/make_regressions.py" "$BUILD/regressions"
  status=0
  for f in "${FUZZERS[@]}"; do
    for input in "$BUILD/regressions/$f"-*; do
      [[ -e "$input" && "$input" != *.log ]] || continue
      if "$BUILD/${f}_fuzzer" -timeout=10 -rss_limit_mb=2048 "$input" > "$input.log" 2>&1; then
        echo "   fixed:  ${input#"$ROOT"/}"
      else
        echo "   FAILS:  ${input#"$ROOT"/}  ($(grep -a -m1 -E 'runtime error|ERROR|INVARIANT' "$input.log" | cut -c1-150))"
        status=1
      fi
    done
  done
  exit "$status"
fi

# ---- seeds ------------------------------------------------------------------------------------
echo "== seeds from $FIXTURES"
python3 "$HERE/prepare_corpora.py" "$FIXTURES" "$HERE/corpus_metadata" "$HERE/corpus_record"
python3 "$HERE/request_seeds.py" "$HERE/corpus_request"
export SHARDCAST_FUZZ_METADATA="${SHARDCAST_FUZZ_METADATA:-$FIXTURES/dcp-torch2.11/vit_tp2/.metadata}"
mkdir -p "$HERE/corpus_json"
cp "$HERE"/seeds_json/* "$HERE/corpus_json/"
find "$FIXTURES" -name '*.json' -size -64k -exec cp {} "$HERE/corpus_json/" \;

# ---- fuzz -------------------------------------------------------------------------------------
STAMP="$BUILD/.run_started"
touch "$STAMP"
sleep 1  # artifacts of this run are strictly newer than the stamp

run_one() {
  local f="$1" corpus="$HERE/corpus_$1" art="$BUILD/artifacts/$1/"
  mkdir -p "$art"
  local mode=()
  if [[ "$KEEP_GOING" == 1 ]]; then
    mode=(-fork=1 -ignore_crashes=1 -ignore_ooms=1 -ignore_timeouts=1)
  fi
  # shellcheck disable=SC2086
  nice -n 10 "$BUILD/${f}_fuzzer" "$corpus" \
    -max_total_time="$SECONDS_EACH" -max_len="${MAX_LEN[$f]}" -rss_limit_mb=2048 -timeout=30 \
    -dict="$HERE/$f.dict" -artifact_prefix="$art" -print_final_stats=1 "${mode[@]}" ${EXTRA_FUZZ_FLAGS:-} \
    > "$BUILD/$f.log" 2>&1
}

echo "== fuzzing ${FUZZERS[*]} for ${SECONDS_EACH}s each ($([[ $PARALLEL == 1 ]] && echo parallel || echo sequential)$([[ $KEEP_GOING == 1 ]] && echo ', keep-going'))"
declare -A RC
if [[ "$PARALLEL" == 1 ]]; then
  declare -A PIDS
  for f in "${FUZZERS[@]}"; do run_one "$f" & PIDS[$f]=$!; done
  for f in "${FUZZERS[@]}"; do
    if wait "${PIDS[$f]}"; then RC[$f]=0; else RC[$f]=$?; fi
  done
else
  for f in "${FUZZERS[@]}"; do
    if run_one "$f"; then RC[$f]=0; else RC[$f]=$?; fi
  done
fi

# ---- corpus minimization (optional) ----------------------------------------------------------
if [[ "$MINIMIZE" == 1 ]]; then
  for f in "${FUZZERS[@]}"; do
    corpus="$HERE/corpus_$f"
    before="$(find "$corpus" -type f | wc -l)"
    rm -rf "$corpus.min" && mkdir -p "$corpus.min"
    if nice -n 10 "$BUILD/${f}_fuzzer" -merge=1 -max_len="${MAX_LEN[$f]}" -rss_limit_mb=2048 -timeout=30 \
         "$corpus.min" "$corpus" > "$BUILD/${f}_merge.log" 2>&1; then
      rm -rf "$corpus" && mv "$corpus.min" "$corpus"
      echo "== minimized corpus_$f: $before -> $(find "$corpus" -type f | wc -l) files"
    else
      rm -rf "$corpus.min"
      echo "== minimizing corpus_$f failed (see build/${f}_merge.log); corpus left as is" >&2
    fi
  done
fi

# ---- summary ----------------------------------------------------------------------------------
status=0
echo "== summary"
printf '%-9s %14s %12s %8s  %s\n' fuzzer executions corpus_files rc findings
for f in "${FUZZERS[@]}"; do
  log="$BUILD/$f.log"
  # Normal mode: the final stats. Fork mode: the last "#N: cov: ..." progress line.
  execs="$(grep -a 'stat::number_of_executed_units:' "$log" | tail -1 | awk '{print $2}' || true)"
  if [[ -z "$execs" ]]; then
    execs="$(grep -aE '^#[0-9]+: cov:' "$log" | tail -1 | sed -E 's/^#([0-9]+):.*/\1/' || true)"
  fi
  corpus_files="$(find "$HERE/corpus_$f" -type f | wc -l)"
  mapfile -t found < <(find "$BUILD/artifacts/$f" -type f -newer "$STAMP" \
                         \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \) | sort)
  slow="$(find "$BUILD/artifacts/$f" -type f -newer "$STAMP" -name 'slow-unit-*' | wc -l)"
  if [[ ${#found[@]} -gt 0 ]]; then
    findings="${#found[@]} artifact(s)"
    status=1
  elif [[ "${RC[$f]}" != 0 ]]; then
    findings="fuzzer exited ${RC[$f]} without an artifact (see the log)"
    status=1
  else
    findings="none"
  fi
  if [[ "$slow" != 0 ]]; then findings="$findings; $slow slow unit(s)"; fi
  printf '%-9s %14s %12s %8s  %s\n' "$f" "${execs:-?}" "$corpus_files" "${RC[$f]}" "$findings"
  grep -a -E '^#[0-9]+.*DONE|^Done [0-9]+ runs' "$log" | tail -1 | sed 's/^/          libFuzzer: /' || true
  for a in "${found[@]}"; do echo "          artifact: ${a#"$ROOT"/}"; done
  echo "          log: ${log#"$ROOT"/}"
done
exit "$status"
