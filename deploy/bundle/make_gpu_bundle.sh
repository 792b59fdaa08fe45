#!/usr/bin/env bash
# Builds shardcast's binaries (optimized, internal libraries linked statically) and gathers, in
# bundle/ (git-ignored), what a GPU host without Debian's packages needs to run them:
#   bin/      shardcast, shardcastd, the GPU test and the benchmarks
#   lib/      the shared libraries `ldd` finds that a standard Ubuntu 22.04/24.04 base lacks
#             (Abseil, gRPC, Protobuf, RE2, c-ares, libdeflate, libmicrohttpd; libcudart for the GPU tests; spdlog,
#             fmt and nlohmann-json are used header-only, so none of theirs unless a build links them)
#   python/   the `shardcast` Python package with libshardcast_client.so (PYTHONPATH=bundle/python,
#             or pip install bundle/python)
#   fixtures/, test_data/   for the GPU checks
# Binaries and the client library carry an RPATH to lib/ relative to themselves, so the folder can
# move anywhere without LD_LIBRARY_PATH. `--tar` also writes shardcast-bundle.tar.gz.
# Run the checks with deploy/gpu/run_gpu_checks.sh on the GPU host.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=bundle
tar=0
for a in "$@"; do
  case "$a" in
    --tar) tar=1 ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) out=$a ;;
  esac
done
rm -rf "$out" && mkdir -p "$out/bin" "$out/lib" "$out/fixtures" "$out/python"
targets=(//client/cli:shardcast //server:shardcastd //bench:read_bench //bench:kernel_bench //reshard:cuda_executor_gpu_test
         //kernels:device_crc32c_gpu_test //kernels:batch_copy_gpu_test //server:loader_gpu_test //client:libshardcast_client.so)
# DT_RPATH (not RUNPATH) so that the libraries' own dependencies are found there too.
bazel build -c opt --dynamic_mode=off --color=no --curses=no \
  '--linkopt=-Wl,--disable-new-dtags,-rpath,$ORIGIN/../lib:$ORIGIN/../../../lib' "${targets[@]}" >&2
for t in shardcast:client/cli shardcastd:server read_bench:bench kernel_bench:bench cuda_executor_gpu_test:reshard \
         device_crc32c_gpu_test:kernels batch_copy_gpu_test:kernels loader_gpu_test:server; do
  name=${t%%:*}; dir=${t#*:}
  cp "bazel-bin/$dir/$name" "$out/bin/"
done
cp -r python/shardcast python/pyproject.toml "$out/python/"
mkdir -p "$out/common" && cp common/version.h "$out/common/"  # the version's one source (__version__)
# `pip install bundle/python` reads the version from _version.py (as tools/build_wheel.sh writes it).
printf '__version__ = "%s"\n' "$(sed -n 's/.*kVersion\[\] = "\([^"]*\)".*/\1/p' common/version.h)" \
  > "$out/python/shardcast/_version.py"
rm -rf "$out/python/shardcast/__pycache__" "$out/python/shardcast/_lib"
mkdir -p "$out/python/shardcast/_lib"
cp bazel-bin/client/libshardcast_client.so "$out/python/shardcast/_lib/"
chmod -R u+w "$out"
# Libraries a bare Ubuntu GPU host lacks (glibc, libstdc++, OpenSSL, zstd, zlib are there).
for b in "$out"/bin/* "$out/python/shardcast/_lib/libshardcast_client.so"; do
  ldd "$b" | awk '/=> \// {print $3}'
done | sort -u | while read -r lib; do
  case "$(basename "$lib")" in
    libabsl_*|libre2*|libcudart*|libgrpc*|libgpr*|libupb*|libaddress_sorting*|libcares*|libprotobuf*|libdeflate*|libmicrohttpd*|libspdlog*|libfmt*) cp -L "$lib" "$out/lib/" ;;
  esac
done
cp -r ../shared/fixtures/dcp-torch2.11 ../shared/fixtures/README.md "$out/fixtures/"
cp -r tests/data "$out/test_data"
du -sh "$out" >&2
if [ "$tar" = 1 ]; then
  tar -czf shardcast-bundle.tar.gz "$out"
  ls -l shardcast-bundle.tar.gz >&2
fi
echo "bundle ready: $out" >&2
