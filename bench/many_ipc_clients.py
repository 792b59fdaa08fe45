#!/usr/bin/env python3
"""Many client processes on one GPU receiving at once over CUDA IPC (issue 13, goal 6: 8 clients
get at least 50% of the D2D bandwidth in aggregate). Starts the sidecar on the large toy ViT
(tests/gpu/torch_receive_test.py writes it), then N processes, each with its own TP 2 shard's
parameters (ranks alternate), receive with load_into: once to warm up (connect, first mappings),
then together behind a barrier, R rounds. Reported per round: aggregate GB/s (all bytes over the
span from the first start to the last end), per-client latency p50/max; and, in the same run, the
per-tensor D2D copy bandwidth of one shard's tensors, and the ratio. Needs PyTorch and a GPU:

    python3 bench/many_ipc_clients.py --bundle bundle [--clients 8] [--rounds 3]
"""
import argparse
import multiprocessing as mp
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "tests", "gpu"))
sys.path.insert(0, os.path.join(REPO, "examples", "megatron_warmstart"))


def shard_shapes(big, rank):
    import toy_vit
    import torch_receive_test as trt
    full = toy_vit.load_full_with_pytorch(big, trt.PREFIX)
    return {n: (tuple(toy_vit.megatron_slice(n, t, 2, rank).shape), t.dtype) for n, t in full.items()}


def client(index, bundle, address, shapes, rank, rounds, barrier, results):
    sys.path.insert(0, os.path.join(bundle, "python"))
    import torch
    import shardcast
    import torch_receive_test as trt
    tensors = {n: p.data for n, p in trt.module_from(shapes, "cuda:0").named_parameters()}
    with shardcast.Client(address, timeout=60) as c:
        c.load_into(tensors, 2, rank, prefix=trt.PREFIX)  # warm-up: connection, first mappings
        torch.cuda.synchronize()
        for r in range(rounds):
            barrier.wait()
            t0 = time.time()
            report = c.load_into(tensors, 2, rank, prefix=trt.PREFIX)
            torch.cuda.synchronize()
            results.put((r, index, t0, time.time(), report["bytes"]))


def d2d_gbps(shapes, repeat=7):
    """Per-tensor device-to-device copy of one shard's tensors (what load_into's copies are)."""
    import torch
    src = {n: torch.empty(s, dtype=d, device="cuda:0") for n, (s, d) in shapes.items()}
    dst = {n: torch.empty_like(t) for n, t in src.items()}
    nbytes = sum(t.numel() * t.element_size() for t in src.values())
    times = []
    for _ in range(repeat):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for n, t in src.items():
            dst[n].copy_(t)
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    best = sorted(times)[len(times) // 2]
    return nbytes / best / 1e9, best


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", default=os.path.join(REPO, "bundle"))
    ap.add_argument("--work", default="/tmp/shardcast_torch_receive")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    bundle = os.path.abspath(args.bundle)
    sys.path.insert(0, os.path.join(bundle, "python"))
    import toy_vit
    import torch_receive_test as trt
    big = os.path.join(args.work, "toy_large")
    if not os.path.exists(os.path.join(big, "latest_checkpointed_iteration.txt")):
        toy_vit.save_megatron_checkpoint(big, toy_vit.CONFIGS["large"])
    shapes = {r: shard_shapes(big, r) for r in (0, 1)}
    gbps, d2d_s = d2d_gbps(shapes[0])
    side = trt.Sidecar(bundle, big, args.work, args.work, "many", None)
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(args.clients), ctx.Queue()
    procs = [ctx.Process(target=client, args=(i, bundle, side.address, shapes[i % 2], i % 2, args.rounds, barrier,
                                              results)) for i in range(args.clients)]
    try:
        for p in procs:
            p.start()
        rows = [results.get(timeout=600) for _ in range(args.clients * args.rounds)]
        for p in procs:
            p.join(timeout=60)
        if any(p.exitcode != 0 for p in procs):
            raise SystemExit("a client failed: exit codes %s" % [p.exitcode for p in procs])
    finally:
        side.stop()
    print("per-tensor D2D copy of one TP 2 shard (%d tensors): %.2f ms, %.1f GB/s" % (len(shapes[0]), d2d_s * 1e3, gbps))
    aggregates = []
    for r in range(args.rounds):
        mine = [row for row in rows if row[0] == r]
        span = max(row[3] for row in mine) - min(row[2] for row in mine)
        total = sum(row[4] for row in mine)
        lat = sorted((row[3] - row[2]) * 1e3 for row in mine)
        aggregates.append(total / span / 1e9)
        print("round %d: %d clients, %.0f MB in %.1f ms: %.1f GB/s aggregate (%.2fx of D2D); per client p50 %.1f ms, "
              "max %.1f ms" % (r, len(mine), total / 1e6, span * 1e3, aggregates[-1], aggregates[-1] / gbps,
                               lat[len(lat) // 2], lat[-1]))
    best = sorted(aggregates)[len(aggregates) // 2]
    print("median aggregate %.1f GB/s = %.2fx of one process's per-tensor D2D copy (goal: 0.5x or more)" % (
        best, best / gbps))


if __name__ == "__main__":
    main()
