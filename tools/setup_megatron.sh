#!/usr/bin/env bash
# Creates, once, the Python 3.12 virtual environment in which tests/megatron_test.py and
# tests/megatron/save_checkpoints.py run real megatron-core (pinned) with PyTorch on the CPU, and
# prints that environment's python (the last line of stdout; progress goes to stderr).
#
#   export SHARDCAST_MEGATRON_PYTHON=$(bash tools/setup_megatron.sh)
#
# megatron-core 0.19.2 ships Python 3.12 wheels only. The interpreter is, in this order:
# $SHARDCAST_PYTHON312, pyenv's newest ~/.pyenv/versions/3.12.*, `python3.12` on PATH. Without one
# it fails, saying what to install (no silent skip).
#
# The venv lives outside the repository, in ${SHARDCAST_CACHE:-${XDG_CACHE_HOME:-~/.cache}/shardcast}
# /megatron-venv-<hash of the interpreter version and the pins>: a change of pins makes a new one.
# A finished venv carries a stamp file; a second run only checks it (well under a second).
#
# PyTorch: PyPI's Linux torch wheel is built against CUDA and its shared libraries (libtorch_cuda,
# libtorch_python) have the CUDA libraries in DT_NEEDED, so `pip install --no-deps torch` cannot
# even `import torch` (measured: "libcufile.so.0: cannot open shared object file"); CPU-only wheels
# are not on PyPI. triton (188 MB) is imported by megatron.core itself (moe/ops/paged_stash.py, at
# `import megatron.core`), so it stays too. What is left out is what nothing here loads:
# cuda-bindings, cuda-pathfinder and nvtx (about 9 MB): the set is, in practice, torch's own.
# Everything is pinned and installed with --no-deps so the set is the same on every machine.
# Measured on this machine (2 cores, PyPI): 2.7 GB downloaded (torch 531 MB, cublas 423, cudnn
# 366, cufft 214, cusolver 201, nccl 197, triton 188, cusparselt 170, cusparse 146, the rest
# < 100 each), 4.7 GB installed; cold (no venv, nothing in pip's cache) 82 s on an otherwise idle
# machine, 2 m 16 s to 3 m 17 s with builds and tests sharing the 2 cores; warm (the venv exists)
# 0.07 s.
set -euo pipefail

PINS=(
  "torch==2.11.0" "triton==3.6.0"
  # What torch 2.11.0 links (DT_NEEDED of libtorch_cuda.so / libtorch_python.so), at torch's pins.
  "nvidia-cublas==13.1.0.3" "nvidia-cuda-cupti==13.0.85" "nvidia-cuda-nvrtc==13.0.88"
  "nvidia-cuda-runtime==13.0.96" "nvidia-cudnn-cu13==9.19.0.56" "nvidia-cufft==12.0.0.61"
  "nvidia-cufile==1.15.1.6" "nvidia-curand==10.4.0.35" "nvidia-cusolver==12.0.4.66"
  "nvidia-cusparse==12.6.3.3" "nvidia-cusparselt-cu13==0.8.0" "nvidia-nccl-cu13==2.28.9"
  "nvidia-nvjitlink==13.0.88" "nvidia-nvshmem-cu13==3.4.5"
  # torch's pure-Python dependencies.
  "filelock==4.3.1" "typing-extensions==4.16.0" "setuptools==81.0.0" "sympy==1.14.0" "mpmath==1.3.0"
  "networkx==3.7" "jinja2==3.1.6" "markupsafe==3.0.4" "fsspec==2026.9.0"
  # megatron-core and what it needs to import dist_checkpointing, GPT and RADIO.
  "megatron-core==0.19.2" "numpy==2.5.5" "packaging==26.4"
  # dist_checkpointing.save's writer needs psutil (it fails on its first write without it).
  "psutil==7.2.2"
)

log() { echo "setup_megatron: $*" >&2; }

find_python312() {
  local cand
  if [ -n "${SHARDCAST_PYTHON312:-}" ]; then
    echo "$SHARDCAST_PYTHON312"
    return
  fi
  local root="${PYENV_ROOT:-$HOME/.pyenv}"
  cand=$(ls -d "$root"/versions/3.12.* 2>/dev/null | sort -V | tail -n 1 || true)
  if [ -n "$cand" ] && [ -x "$cand/bin/python3.12" ]; then
    echo "$cand/bin/python3.12"
    return
  fi
  if command -v python3.12 >/dev/null 2>&1; then
    command -v python3.12
    return
  fi
  log "no Python 3.12 found (megatron-core 0.19.2 ships Python 3.12 wheels only)."
  log "install one, e.g. 'pyenv install 3.12' or 'apt-get install python3.12 python3.12-venv'"
  log "(Debian 13 / Ubuntu 24.04), or name one with SHARDCAST_PYTHON312=/path/to/python3.12."
  exit 1
}

PY=$(find_python312)
if ! "$PY" -c 'import sys, venv; assert sys.version_info[:2] == (3, 12)' 2>/dev/null; then
  log "$PY is not a working Python 3.12 with the venv module; name one with SHARDCAST_PYTHON312."
  exit 1
fi
version=$("$PY" -c 'import sys; print(sys.version.split()[0])')
hash=$(printf '%s\n' "$version" "${PINS[@]}" | sha256sum | cut -c1-12)
cache="${SHARDCAST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/shardcast}"
venv="$cache/megatron-venv-$hash"
stamp="$venv/.shardcast-complete"

if [ -f "$stamp" ] && [ -x "$venv/bin/python" ]; then
  echo "$venv/bin/python"
  exit 0
fi

mkdir -p "$cache"
exec 9>"$venv.lock"
flock 9  # another run (e.g. a parallel test) may be creating the same venv
if [ ! -f "$stamp" ]; then
  start=$(date +%s)
  log "creating $venv with Python $version (one time; downloads about 2.7 GB from PyPI)"
  rm -rf "$venv"
  "$PY" -m venv "$venv"
  "$venv/bin/python" -m pip install -q --no-deps "${PINS[@]}" >&2
  "$venv/bin/python" - >&2 <<'EOF'
import torch
from megatron.core import dist_checkpointing  # noqa: F401
from megatron.core.models.gpt import GPTModel  # noqa: F401
from megatron.core.models.vision.radio import RADIOViTModel  # noqa: F401
x = torch.arange(6, dtype=torch.float32).reshape(2, 3)
assert float((x @ x.T).sum()) == 83.0, "torch does not compute on the CPU"
EOF
  touch "$stamp"
  log "ready after $(( $(date +%s) - start )) s"
fi
echo "$venv/bin/python"
