#!/usr/bin/env bash
# Runs tests/megatron_test.py (real megatron-core through shardcast.megatron) in the Python 3.12
# venv of tools/setup_megatron.sh, not in Bazel's python: megatron-core 0.19.2 ships 3.12 wheels
# only. tools/test.sh creates the venv and exports its python; .bazelrc passes it to the test.
set -euo pipefail
py="${SHARDCAST_MEGATRON_PYTHON:-}"
if [ -z "$py" ] || [ ! -x "$py" ]; then
  echo "megatron_test: \$SHARDCAST_MEGATRON_PYTHON ('$py') is not the megatron venv's python. Run" >&2
  echo "  export SHARDCAST_MEGATRON_PYTHON=\$(bash tools/setup_megatron.sh)" >&2
  echo "then bazel test //tests:megatron_test (.bazelrc forwards the variable)." >&2
  exit 1
fi
export PYTHONWARNINGS=ignore  # megatron-core's deprecation and "Apex/TE not installed" chatter
exec "$py" "$(dirname "$0")/megatron_test.py" "$@"
