#!/usr/bin/env python3
"""Where a CUDA IPC load_into spends its time (issue 13): starts the sidecar on the large toy ViT
(tests/gpu/torch_receive_test.py writes it), then times, for TP 2 rank 0 on the sidecar's GPU,
the manifest round trip, the C ABI receive, and load_into as a whole (verify on and off), with
and the steps inside the receive (SHARDCAST_TRACE=1 makes the client library print them). Needs PyTorch and a GPU:

    python3 bench/ipc_profile.py --bundle bundle [--work /tmp/shardcast_torch_receive]
"""
import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "tests", "gpu"))
sys.path.insert(0, os.path.join(REPO, "examples", "megatron_warmstart"))


def median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", default=os.path.join(REPO, "bundle"))
    ap.add_argument("--work", default="/tmp/shardcast_torch_receive")
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    sys.path.insert(0, os.path.join(os.path.abspath(args.bundle), "python"))
    import torch
    import shardcast
    import toy_vit
    import torch_receive_test as trt
    big = os.path.join(args.work, "toy_large")
    if not os.path.exists(os.path.join(big, "latest_checkpointed_iteration.txt")):
        toy_vit.save_megatron_checkpoint(big, toy_vit.CONFIGS["large"])
    full = toy_vit.load_full_with_pytorch(big, trt.PREFIX)
    shapes = {n: (tuple(toy_vit.megatron_slice(n, t, 2, 0).shape), t.dtype) for n, t in full.items()}
    del full
    module = trt.module_from(shapes, "cuda:0")
    tensors = {n: p.data for n, p in module.named_parameters()}
    os.environ["SHARDCAST_TRACE"] = "1"
    side = trt.Sidecar(os.path.abspath(args.bundle), big, args.work, args.work, "profile", None)
    try:
        for verify in (True, False):
            with shardcast.Client(side.address, timeout=60, verify=verify) as c:
                kw = dict(prefix=trt.PREFIX)  # the module keeps the checkpoint names
                c.load_into(tensors, 2, 0, **kw)
                whole, man, recv = [], [], []
                for _ in range(args.repeat):
                    torch.cuda.synchronize()
                    t0 = time.perf_counter()
                    c.load_into(tensors, 2, 0, **kw)
                    torch.cuda.synchronize()
                    whole.append(time.perf_counter() - t0)
                    t0 = time.perf_counter()
                    m = c._manifest(2, 0, **kw)
                    man.append(time.perf_counter() - t0)
                    items = [(n, t.data_ptr(), t.numel() * t.element_size()) for n, t in tensors.items()]
                    t0 = time.perf_counter()
                    r = c._receive(m, items, 0)
                    torch.cuda.synchronize()
                    recv.append(time.perf_counter() - t0)
                print("verify=%s: load_into median %.2f ms; manifest %.2f ms; C ABI receive %.2f ms (its report: "
                      "%.2f ms, %s); %d tensors, %.0f MB" % (verify, median(whole) * 1e3, median(man) * 1e3,
                                                          median(recv) * 1e3, r["seconds"] * 1e3, r["transport"],
                                                          len(items), r["bytes"] / 1e6), flush=True)
    finally:
        side.stop()


if __name__ == "__main__":
    main()
