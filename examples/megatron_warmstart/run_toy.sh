#!/usr/bin/env bash
# The runnable warm-start example on one GPU host (2 GPUs or more), from a bundle made by
# deploy/bundle/make_gpu_bundle.sh; needs PyTorch and Open MPI's mpirun there.
#
#   1. writes a toy VLM checkpoint with PyTorch's dcp.save, in Megatron's layout (iter_0000100/);
#   2. starts the sidecar, `mpirun -np GPUS shardcastd --prefix model.vision_model.`, one loader
#      rank per GPU (sharing the GPUs with training, as on a real node), with a job token;
#   3. waits for it with `shardcast status --wait-ready`;
#   4. runs `torchrun --nproc-per-node GPUS train_toy.py`: every rank warm-starts its TP shard of
#      the encoder (CUDA IPC from the loader rank on its own GPU, NCCL from the others), checks it
#      bit for bit against PyTorch's dcp.load + slicing, and trains a few steps;
#   5. stops the sidecar.
#
#   examples/megatron_warmstart/run_toy.sh [--bundle DIR] [--gpus N] [--config tiny|small|large]
#                                          [--work DIR] [--out DIR] [--device cuda|cpu]
# --device cpu is a smoke run without GPUs: sidecar on host memory, gloo, weights over the stream.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
BUNDLE=$REPO/bundle GPUS=2 CONFIG=small WORK=/tmp/shardcast_toy OUT=${OUT:-$PWD/toy_results} DEVICE=cuda
while [ $# -gt 0 ]; do
  case "$1" in
    --bundle) BUNDLE=$(cd "$2" && pwd); shift 2 ;;
    --gpus) GPUS=$2; shift 2 ;;
    --config) CONFIG=$2; shift 2 ;;
    --work) WORK=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --device) DEVICE=$2; shift 2 ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "run_toy.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
export PYTHONPATH=$BUNDLE/python${PYTHONPATH:+:$PYTHONPATH}
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
mkdir -p "$OUT" && rm -rf "$WORK" && mkdir -p "$WORK"
CKPT=$WORK/ckpt

echo "== 1. checkpoint (PyTorch dcp.save, config $CONFIG)"
python3 - "$CKPT" "$CONFIG" "$HERE" <<'PY'
import sys; sys.path.insert(0, sys.argv[3])
import toy_vit
d = toy_vit.save_megatron_checkpoint(sys.argv[1], toy_vit.CONFIGS[sys.argv[2]])
print("saved", d)
PY
"$BUNDLE/bin/shardcast" inspect "$CKPT" --prefix model.vision_model. | tail -3

echo "== 2. sidecar: $GPUS loader ranks"
# The libnccl.so.2 the training processes load: the sidecar must use the same build.
NCCL_LIB=$(python3 -c "import torch, shardcast; print(shardcast.torch_nccl_library() or '')")
[ -n "$NCCL_LIB" ] || [ "$DEVICE" = cpu ] || { echo "cannot find PyTorch's libnccl.so.2" >&2; exit 1; }
head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$WORK/token" && chmod 600 "$WORK/token"
mpirun --allow-run-as-root -np "$GPUS" --mca orte_abort_on_non_zero_status 0 -x NCCL_NVLS_ENABLE \
  "$BUNDLE/bin/shardcastd" --checkpoint "$CKPT" --prefix model.vision_model. --device "$DEVICE" --listen localhost:0 \
  --ready-file "$WORK/ready.json" --token-file "$WORK/token" ${NCCL_LIB:+--nccl-lib "$NCCL_LIB"} --deadline 60 \
  > "$OUT/shardcastd.log" 2>&1 &
SIDECAR=$!
trap 'kill -TERM $SIDECAR 2>/dev/null; wait $SIDECAR 2>/dev/null || true' EXIT
for _ in $(seq 600); do
  [ -s "$WORK/ready.json" ] && break
  kill -0 $SIDECAR 2>/dev/null || { echo "shardcastd exited:"; cat "$OUT/shardcastd.log"; exit 1; }
  sleep 0.1
done
export SHARDCAST_ADDR=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['address'])" "$WORK/ready.json")
export SHARDCAST_TOKEN_FILE=$WORK/token

echo "== 3. wait until ready ($SHARDCAST_ADDR)"
"$BUNDLE/bin/shardcast" status --wait-ready 120
"$BUNDLE/bin/shardcast" status

echo "== 4. training: torchrun --nproc-per-node $GPUS"
set +e
torchrun --standalone --nproc-per-node "$GPUS" "$HERE/train_toy.py" --checkpoint "$CKPT" --config "$CONFIG" \
  --device "$DEVICE" --report "$OUT/toy_report.json" 2>&1 | tee "$OUT/train_toy.log"
rc=${PIPESTATUS[0]}
set -e
"$BUNDLE/bin/shardcast" status --json > "$OUT/status_after.json" || true

echo "== 5. stop the sidecar"
exit $rc
