#!/usr/bin/env bash
# Builds the `shardcast` wheel (tools/build_wheel.sh: the client library, the CLI and their
# native dependencies inside it) and installs it for this machine's python3 (pip).
# Afterwards `python3 -c "import shardcast"` and the `shardcast` console script work.
# PYTHON picks the interpreter to install into (e.g. a venv's); the wheel is built with python3.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
WHEEL=$(env -u PYTHON tools/build_wheel.sh)
"$PY" -m pip install -q --force-reinstall --no-deps "$WHEEL" 2>/dev/null \
  || "$PY" -m pip install -q --force-reinstall --no-deps --break-system-packages "$WHEEL"
(cd / && "$PY" -c "import shardcast; print('shardcast', shardcast.__version__, 'installed')")
