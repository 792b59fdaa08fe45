#!/usr/bin/env bash
# Builds libshardcast_client.so and installs the `shardcast` Python package for this machine's
# python3 (pip). Afterwards `python3 -c "import shardcast"` works.
set -euo pipefail
cd "$(dirname "$0")/.."
bazel build -c opt --color=no --curses=no //client:libshardcast_client.so >&2
mkdir -p python/shardcast/_lib
install -m 0755 bazel-bin/client/libshardcast_client.so python/shardcast/_lib/
PY=${PYTHON:-python3}
"$PY" -m pip install -q --force-reinstall --no-deps ./python 2>/dev/null \
  || "$PY" -m pip install -q --force-reinstall --no-deps --break-system-packages ./python
"$PY" -c "import shardcast; print('shardcast', shardcast.__version__, 'installed')"
