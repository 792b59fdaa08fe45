#!/usr/bin/env python3
"""Time-to-weights on a GPU host (needs 2 GPUs and PyTorch): a ViT-H-sized encoder (1.26 GB bf16)
served by a ready `shardcastd --device cuda` on GPU 0 to a client on GPU 1 over NCCL, for TP 2
and 4, next to (a) PyTorch's own way (one rank dcp.load's the checkpoint, slices its TP part on
the host, copies it to its GPU; cold and warm page cache) and (b) a raw NCCL send/recv of the
same bytes between the same GPUs. Also checks every fetched shard's digest against
`shardcast reshard` on the CPU, and that mismatched NCCL builds are refused.

    python3 bench/time_to_weights.py --bin bundle/bin --out results/   (after deploy/bundle/make_gpu_bundle.sh)
"""
import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)


def sh(cmd, env=None, check=True, timeout=600):
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    if check and p.returncode != 0:
        raise RuntimeError("%s failed (%d):\n%s\n%s" % (" ".join(cmd), p.returncode, p.stdout[-3000:], p.stderr[-3000:]))
    return p


def torch_nccl_path():
    import torch  # noqa: F401
    sys.path.insert(0, os.path.join(REPO, "python"))  # the package's finder; its library is not needed for this
    import shardcast
    path = shardcast.torch_nccl_library()
    if path is None:
        raise RuntimeError("cannot find PyTorch's libnccl")
    return path


def drop_caches():
    try:
        subprocess.run(["sync"])
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return True
    except OSError:
        return False


def pytorch_way(ckpt, tp, rank, device):
    """One training rank the usual way: dcp.load everything, slice on the host, copy up."""
    import torch
    import torch.distributed.checkpoint as dcp
    t0 = time.perf_counter()
    md = dcp.FileSystemReader(ckpt).read_metadata()
    sd = {}
    for k, v in md.state_dict_metadata.items():
        if hasattr(v, "size"):
            sd[k] = torch.empty(v.size, dtype=v.properties.dtype)
    dcp.load(sd, storage_reader=dcp.FileSystemReader(ckpt))
    out = {}
    for k, t in sd.items():
        if re.search(r"(linear_qkv|linear_fc1|embedder)\.(weight|bias)$", k):
            t = t.chunk(tp, 0)[rank]
        elif re.search(r"(linear_proj|linear_fc2)\.weight$", k):
            t = t.chunk(tp, 1)[rank]
        out[k] = t.contiguous().to(device, non_blocking=False)
    torch.cuda.synchronize(device)
    return time.perf_counter() - t0, sum(t.numel() * t.element_size() for t in out.values())


def raw_nccl(nbytes_list, iters=5):
    """rank 0 on GPU 0 sends the same buffers to rank 1 on GPU 1 (grouped), with PyTorch's NCCL."""
    code = r'''
import os, sys, time, json, torch, torch.distributed as dist
rank = int(sys.argv[1]); sizes = json.loads(sys.argv[2]); iters = int(sys.argv[3])
torch.cuda.set_device(rank)
dist.init_process_group("nccl", init_method="tcp://127.0.0.1:%s" % sys.argv[4], rank=rank, world_size=2)
bufs = [torch.empty(n, dtype=torch.uint8, device="cuda") for n in sizes]
def once():
    ops = [dist.P2POp(dist.isend if rank == 0 else dist.irecv, b, 1 - rank) for b in bufs]
    for r in dist.batch_isend_irecv(ops): r.wait()
    torch.cuda.synchronize()
once(); once()
times = []
for _ in range(iters):
    dist.barrier(); torch.cuda.synchronize(); t0 = time.perf_counter(); once(); times.append(time.perf_counter() - t0)
flat = torch.empty(sum(sizes), dtype=torch.uint8, device="cuda")
def flat_once():
    (dist.send if rank == 0 else dist.recv)(flat, 1 - rank); torch.cuda.synchronize()
flat_once()
ftimes = []
for _ in range(iters):
    dist.barrier(); torch.cuda.synchronize(); t0 = time.perf_counter(); flat_once(); ftimes.append(time.perf_counter() - t0)
if rank == 1: print(json.dumps({"grouped_s": sorted(times)[len(times)//2], "flat_s": sorted(ftimes)[len(ftimes)//2]}))
dist.destroy_process_group()
'''
    port = str(29000 + os.getpid() % 1000 + len(nbytes_list) % 7)
    procs = [subprocess.Popen([sys.executable, "-c", code, str(r), json.dumps(nbytes_list), str(iters), port],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=dict(os.environ, NCCL_NVLS_ENABLE="0")) for r in (0, 1)]
    outs = [p.communicate(timeout=120) for p in procs]
    for p, (o, e) in zip(procs, outs):
        if p.returncode != 0:
            raise RuntimeError("raw NCCL run failed: " + e[-2000:])
    return json.loads(outs[1][0].strip().splitlines()[-1])


T0 = time.time()


def log_progress(what):
    print("[%6.1f s] %s" % (time.time() - T0, what), flush=True)


def save(out, results):
    with open(os.path.join(out, "time_to_weights.json"), "w") as f:
        json.dump(results, f, indent=1, default=str)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=os.path.join(REPO, "bundle", "bin"))
    ap.add_argument("--out", default="ttw_results")
    ap.add_argument("--work", default="/tmp/shardcast_ttw")
    ap.add_argument("--all-ranks", action="store_true", help="check every TP rank, not only rank 0")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    os.makedirs(args.work, exist_ok=True)
    sc, scd = os.path.join(args.bin, "shardcast"), os.path.join(args.bin, "shardcastd")
    ckpt = os.path.join(args.work, "vith")
    log_progress("generate")
    sh([sys.executable, os.path.join(REPO, "tools", "gen_synthetic_dcp.py"), ckpt, "--preset", "vit-h", "--writers", "2", "--force"])
    log_progress("start shardcastd")
    nccl = torch_nccl_path()
    results = {"torch_nccl": nccl}
    env0 = dict(os.environ, CUDA_VISIBLE_DEVICES="0", NCCL_NVLS_ENABLE="0")
    env1 = dict(os.environ, CUDA_VISIBLE_DEVICES="1", NCCL_NVLS_ENABLE="0", SHARDCAST_NCCL_LIBRARY=nccl)
    ready = os.path.join(args.work, "ready.json")
    if os.path.exists(ready):
        os.remove(ready)
    log = open(os.path.join(args.out, "shardcastd.log"), "w")
    t_start = time.perf_counter()
    server = subprocess.Popen(["mpirun", "--allow-run-as-root", "-np", "1", "-x", "CUDA_VISIBLE_DEVICES", "-x", "LD_LIBRARY_PATH",
                               "-x", "NCCL_NVLS_ENABLE", scd, "--checkpoint", ckpt, "--device", "cuda", "--listen",
                               "localhost:0", "--ready-file", ready, "--nccl-lib", nccl, "--deadline", "30"],
                              env=env0, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        while not os.path.exists(ready):
            if server.poll() is not None:
                raise RuntimeError("shardcastd exited:\n" + open(log.name).read())
            time.sleep(0.05)
        results["sidecar_ready_seconds"] = time.perf_counter() - t_start
        addr = json.load(open(ready))["address"]
        status = json.loads(sh([sc, "status", "--server", addr, "--json"]).stdout)
        results["sidecar_read_gbps"] = status["ranks"][0]["read_gbps"]
        results["tp"] = {}
        for tp in (2, 4):
            per = {}
            for rank in (range(tp) if args.all_ranks else [0, tp - 1]):
                log_progress("fetch TP%d rank %d" % (tp, rank))
                first = json.loads(sh([sc, "fetch", "--server", addr, "--tp", str(tp), "--rank", str(rank), "--device", "cuda",
                                       "--digest", "--json", "--repeat", "3"], env=env1, timeout=60).stdout)
                log_progress("  second client")
                again = json.loads(sh([sc, "fetch", "--server", addr, "--tp", str(tp), "--rank", str(rank), "--device", "cuda",
                                       "--digest", "--json", "--repeat", "3"], env=env1, timeout=60).stdout)
                log_progress("  cpu reshard digest")
                cpu = json.loads(sh([sc, "reshard", ckpt, "--tp", str(tp), "--rank", str(rank), "--digest", "--json"]).stdout)
                want = {t["name"]: t["sha256"] for t in cpu["tensors"]}
                got = {t["name"]: t["sha256"] for t in first["tensors"]}
                got2 = {t["name"]: t["sha256"] for t in again["tensors"]}
                per[rank] = {
                    "bytes": first["report"]["bytes"],
                    "shards": first["report"]["shards"],
                    "digests_match_cpu_reshard": got == want and got2 == want,
                    "first_manifest_s": first["manifest_seconds"],
                    "first_receive_s": first["receive_seconds"][0],
                    "reused_receive_s": min(first["receive_seconds"][1:] + again["receive_seconds"][1:]),
                    "cached_manifest_s": again["manifest_seconds"],
                }
                per[rank]["time_to_weights_s"] = per[rank]["cached_manifest_s"] + per[rank]["reused_receive_s"]
                per[rank]["time_to_weights_cold_s"] = per[rank]["first_manifest_s"] + per[rank]["first_receive_s"]
            results["tp"][tp] = per
            save(args.out, results)
        log_progress("version mismatch check")
        # Mismatched NCCL builds are refused (system NCCL on the client side).
        sysnccl = "/usr/lib/x86_64-linux-gnu/libnccl.so.2"
        if os.path.exists(sysnccl):
            p = sh([sc, "fetch", "--server", addr, "--tp", "2", "--rank", "0", "--device", "cuda", "--digest"],
                   env=dict(env1, SHARDCAST_NCCL_LIBRARY=sysnccl), check=False, timeout=120)
            results["version_mismatch_refused"] = p.returncode == 1 and "NCCL version mismatch" in p.stderr
            results["version_mismatch_message"] = p.stderr.strip()[-600:]
        results["status_after"] = json.loads(sh([sc, "status", "--server", addr, "--json"]).stdout)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
        log.close()
    # PyTorch's way and raw NCCL, for the same ranks.
    save(args.out, results)
    results["pytorch"] = {}
    for tp in (2, 4):
        log_progress("PyTorch way TP%d" % tp)
        cold_ok = drop_caches()
        cold, nbytes = pytorch_way(ckpt, tp, 0, "cuda:1")
        warm, _ = pytorch_way(ckpt, tp, 0, "cuda:1")
        results["pytorch"][tp] = {"cold_s": cold if cold_ok else None, "warm_s": warm, "bytes": nbytes}
        save(args.out, results)
    results["raw_nccl"] = {}
    for tp in (2, 4):
        log_progress("raw NCCL TP%d" % tp)
        cpu = json.loads(sh([sc, "reshard", ckpt, "--tp", str(tp), "--rank", "0", "--digest", "--json"]).stdout)
        results["raw_nccl"][tp] = raw_nccl([t["bytes"] for t in cpu["tensors"]])
        save(args.out, results)
    # Summary.
    lines = ["time-to-weights, ViT-H-sized encoder (1.26 GB bf16), shardcastd on GPU 0 -> client on GPU 1 (NCCL)"]
    for tp in (2, 4):
        r0 = results["tp"][tp][0]
        py = results["pytorch"][tp]
        raw = results["raw_nccl"][tp]
        lines.append(
            "TP%d rank 0: %.1f MB; shardcast %.2f ms (manifest %.2f + receive %.2f; first request %.1f ms incl. shard "
            "prep + NCCL set-up); PyTorch way %.0f ms warm / %s cold -> %.0fx (warm) faster; raw NCCL grouped %.2f ms, "
            "flat %.2f ms -> shardcast / raw = %.2fx" % (
                tp, r0["bytes"] / 1e6, r0["time_to_weights_s"] * 1e3, r0["cached_manifest_s"] * 1e3,
                r0["reused_receive_s"] * 1e3, r0["time_to_weights_cold_s"] * 1e3, py["warm_s"] * 1e3,
                "%.0f ms" % (py["cold_s"] * 1e3) if py["cold_s"] else "n/a", py["warm_s"] / r0["time_to_weights_s"],
                raw["grouped_s"] * 1e3, raw["flat_s"] * 1e3, r0["time_to_weights_s"] / raw["grouped_s"]))
        lines.append("  all ranks' digests equal CPU reshard: %s" % all(v["digests_match_cpu_reshard"] for v in results["tp"][tp].values()))
    lines.append("NCCL version mismatch refused: %s" % results.get("version_mismatch_refused"))
    text = "\n".join(lines)
    print(text)
    with open(os.path.join(args.out, "time_to_weights.json"), "w") as f:
        json.dump(results, f, indent=1, default=str)
    with open(os.path.join(args.out, "time_to_weights.txt"), "w") as f:
        f.write(text + "\n")
    ok = all(v["digests_match_cpu_reshard"] for tp in results["tp"].values() for v in tp.values())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
