#!/usr/bin/env python3
"""Real megatron-core on a GPU through the sidecar (issue 10's GPU check, issue 13's small-model
timing): Megatron's own dist_checkpointing.save writes a tiny GPT (GQA, SwiGLU, RMSNorm, untied
embeddings), a larger GPT and RADIOViTModel at TP 1 (tests/megatron/models.py); `shardcastd
--device cuda` serves each; models on the sidecar's GPU load through shardcast.megatron.load
(CUDA IPC) and, into another fresh model, through dist_checkpointing.load; every tensor must be
bit-exact, and both are timed (first load in this process, then the median of the next ones).
Needs PyTorch with CUDA and megatron-core importable (a GPU host: pip install --target of the
carried wheels, PYTHONPATH). One gloo world of 1 process.

    python3 tests/gpu/megatron_gpu_check.py --bundle bundle [--out DIR]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests", "megatron"))

CASES = [("gpt_tiny", "gpt", dict(hidden=32, layers=4)), ("gpt_1024x8", "gpt", dict(hidden=1024, layers=8)),
         ("radio_tiny", "radio", dict(hidden=32, layers=2)), ("radio_1024x8", "radio", dict(hidden=1024, layers=8))]


def log(msg):
    print(msg, flush=True)


class Sidecar:
    def __init__(self, bundle, ckpt, work, name):
        self.ready = os.path.join(work, "ready_%s.json" % name)
        self.log = open(os.path.join(work, "shardcastd_%s.log" % name), "w")
        env = dict(os.environ, NCCL_NVLS_ENABLE="0")
        self.proc = subprocess.Popen(
            ["mpirun", "--allow-run-as-root", "-np", "1", "-x", "NCCL_NVLS_ENABLE", os.path.join(bundle, "bin", "shardcastd"),
             "--checkpoint", ckpt, "--device", "cuda", "--listen", "localhost:0", "--ready-file", self.ready,
             "--deadline", "60"], env=env, stdout=self.log, stderr=subprocess.STDOUT)
        t = time.time()
        while not (os.path.exists(self.ready) and os.path.getsize(self.ready)):
            if self.proc.poll() is not None or time.time() - t > 120:
                raise RuntimeError("shardcastd not ready:\n" + open(self.log.name).read())
            time.sleep(0.05)
        time.sleep(0.05)
        self.address = json.load(open(self.ready))["address"]

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.log.close()


def median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2]


def timed(fn, repeat):
    import torch
    times = []
    for _ in range(repeat + 1):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return times[0], median(times[1:])


def run_case(name, kind, kw, bundle, work, repeat):
    import torch
    import shardcast
    import shardcast.megatron
    from megatron.core import dist_checkpointing
    import models
    ckpt = os.path.join(work, name)
    os.makedirs(ckpt)  # dist_checkpointing.save writes into an existing, empty folder
    src = models.build(kind, **kw)
    models.randomize(src, seed=7)
    dist_checkpointing.save(src.sharded_state_dict(), ckpt)
    del src
    side = Sidecar(bundle, ckpt, work, name)
    try:
        ours = models.build(kind, **kw).cuda()
        models.randomize(ours, seed=1)
        theirs = models.build(kind, **kw).cuda()
        models.randomize(theirs, seed=2)
        client = shardcast.Client(side.address, timeout=60)
        report = {}

        def via_shardcast():
            report.update(shardcast.megatron.load(ours, client))

        def via_megatron():
            models.load_state_dict(theirs, dist_checkpointing.load(theirs.sharded_state_dict(), ckpt))
        s_first, s_med = timed(via_shardcast, repeat)
        m_first, m_med = timed(via_megatron, repeat)
        a, b = models.tensors(ours), models.tensors(theirs)
        wrong = sorted(k for k in b if k not in a or not torch.equal(a[k], b[k]))
        nbytes = sum(t.numel() * t.element_size() for t in b.values())
        client.close()
        r = {"case": name, "tensors": len(b), "bytes": nbytes, "wrong": wrong, "transports": report.get("transports"),
             "shardcast_first_ms": s_first * 1e3, "shardcast_median_ms": s_med * 1e3,
             "megatron_first_ms": m_first * 1e3, "megatron_median_ms": m_med * 1e3}
        log("%-13s %4d tensors %8.1f MB  shardcast.megatron.load first %7.2f ms, median %7.2f ms (%s) | "
            "dist_checkpointing.load first %7.2f ms, median %7.2f ms | ratio %.2fx | %s" % (
                name, len(b), nbytes / 1e6, s_first * 1e3, s_med * 1e3, ",".join(report.get("transports") or []),
                m_first * 1e3, m_med * 1e3, m_med / s_med, "bit-exact" if not wrong else "WRONG: %s" % wrong[:5]))
        return r
    finally:
        side.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", default=os.path.join(REPO, "bundle"))
    ap.add_argument("--out", default="megatron_gpu_results")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    bundle = os.path.abspath(args.bundle)
    sys.path.insert(0, os.path.join(bundle, "python"))
    os.makedirs(args.out, exist_ok=True)
    import torch
    import models
    models.import_megatron()
    models.init_parallel(0, 1, models.free_port(), 1, 1)
    torch.cuda.set_device(0)
    work = tempfile.mkdtemp(prefix="megatron_gpu.")
    results, ok = [], True
    for name, kind, kw in CASES:
        try:
            r = run_case(name, kind, kw, bundle, work, args.repeat)
            ok &= not r["wrong"]
        except Exception as e:  # noqa: BLE001  (reported, and the check fails)
            import traceback
            traceback.print_exc()
            r, ok = {"case": name, "error": repr(e)}, False
        results.append(r)
    with open(os.path.join(args.out, "megatron_gpu.json"), "w") as f:
        json.dump({"torch": torch.__version__, "gpu": torch.cuda.get_device_name(0), "results": results}, f, indent=1)
    log("megatron on GPU: %d cases -> %s" % (len(results), "PASSED" if ok else "FAILED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
