#!/usr/bin/env bash
# Builds shardcast's binaries (optimized, internal libraries linked statically) and gathers, in
# bundle/ (git-ignored), what a GPU host without Debian's packages needs to run them: the
# binaries, the shared libraries `ldd` finds under /lib or /usr/lib that are not part of a
# standard Ubuntu 22.04/24.04 base (Abseil, RE2, ...), libcudart, the test scripts and the
# fixtures. Run the bundle with deploy/gpu/run_gpu_checks.sh on the GPU host.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-bundle}
rm -rf "$out" && mkdir -p "$out/bin" "$out/lib" "$out/fixtures"
targets=(//client/cli:shardcast //server:shardcastd //bench:read_bench //kernels:kernel_bench //kernels:cuda_executor_gpu_test)
bazel build -c opt --dynamic_mode=off --color=no --curses=no "${targets[@]}" >&2
for t in shardcast:client/cli shardcastd:server read_bench:bench kernel_bench:kernels cuda_executor_gpu_test:kernels; do
  name=${t%%:*}; dir=${t#*:}
  cp "bazel-bin/$dir/$name" "$out/bin/"
done
chmod u+w "$out"/bin/*
# Libraries a bare Ubuntu GPU host lacks (glibc, libstdc++, OpenSSL, zstd, zlib are there).
for b in "$out"/bin/*; do
  ldd "$b" | awk '/=> \// {print $3}'
done | sort -u | while read -r lib; do
  case "$(basename "$lib")" in
    libabsl_*|libre2*|libcudart*|libgrpc*|libgpr*|libupb*|libaddress_sorting*|libcares*|libprotobuf*) cp -L "$lib" "$out/lib/" ;;
  esac
done
cp -r ../shared/fixtures/dcp-torch2.11 "$out/fixtures/"
cp -r tests/data "$out/test_data"
du -sh "$out" >&2
echo "bundle ready: $out" >&2
