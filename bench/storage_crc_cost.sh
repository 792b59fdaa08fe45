#!/usr/bin/env bash
# What the storage CRC-32 check (each torch.save record's stored ZIP CRC, checked while reading)
# costs on this host's storage, in one run: (1) bench/read_bench --crc-cost, cold (page cache
# dropped) and warm, against a plain sequential read; (2) shardcastd start to ready on a GPU
# (staging path), page cache dropped, with and without --no-verify-storage-crc, alternating.
# Run from the repo root on a GPU host with a bundle (deploy/bundle/make_gpu_bundle.sh):
#
#   bench/storage_crc_cost.sh [BUNDLE_DIR] [OUT_DIR]      (ONLY=sidecar: part 2 only)
#
# Writes OUT_DIR/read_bench_crc_{cold,warm}.txt, read_bench_crc.json and sidecar_ready_crc.txt.
set -uo pipefail
cd "$(dirname "$0")/.."
BUNDLE=$(cd "${1:-bundle}" && pwd)
OUT=${2:-${OUT:-crc_cost_results}}
mkdir -p "$OUT"
BIN="$BUNDLE/bin"
WORK=${WORK:-/tmp/shardcast_crc_cost}
export NCCL_NVLS_ENABLE=0
mkdir -p "$WORK"
[ -f "$WORK/vith/.metadata" ] || python3 tools/gen_synthetic_dcp.py "$WORK/vith" --preset vit-h --writers 2 --force | tail -1
[ "${ONLY:-}" = sidecar ] || for t in 8 16; do
  "$BIN/read_bench" "$WORK/vith" --threads $t --repeat 3 --crc-cost | tee -a "$OUT/read_bench_crc.txt"
done
[ "${ONLY:-}" = sidecar ] || "$BIN/read_bench" "$WORK/vith" --threads 16 --repeat 3 --crc-cost --json > "$OUT/read_bench_crc.json"

drop() { sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true; }
ready_seconds() {  # extra shardcastd flags...
  rm -f "$WORK/ready.json"
  drop
  local t0 t1
  t0=$(date +%s%N)
  mpirun --allow-run-as-root -np 1 --mca orte_abort_on_non_zero_status 0 "$BIN/shardcastd" --checkpoint "$WORK/vith" \
    --device cuda --listen 127.0.0.1:0 --ready-file "$WORK/ready.json" "$@" > "$WORK/sidecar.log" 2>&1 &
  local pid=$!
  while [ ! -s "$WORK/ready.json" ] && kill -0 $pid 2>/dev/null; do sleep 0.01; done
  t1=$(date +%s%N)
  pkill -TERM -x shardcastd 2>/dev/null  # the ranks drain and exit 0 (SIGTERM to mpirun would abort)
  for _ in $(seq 300); do kill -0 $pid 2>/dev/null || break; sleep 0.1; done
  kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null
  [ -s "$WORK/ready.json" ] || { echo "sidecar failed:"; cat "$WORK/sidecar.log"; return 1; }
  echo "$(( (t1 - t0) / 1000000 ))" 
}
{
  echo "shardcastd start to ready, ViT-H 1.26 GB, 1 rank on cuda, page cache dropped before each"
  for r in 1 2 3; do
    on=$(ready_seconds) || exit 1
    off=$(ready_seconds --no-verify-storage-crc) || exit 1
    echo "run $r: CRC checked ${on} ms, not checked ${off} ms"
  done
} | tee "$OUT/sidecar_ready_crc.txt"
