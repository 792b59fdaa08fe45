#!/usr/bin/env bash
# Packs the fuzzers for a campaign on a bigger machine that has neither clang nor Debian's
# libraries (e.g. the 16-core GPU host): the binaries that run_fuzzers.sh built, their seed
# corpora and dictionaries, the fixture metadata the request target plans against, and the
# shared libraries they load that a bare Ubuntu host lacks (Abseil, RE2, Protobuf, libdeflate).
#
#   tests/fuzz/run_fuzzers.sh 5                # build + seed here (a 5 s run per target)
#   tests/fuzz/pack_for_host.sh DIR            # DIR: a folder to carry to the host
#   DIR/campaign.sh SECONDS NAME=FORKS ...     # there: libFuzzer fork mode, FORKS workers each
#
# campaign.sh runs the targets at once, each `-fork=FORKS -max_total_time=SECONDS`, writes
# LOGDIR/NAME.log (LOGDIR: $OUT if set, else DIR/logs), and prints per target the executions
# (the last `#N:` line of fork mode), the oom/timeout/crash counts and any artifact; it exits 1
# if any target found something.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DEST="${1:?usage: pack_for_host.sh DIR}"
BUILD="$HERE/build"
FIXTURES="${FIXTURES:-$HERE/../../../shared/fixtures}"
[[ -d "$FIXTURES" ]] || FIXTURES=/work/shared/fixtures
ls "$BUILD"/*_fuzzer > /dev/null || { echo "no fuzzers in $BUILD: run tests/fuzz/run_fuzzers.sh first" >&2; exit 2; }
rm -rf "$DEST" && mkdir -p "$DEST/bin" "$DEST/lib"
for f in "$BUILD"/*_fuzzer; do
  name=$(basename "$f" _fuzzer)
  cp "$f" "$DEST/bin/"
  cp "$HERE/$name.dict" "$DEST/" 2>/dev/null || true
  [[ -d "$HERE/corpus_$name" ]] && cp -r "$HERE/corpus_$name" "$DEST/"
done
for f in "$DEST"/bin/*; do ldd "$f" | awk '/=> \// {print $3}'; done | sort -u | while read -r lib; do
  case "$(basename "$lib")" in
    libabsl_*|libre2*|libprotobuf*|libdeflate*) cp -L "$lib" "$DEST/lib/" ;;
  esac
done
cp "$FIXTURES/dcp-torch2.11/vit_tp2/.metadata" "$DEST/request.metadata"
cat > "$DEST/campaign.sh" <<'SH'
#!/usr/bin/env bash
# campaign.sh SECONDS NAME=FORKS ... (see tests/fuzz/pack_for_host.sh)
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SECS="$1"; shift
LOGS="${OUT:-$HERE/logs}"; mkdir -p "$LOGS"
export LD_LIBRARY_PATH="$HERE/lib:${LD_LIBRARY_PATH:-}"
export SHARDCAST_FUZZ_METADATA="$HERE/request.metadata"
export ASAN_OPTIONS="detect_leaks=1:symbolize=1" UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
declare -A MAX_LEN=([metadata]=65536 [record]=1048576 [request]=65536 [json]=2048)
pids=()
for spec in "$@"; do
  name="${spec%%=*}"; forks="${spec#*=}"
  mkdir -p "$LOGS/artifacts_$name" "$HERE/corpus_$name"
  dict=(); [[ -f "$HERE/$name.dict" ]] && dict=(-dict="$HERE/$name.dict")
  "$HERE/bin/${name}_fuzzer" "$HERE/corpus_$name" -fork="$forks" -max_total_time="$SECS" \
    -max_len="${MAX_LEN[$name]:-65536}" -rss_limit_mb=2048 -timeout=30 "${dict[@]}" \
    -artifact_prefix="$LOGS/artifacts_$name/" > "$LOGS/$name.log" 2>&1 &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || true; done
status=0
printf '%-9s %6s %14s %18s  %s\n' target forks executions oom/timeout/crash artifacts
for spec in "$@"; do
  name="${spec%%=*}"; forks="${spec#*=}"
  last=$(grep -aE '^#[0-9]+: cov:' "$LOGS/$name.log" | tail -1)
  execs=$(sed -E 's/^#([0-9]+):.*/\1/' <<< "$last")
  otc=$(grep -oE 'oom/timeout/crash: [0-9]+/[0-9]+/[0-9]+' <<< "$last" | awk '{print $2}')
  arts=$(find "$LOGS/artifacts_$name" -type f | wc -l)
  [[ "$arts" != 0 || -z "$execs" ]] && status=1
  printf '%-9s %6s %14s %18s  %s\n' "$name" "$forks" "${execs:-?}" "${otc:-?}" "$arts"
done
exit $status
SH
chmod +x "$DEST/campaign.sh"
du -sh "$DEST" >&2
echo "packed: $DEST" >&2
