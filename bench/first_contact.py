#!/usr/bin/env python3
"""What a fresh training process pays to get its TP shard from a ready sidecar, step by step:
importing the package, connecting, the manifest (preparing the request on the sidecar when it is
new), and the receive (forming the NCCL communicator, or mapping CUDA IPC handles). Each case runs
in a new Python process, as a training rank would; PyTorch's own way (dcp.load + slice + copy) is
timed in a new process too. The last case starts Client.warm_up() on a thread and "builds the
model" for 1 s before loading: only what follows the build is counted, as a training rank would
wait for it. Needs PyTorch and 2 GPUs; run from a bundle:

    python3 bench/first_contact.py --bundle bundle --out results/
"""
import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "tests", "gpu"))
sys.path.insert(0, os.path.join(REPO, "examples", "megatron_warmstart"))

CLIENT = r'''
import json, os, sys, time
t0 = time.perf_counter()
import torch
torch.cuda.init(); torch.empty(1, device=sys.argv[2])
t_torch = time.perf_counter()
sys.path.insert(0, sys.argv[4])
import shardcast
import toy_vit
t_import = time.perf_counter()
tp, rank, prefix = 2, 0, "model.vision_model."
c = shardcast.Client(sys.argv[1], timeout=60)
t_connect = time.perf_counter()
overlap = float(sys.argv[5]) if len(sys.argv) > 5 else 0.0
if overlap:  # warm_up on a thread while the "model" is built (a sleep stands in for it)
    c.warm_up(tp, rank, sys.argv[2], prefix=prefix, rename={prefix: ""}, background=True)
    time.sleep(overlap)
    t_connect = time.perf_counter()
m = c.manifest(tp, rank, prefix=prefix, rename={prefix: ""})
t_manifest = time.perf_counter()
tensors = {s["name"]: torch.empty(s["shape"], dtype=getattr(torch, s["dtype"]), device=sys.argv[2]) for s in m}
torch.cuda.synchronize()
t_alloc = time.perf_counter()
r = c.load_into(tensors, tp, rank, prefix=prefix, rename={prefix: ""})
torch.cuda.synchronize()
t_load = time.perf_counter()
print(json.dumps({"case": sys.argv[3], "cuda_init_s": t_torch - t0, "import_s": t_import - t_torch,
                  "connect_s": t_connect - t_import, "manifest_s": t_manifest - t_connect,
                  "load_into_s": t_load - t_alloc, "receive_s": r["seconds"], "transports": r["transports"],
                  "bytes": r["bytes"], "shardcast_total_s": (t_manifest - t_import) + (t_load - t_alloc)}))
'''

PYTORCH = r'''
import json, sys, time
import torch
torch.cuda.init(); torch.empty(1, device=sys.argv[2])
sys.path.insert(0, sys.argv[3])
import toy_vit
t0 = time.perf_counter()
sd = toy_vit.load_full_with_pytorch(sys.argv[1])
out = {n: toy_vit.megatron_slice(n, t, 2, 0).contiguous().to(sys.argv[2]) for n, t in sd.items()}
torch.cuda.synchronize()
print(json.dumps({"case": "pytorch way", "total_s": time.perf_counter() - t0,
                  "bytes": sum(t.numel() * t.element_size() for t in out.values())}))
'''


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", default=os.path.join(REPO, "bundle"))
    ap.add_argument("--out", default="first_contact_results")
    ap.add_argument("--work", default="/tmp/shardcast_first_contact")
    ap.add_argument("--config", default="large")
    args = ap.parse_args()
    args.bundle = os.path.abspath(args.bundle)
    os.makedirs(args.out, exist_ok=True)
    os.makedirs(args.work, exist_ok=True)
    sys.path.insert(0, os.path.join(args.bundle, "python"))
    import shardcast
    import toy_vit
    from torch_receive_test import Sidecar
    ckpt = os.path.join(args.work, "toy_" + args.config)
    if not os.path.exists(os.path.join(ckpt, "latest_checkpointed_iteration.txt")):
        toy_vit.save_megatron_checkpoint(ckpt, toy_vit.CONFIGS[args.config])
    env = dict(os.environ, PYTHONPATH=os.path.join(args.bundle, "python"), NCCL_NVLS_ENABLE="0",
               PYTHONWARNINGS="ignore")
    results = []

    def run(code, *argv):
        p = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, env=env, timeout=300)
        if p.returncode != 0:
            raise RuntimeError(p.stderr[-3000:])
        results.append(json.loads(p.stdout.strip().splitlines()[-1]))
        print(json.dumps(results[-1]), flush=True)

    mw = os.path.join(REPO, "examples", "megatron_warmstart")
    run(PYTORCH, ckpt, "cuda:1", mw)  # also warms the page cache for everyone
    sidecar = Sidecar(args.bundle, ckpt, args.out, args.work, "first_contact", shardcast.torch_nccl_library())
    try:
        run(CLIENT, sidecar.address, "cuda:1", "NCCL, new request", mw)
        run(CLIENT, sidecar.address, "cuda:1", "NCCL, prepared request", mw)
        run(CLIENT, sidecar.address, "cuda:0", "CUDA IPC, prepared request", mw)
        run(CLIENT, sidecar.address, "cuda:1", "NCCL, warm_up() on a thread during a 1 s model build", mw, "1.0")
    finally:
        sidecar.stop()
    run(PYTORCH, ckpt, "cuda:1", mw)
    with open(os.path.join(args.out, "first_contact.json"), "w") as f:
        json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
