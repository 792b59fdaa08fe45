#!/usr/bin/env bash
# Builds the `shardcast` wheel (tools/build_wheel.sh: the client library, the CLI and their
# native dependencies inside it) and installs it for this machine's python3 (pip).
# Afterwards `python3 -c "import shardcast"` and the `shardcast` console script work.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
WHEEL=$(PYTHON="$PY" tools/build_wheel.sh)
"$PY" -m pip install -q --force-reinstall --no-deps "$WHEEL" 2>/dev/null \
  || "$PY" -m pip install -q --force-reinstall --no-deps --break-system-packages "$WHEEL"
(cd / && "$PY" -c "import shardcast; print('shardcast', shardcast.__version__, 'installed')")
