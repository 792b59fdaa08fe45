#!/usr/bin/env python3
"""The training side of the runnable warm-start example: one process per GPU (torchrun), the
vision encoder at TP = world size, warm-started from a running shardcastd by
`warm_start_vision_encoder` (shardcast_warmstart.py) the way Megatron's `--load-vision-from` does,
then checked and trained for a few steps. Started by run_toy.sh; by hand:

    SHARDCAST_ADDR=host:port torchrun --nproc-per-node 2 train_toy.py --checkpoint CKPT [--config tiny]

Every check prints a line; the exit status is 0 only when all pass. Rank 0 writes --report (JSON).
What is checked, on every rank:
  1. a resumed run (iteration > 0) does not warm-start, and the weights stay as they were;
  2. strict names: a checkpoint prefix that leaves encoder parameters unfilled is refused with the
     names listed, and no weight changes;
  3. the warm start: every encoder parameter equals, bit for bit, PyTorch's own dcp.load of the
     checkpoint sliced for this TP rank; the fp32 main params equal the loaded weights;
  4. the TP forward equals a TP 1 forward of the full checkpoint (fp32 compute, tolerance 1e-4);
  5. a few training steps run, the loss is finite and falls, and the weights move.
"""
import argparse
import json
import os
import sys
import time

import torch
import torch.distributed as dist

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import toy_vit  # noqa: E402
from shardcast_warmstart import MODULE_PREFIX, prepare_vision_warm_start, warm_start_vision_encoder  # noqa: E402

import shardcast  # noqa: E402


class VLM(torch.nn.Module):
    """The encoder where Megatron's hetero MIMO model keeps it, beside a stand-in LLM."""

    def __init__(self, cfg, tp, group, device):
        super().__init__()
        enc = torch.nn.Module()
        enc.encoders = torch.nn.Module()
        enc.encoders.radio_encoder = torch.nn.Module()
        enc.encoders.radio_encoder.radio_model = toy_vit.ToyViT(cfg, tp, group, device=device)
        self.vision_submodule = enc
        self.language_model = torch.nn.Linear(cfg["hidden"], 8, device=device, dtype=torch.bfloat16)

    @property
    def encoder(self):
        return self.vision_submodule.encoders.radio_encoder.radio_model


def snapshot(model):
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True, help="the Megatron save folder the sidecar serves (for the reference)")
    ap.add_argument("--config", default="tiny", choices=sorted(toy_vit.CONFIGS))
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--report", default=None)
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"],
                    help="cpu: a smoke run without GPUs (gloo, weights over the gRPC stream)")
    args = ap.parse_args()

    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local = int(os.environ.get("LOCAL_RANK", rank))
    if args.device == "cuda":
        torch.cuda.set_device(local)
        dist.init_process_group("nccl", device_id=torch.device("cuda", local))
        device = torch.device("cuda", local)
    else:
        dist.init_process_group("gloo")
        device = torch.device("cpu")
    sync = torch.cuda.synchronize if args.device == "cuda" else (lambda: None)
    tp, tp_rank = world, rank  # every rank of this toy job is an encoder rank
    cfg = toy_vit.CONFIGS[args.config]
    # First thing: let the sidecar prepare this rank's shards and form the NCCL sessions while the
    # model is built (GPU only; the CPU smoke run receives over the stream).
    early = prepare_vision_warm_start(tp, tp_rank, local) if args.device == "cuda" else None
    torch.manual_seed(100 + rank)
    model = VLM(cfg, tp, dist.group.WORLD, device)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_()  # a fresh initialization, unlike the checkpoint
    optimizer = toy_vit.MixedPrecisionOptimizer(model.parameters())
    results, ok = {"rank": rank, "tp": tp, "checks": {}}, True

    def check(name, passed, detail=""):
        nonlocal ok
        ok = ok and bool(passed)
        results["checks"][name] = {"passed": bool(passed), "detail": detail}
        print("[rank %d] %-34s %s %s" % (rank, name, "PASS" if passed else "FAIL", detail), flush=True)

    # 1. A resumed run keeps its weights.
    before = snapshot(model)
    r = warm_start_vision_encoder(model, optimizer, iteration=100, is_encoder_rank=True, tp_size=tp, tp_rank=tp_rank,
                                  log=lambda m: None)
    unchanged = all(toy_vit.same_bits(before[n], p) for n, p in model.named_parameters())
    check("resumed run: no warm start", r is None and unchanged)

    # 2. Strict names: a wrong checkpoint prefix leaves encoder parameters unfilled.
    try:
        warm_start_vision_encoder(model, optimizer, iteration=0, is_encoder_rank=True, tp_size=tp, tp_rank=tp_rank,
                                  checkpoint_prefix="model.vision_model.decoder.layers.", log=lambda m: None)
        check("strict names refused", False, "no error")
    except shardcast.ShardcastError as e:
        untouched = all(toy_vit.same_bits(before[n], p) for n, p in model.named_parameters())
        check("strict names refused", e.code == "INVALID_ARGUMENT" and "not in the checkpoint" in str(e) and untouched,
              "(%s; weights untouched: %s)" % (str(e).splitlines()[1].strip()[:70], untouched))

    # 3. The warm start itself.
    dist.barrier()
    t0 = time.perf_counter()
    report = warm_start_vision_encoder(model, optimizer, iteration=0, is_encoder_rank=True, tp_size=tp,
                                       tp_rank=tp_rank, log=lambda m: print("[rank %d] %s" % (rank, m), flush=True),
                                       client=early)
    sync()
    results["warm_start_seconds"] = time.perf_counter() - t0
    results["report"] = report
    t0 = time.perf_counter()
    full = toy_vit.load_full_with_pytorch(args.checkpoint)
    ref = {n[len("model.vision_model."):]: toy_vit.megatron_slice(n, t, tp, tp_rank).contiguous().to(device)
           for n, t in full.items()}
    sync()
    results["pytorch_way_seconds"] = time.perf_counter() - t0
    enc = dict(model.encoder.named_parameters())
    mismatched = [n for n, p in enc.items() if not toy_vit.same_bits(p.data, ref[n])]
    check("weights bit-exact vs dcp.load", not mismatched and set(enc) == set(ref),
          "(%d tensors, %.1f MB, via %s; %d mismatched %s)" % (len(enc), report["bytes"] / 1e6,
                                                               "+".join(report["transports"]), len(mismatched),
                                                               mismatched[:3]))
    enc_ids = {id(p) for p in enc.values()}
    mains = [m for p, m in zip(optimizer.params, optimizer.main) if id(p) in enc_ids]
    check("fp32 main params rebuilt", len(mains) == len(enc) and all(
        torch.equal(m, p.float()) for p, m in zip([p for p in optimizer.params if id(p) in enc_ids], mains)))
    llm_kept = all(toy_vit.same_bits(before[n], p) for n, p in model.named_parameters()
                   if n.startswith("language_model."))
    check("LLM part untouched", llm_kept)

    # 4. TP forward == TP 1 forward of the full weights.
    torch.manual_seed(7)
    x = torch.randn(2, cfg["patches"], cfg["patch_dim"]).to(device)
    with torch.no_grad():
        y = model.encoder(x)
        ref_model = toy_vit.ToyViT(cfg, 1, None, device=device)
        ref_model.load_state_dict({n[len("model.vision_model."):]: t for n, t in full.items()})
        y1 = ref_model(x)
    err = ((y - y1).abs().max() / y1.abs().max()).item()
    check("TP%d forward == TP1 forward" % tp, err < 1e-4, "(max rel err %.2e)" % err)
    del ref_model

    # 5. Training runs from the warm start.
    losses = []
    target = torch.randn(2, cfg["patches"], cfg["hidden"], generator=torch.Generator().manual_seed(9)).to(device)
    start = snapshot(model)
    for _ in range(args.steps):
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(model.encoder(x), target)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    moved = any(not toy_vit.same_bits(start[n], p) for n, p in model.named_parameters() if n.startswith(MODULE_PREFIX))
    check("training steps", all(map(lambda v: v == v and abs(v) < 1e9, losses)) and losses[-1] < losses[0] and moved,
          "(loss %.4f -> %.4f)" % (losses[0], losses[-1]))
    results["losses"] = losses

    gathered = [None] * world
    dist.all_gather_object(gathered, results)
    all_ok = all(all(c["passed"] for c in r["checks"].values()) for r in gathered)
    if rank == 0:
        summary = {"ranks": gathered, "passed": all_ok, "config": args.config, "tp": tp}
        if args.report:
            with open(args.report, "w") as f:
                json.dump(summary, f, indent=1, default=str)
        print("toy warm-start: %s (%d ranks, TP %d, config %s)" % ("PASSED" if all_ok else "FAILED", world, tp,
                                                                    args.config), flush=True)
    dist.destroy_process_group()
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
