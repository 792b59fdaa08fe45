#!/usr/bin/env python3
"""A cached request's manifest on the CPU, through the Python client and through the C ABI (issue
13, goal 5): starts `mpirun -np NP shardcastd --device cpu --layout megatron` on a checkpoint,
then times 100 of each: `Client._manifest` (what load_into asks: the library sends the digest of
the manifest it holds and reuses its parsed document when the server says "unchanged"), the C
ABI's `shardcast_manifest_get` with the JSON document asked for, `json.loads` of that document,
and the status round trip. Run from the repository root after
`bazel build //server:shardcastd //client:libshardcast_client.so`:

    python3 bench/manifest_cpu.py CHECKPOINT [--np 1]

(the ViT-H-sized synthetic checkpoint: tools/gen_synthetic_dcp.py --preset vit-h --writers 2 DIR)
"""
import argparse
import ctypes
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint")
    ap.add_argument("--np", type=int, default=1)
    args = ap.parse_args()
    os.environ.setdefault("SHARDCAST_CLIENT_SO", os.path.join(REPO, "bazel-bin", "client", "libshardcast_client.so"))
    sys.path.insert(0, os.path.join(REPO, "python"))
    import shardcast
    from shardcast._client import _request
    warnings.simplefilter("ignore")
    work = tempfile.mkdtemp()
    ready = os.path.join(work, "ready.json")
    cmd = ["mpirun", "--allow-run-as-root", "--oversubscribe", "-np", str(args.np),
           os.path.join(REPO, "bazel-bin", "server", "shardcastd"), "--checkpoint", args.checkpoint,
           "--device", "cpu", "--listen", "localhost:0", "--layout", "megatron", "--ready-file", ready]
    with open(os.path.join(work, "log"), "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    try:
        while not (os.path.exists(ready) and os.path.getsize(ready)):
            if proc.poll() is not None:
                sys.exit("shardcastd exited: see " + os.path.join(work, "log"))
            time.sleep(0.05)
        with open(ready) as f:
            address = json.load(f)["address"]
        client = shardcast.Client(address, timeout=60)
        lib = client._lib
        req = _request(2, 0, None, (), None, None, False, None, None)
        print("shards", len(client._manifest(2, 0).shards))

        def c_abi():
            handle, out, err = ctypes.c_void_p(), ctypes.c_void_p(), ctypes.c_void_p()
            rc = lib.shardcast_manifest_get(client._handle, req, ctypes.byref(handle), ctypes.byref(out),
                                            ctypes.byref(err))
            assert rc == 0
            text = ctypes.string_at(out.value)
            lib.shardcast_free(out)
            lib.shardcast_manifest_free(handle)
            return text
        text = c_abi()
        for label, fn in (("python _manifest", lambda: client._manifest(2, 0)), ("C ABI manifest_get + JSON", c_abi),
                          ("json.loads", lambda: json.loads(text)), ("status", client.status)):
            times = []
            for _ in range(100):
                t = time.perf_counter()
                fn()
                times.append((time.perf_counter() - t) * 1e3)
            print("%-26s p50 %.3f ms" % (label, statistics.median(times)))
        client.close()
    finally:
        proc.terminate()
        proc.wait()


if __name__ == "__main__":
    main()
