#!/usr/bin/env bash
# The quickstart demo, on the bundled sample checkpoint (a small ViT saved by PyTorch 2.11 with two
# writers): inspect it, cut a TP shard offline, then run the sidecar as it runs beside training
# (`mpirun -np 2 shardcastd --device cpu`), wait until it is ready, fetch a TP rank's shards as a
# training rank would, and show `shardcast status`. Installs what is missing (tools/setup.sh).
# Pass another checkpoint folder to use that instead.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh >&2
bazel build --color=no --curses=no //client/cli:shardcast //server:shardcastd >&2
ckpt="${1:-examples/sample_checkpoint}"
sc=bazel-bin/client/cli/shardcast
run() { echo; echo "\$ $*"; "$@"; }

run $sc inspect "$ckpt" --prefix model.vision_model.decoder.layers.0
run $sc reshard "$ckpt" --tp 2 --rank 1 --prefix model.vision_model.decoder.layers.0.mlp --digest

work=$(mktemp -d)
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$work/token"   # the job's shared secret
echo
echo "\$ mpirun -np 2 shardcastd --checkpoint $ckpt --device cpu --token-file TOKEN --ready-file READY &"
mpirun --allow-run-as-root --oversubscribe --mca orte_abort_on_non_zero_status 0 -np 2 \
  bazel-bin/server/shardcastd --checkpoint "$ckpt" --device cpu --listen localhost:0 \
  --token-file "$work/token" --ready-file "$work/ready.json" > "$work/shardcastd.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; wait $server 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 1 300); do [ -s "$work/ready.json" ] && break; sleep 0.1; done
addr=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['address'])" "$work/ready.json")
export SHARDCAST_ADDR=$addr SHARDCAST_TOKEN_FILE=$work/token
cat "$work/shardcastd.log"
run $sc status --wait-ready 30
run $sc fetch --tp 2 --rank 1 --prefix model.vision_model. --rename model.vision_model.=vision. --digest
run $sc status
