#!/usr/bin/env python3
"""PyTorch receives its TP shards into a model's parameters from a running shardcastd, and they
are compared bit for bit with PyTorch's own dcp.load + slicing. Needs PyTorch and 2 GPUs (the
stream and IPC parts run on 1); run it from a bundle (deploy/bundle/make_gpu_bundle.sh):

    python3 tests/gpu/torch_receive_test.py --bundle bundle --out results/

For each checkpoint (the bundled sample, written by PyTorch 2.11 at TP 2; and a larger toy ViT
written here by dcp.save), `shardcastd --device cuda` runs on GPU 0 and this process receives,
through the `shardcast` Python package (`load_module`):
  * into CUDA parameters on GPU 1: NCCL;
  * into CUDA parameters on GPU 0, the sidecar's own GPU: CUDA IPC;
  * into CPU parameters: the gRPC stream;
for TP 1, 2 and 4 and every TP rank, parameters poisoned (all bits set) beforehand. Also a
bf16 -> fp32 request into fp32 parameters. Then times, for the larger checkpoint, receiving TP 2
rank 0 against PyTorch's way (dcp.load, slice, copy to the GPU) in the same process.
Exit status 0 only if every tensor matched. Results: OUT/torch_receive.json and .txt.
"""
import argparse
import warnings
import json
import os
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "examples", "megatron_warmstart"))

PREFIX = "model.vision_model."
warnings.filterwarnings("ignore", message=".*torch.distributed is disabled.*")
T0 = time.time()


def log(msg):
    print("[%6.1f s] %s" % (time.time() - T0, msg), flush=True)


def module_from(shapes, device, dtype_override=None):
    """An nn.Module whose named_parameters() are `shapes` ({dotted name: (shape, dtype)}),
    every byte poisoned (0xFF) so that an unwritten byte cannot pass as a match."""
    import torch
    root = torch.nn.Module()
    for name, (shape, dtype) in shapes.items():
        parts = name.split(".")
        m = root
        for p in parts[:-1]:
            if p not in m._modules:
                m.add_module(p, torch.nn.Module())
            m = m._modules[p]
        t = torch.empty(shape, dtype=dtype_override or dtype, device=device)
        t.view(-1).view(torch.uint8).fill_(0xFF)
        m.register_parameter(parts[-1], torch.nn.Parameter(t, requires_grad=False))
    return root


class Sidecar:
    def __init__(self, bundle, ckpt, out, work, name, nccl_lib, device="cuda"):
        self.ready = os.path.join(work, "ready_%s.json" % name)
        if os.path.exists(self.ready):
            os.remove(self.ready)
        self.log = open(os.path.join(out, "shardcastd_%s.log" % name), "w")
        env = dict(os.environ, CUDA_VISIBLE_DEVICES="0", NCCL_NVLS_ENABLE="0")
        self.proc = subprocess.Popen(
            ["mpirun", "--allow-run-as-root", "-np", "1", "--mca", "orte_abort_on_non_zero_status", "0", "-x",
             "CUDA_VISIBLE_DEVICES", "-x", "NCCL_NVLS_ENABLE", os.path.join(bundle, "bin", "shardcastd"),
             "--checkpoint", ckpt, "--prefix", PREFIX, "--device", device, "--listen", "localhost:0",
             "--ready-file", self.ready, "--deadline", "60"] + (["--nccl-lib", nccl_lib] if nccl_lib else []),
            env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        t = time.time()
        while not os.path.exists(self.ready) or not os.path.getsize(self.ready):
            if self.proc.poll() is not None:
                raise RuntimeError("shardcastd exited:\n" + open(self.log.name).read())
            if time.time() - t > 300:
                raise RuntimeError("shardcastd not ready after 300 s")
            time.sleep(0.05)
        time.sleep(0.05)
        self.address = json.load(open(self.ready))["address"]
        self.ready_seconds = time.time() - t

    def stop(self):
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=30)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.log.close()


def check_checkpoint(name, ckpt, args, nccl_lib, results):
    import torch
    import shardcast
    import toy_vit
    log("%s: PyTorch dcp.load (the reference)" % name)
    full = {k[len(PREFIX):]: v for k, v in toy_vit.load_full_with_pytorch(ckpt, PREFIX).items()}
    log("%s: %d tensors, %.1f MB; starting shardcastd (--device %s, GPU 0)" % (name, len(full), sum(
        t.numel() * t.element_size() for t in full.values()) / 1e6, args.sidecar_device))
    sidecar = Sidecar(args.bundle, ckpt, args.out, args.work, name, nccl_lib, args.sidecar_device)
    res = results[name] = {"tensors": len(full), "ready_seconds": sidecar.ready_seconds, "cases": []}
    ok = True
    try:
        transport_of = {"cuda:1": "nccl", "cuda:0": "cuda_ipc", "cpu": "stream"}
        devices = [(d, transport_of[d]) for d in args.devices.split(",")]
        for tp in (1, 2, 4):
            for rank in range(tp):
                ref = {n: toy_vit.megatron_slice(n, t, tp, rank).contiguous() for n, t in full.items()}
                shapes = {n: (tuple(t.shape), t.dtype) for n, t in ref.items()}
                for device, want_transport in devices:
                    module = module_from(shapes, device)
                    t0 = time.perf_counter()
                    report = shardcast.load_module(module, sidecar.address, tp_size=tp, tp_rank=rank, prefix=PREFIX,
                                                   rename={PREFIX: ""}, timeout=60)
                    if device != "cpu":
                        torch.cuda.synchronize()
                    secs = time.perf_counter() - t0
                    params = dict(module.named_parameters())
                    bad = [n for n, t in ref.items() if not toy_vit.same_bits(params[n].data, t)]
                    case = {"tp": tp, "rank": rank, "device": device, "transports": report["transports"],
                            "bytes": report["bytes"], "seconds": secs, "crc_checked": report["crc_checked"],
                            "mismatched": bad[:10], "passed": not bad and report["transports"] == [want_transport]}
                    res["cases"].append(case)
                    ok = ok and case["passed"]
                    log("%s TP%d rank %d -> %-6s %-9s %8.1f MB %7.1f ms  %s" % (
                        name, tp, rank, device, "+".join(report["transports"]), report["bytes"] / 1e6, secs * 1e3,
                        "bit-exact" if case["passed"] else "MISMATCH %s" % bad[:3]))
        # A cast on the way: bf16/fp16 checkpoint tensors into fp32 parameters.
        ref = {n: toy_vit.megatron_slice(n, t, 2, 1).contiguous() for n, t in full.items()}
        shapes = {n: (tuple(t.shape), torch.float32 if t.is_floating_point() else t.dtype) for n, t in ref.items()}
        dev = devices[0][0]
        module = module_from(shapes, dev)
        shardcast.load_module(module, sidecar.address, tp_size=2, tp_rank=1, prefix=PREFIX, rename={PREFIX: ""},
                              dtype="fp32", timeout=60)
        params = dict(module.named_parameters())
        want = {n: t.float() if t.is_floating_point() else t for n, t in ref.items()}
        bad = [n for n, t in want.items() if not toy_vit.same_bits(params[n].data, t)]
        res["cases"].append({"tp": 2, "rank": 1, "device": dev, "dtype": "fp32", "mismatched": bad[:10],
                             "passed": not bad})
        ok = ok and not bad
        log("%s TP2 rank 1 -> %s as fp32: %s" % (name, dev, "bit-exact" if not bad else "MISMATCH %s" % bad[:3]))
        if args.timing and name != "sample":
            res["timing"] = timing(full, ckpt, sidecar.address, devices)
    finally:
        sidecar.stop()
    res["passed"] = ok
    return ok


def timing(full, ckpt, address, devices, tp=2, rank=0, repeat=5):
    """Receiving TP 2 rank 0 (warm session: the sidecar has prepared it) against PyTorch's way."""
    import torch
    import shardcast
    import toy_vit
    out = {}
    shapes = {n: (tuple(toy_vit.megatron_slice(n, t, tp, rank).shape), t.dtype) for n, t in full.items()}
    for device, _ in devices:
        if device == "cpu":
            continue
        module = module_from(shapes, device)
        tensors = {n: p.data for n, p in module.named_parameters()}
        with shardcast.Client(address, timeout=60) as c:
            times = []
            for _ in range(repeat + 1):
                torch.cuda.synchronize()
                t0 = time.perf_counter()
                r = c.load_into(tensors, tp, rank, prefix=PREFIX, rename={PREFIX: ""})
                torch.cuda.synchronize()
                times.append(time.perf_counter() - t0)
        out[device] = {"transport": r["transports"][0], "bytes": r["bytes"], "first_s": times[0],
                       "median_s": sorted(times[1:])[len(times[1:]) // 2]}
        log("timing: %s over %s: first %.1f ms, then median %.2f ms (%.1f GB/s)" % (
            device, r["transports"][0], times[0] * 1e3, out[device]["median_s"] * 1e3,
            r["bytes"] / out[device]["median_s"] / 1e9))
        # The same receive without the CRC32C check, and the peer: a per-tensor device-to-device
        # copy of the same tensors (what the transfer itself costs at best), in the same run.
        with shardcast.Client(address, timeout=60, verify=False) as c:
            nv = []
            for _ in range(repeat + 1):
                torch.cuda.synchronize()
                t0 = time.perf_counter()
                c.load_into(tensors, tp, rank, prefix=PREFIX, rename={PREFIX: ""})
                torch.cuda.synchronize()
                nv.append(time.perf_counter() - t0)
        src = {n: torch.empty_like(t) for n, t in tensors.items()}
        d2d = []
        for _ in range(repeat + 1):
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            for n, t in tensors.items():
                t.copy_(src[n])
            torch.cuda.synchronize()
            d2d.append(time.perf_counter() - t0)
        del src
        out[device]["median_no_verify_s"] = sorted(nv[1:])[len(nv[1:]) // 2]
        out[device]["d2d_per_tensor_median_s"] = sorted(d2d[1:])[len(d2d[1:]) // 2]
        log("timing: %s: verify=False median %.2f ms; per-tensor D2D copy of the same %d tensors median %.2f ms "
            "(ratio load_into / D2D = %.1f)" % (device, out[device]["median_no_verify_s"] * 1e3, len(tensors),
                                               out[device]["d2d_per_tensor_median_s"] * 1e3,
                                               out[device]["median_s"] / out[device]["d2d_per_tensor_median_s"]))
    dev = devices[0][0]
    ptimes = []
    for _ in range(3):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        sd = toy_vit.load_full_with_pytorch(ckpt, PREFIX)
        moved = {n: toy_vit.megatron_slice(n, t, tp, rank).contiguous().to(dev) for n, t in sd.items()}
        torch.cuda.synchronize()
        ptimes.append(time.perf_counter() - t0)
        del sd, moved
    out["pytorch_way_warm_median_s"] = sorted(ptimes)[1]
    log("timing: PyTorch way (dcp.load + slice + copy to %s, page cache warm): median %.1f ms" % (
        dev, out["pytorch_way_warm_median_s"] * 1e3))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", default=os.path.join(REPO, "bundle"))
    ap.add_argument("--out", default="torch_receive_results")
    ap.add_argument("--work", default="/tmp/shardcast_torch_receive")
    ap.add_argument("--config", default="large", help="toy ViT size for the second checkpoint (toy_vit.CONFIGS)")
    ap.add_argument("--no-timing", dest="timing", action="store_false")
    ap.add_argument("--devices", default="cuda:1,cuda:0,cpu",
                    help="where to receive: cuda:1 (NCCL from GPU 0), cuda:0 (CUDA IPC), cpu (stream)")
    ap.add_argument("--sidecar-device", default="cuda", help="cpu: a CPU-only smoke run with --devices cpu")
    args = ap.parse_args()
    args.bundle = os.path.abspath(args.bundle)
    os.makedirs(args.out, exist_ok=True)
    os.makedirs(args.work, exist_ok=True)
    sys.path.insert(0, os.path.join(args.bundle, "python"))
    import torch
    import shardcast
    import toy_vit
    nccl_lib = shardcast.torch_nccl_library()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    log("torch %s, %d GPUs (%s); NCCL %s" % (torch.__version__, torch.cuda.device_count(), gpu, nccl_lib))
    results = {"torch": torch.__version__, "gpu": gpu, "gpus": torch.cuda.device_count()}
    ok = True
    try:
        ok &= check_checkpoint("sample", os.path.join(REPO, "examples", "sample_checkpoint"), args, nccl_lib, results)
        big = os.path.join(args.work, "toy_%s" % args.config)
        if not os.path.exists(os.path.join(big, "latest_checkpointed_iteration.txt")):
            log("writing the %s toy ViT with dcp.save" % args.config)
            toy_vit.save_megatron_checkpoint(big, toy_vit.CONFIGS[args.config])
        ok &= check_checkpoint("toy_" + args.config, big, args, nccl_lib, results)
    finally:
        results["passed"] = bool(ok)
        with open(os.path.join(args.out, "torch_receive.json"), "w") as f:
            json.dump(results, f, indent=1, default=str)
    n = sum(len(v["cases"]) for v in results.values() if isinstance(v, dict) and "cases" in v)
    bad = sum(1 for v in results.values() if isinstance(v, dict) and "cases" in v for c in v["cases"] if not c["passed"])
    line = "torch receive: %d cases, %d mismatched -> %s" % (n, bad, "PASSED" if ok else "FAILED")
    print(line)
    with open(os.path.join(args.out, "torch_receive.txt"), "w") as f:
        f.write(line + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
