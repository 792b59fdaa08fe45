#!/usr/bin/env bash
# The quickstart demo: builds shardcast (installing what is missing) and inspects the bundled
# sample checkpoint (a small ViT saved by PyTorch 2.11 with two writers), with per-tensor digests.
# Pass another checkpoint folder to inspect that instead.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh >&2
bazel build --color=no --curses=no //client/cli:shardcast >&2
ckpt="${1:-examples/sample_checkpoint}"
echo "\$ shardcast inspect $ckpt --digest"
bazel-bin/client/cli/shardcast inspect "$ckpt" --digest
echo
echo "\$ shardcast inspect $ckpt --prefix model.vision_model.decoder.layers.0.mlp --json"
bazel-bin/client/cli/shardcast inspect "$ckpt" --prefix model.vision_model.decoder.layers.0.mlp --json
echo
echo "\$ shardcast reshard $ckpt --tp 2 --rank 1 --prefix model.vision_model. --digest"
bazel-bin/client/cli/shardcast reshard "$ckpt" --tp 2 --rank 1 --prefix model.vision_model. --digest
