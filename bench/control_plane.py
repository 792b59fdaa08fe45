#!/usr/bin/env python3
"""The control plane and many clients on the CPU (issue 13, goals 5 and 6): starts
`mpirun -np 2 shardcastd --device cpu` on a fixture, then measures
  - a cached request's manifest round trip (Python client, p50/p90/p99 of 300),
  - the status round trip,
  - N concurrent stream clients (threads; the C ABI releases the GIL) each fetching a TP 2 rank
    of the whole checkpoint: per-client latency p50/p99 and the aggregate rate.
Run from the repository root after `bazel build //server:shardcastd //client:libshardcast_client.so`:

    python3 bench/control_plane.py [--checkpoint DIR] [--clients 64]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100.0 * len(xs)))]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", default="/work/shared/fixtures/dcp-torch2.11/vit_tp2")
    ap.add_argument("--layout", default=os.path.join(REPO, "tests", "data", "fixtures.layout"))
    ap.add_argument("--shardcastd", default=os.path.join(REPO, "bazel-bin", "server", "shardcastd"))
    ap.add_argument("--clients", type=int, default=64)
    args = ap.parse_args()
    os.environ.setdefault("SHARDCAST_CLIENT_SO", os.path.join(REPO, "bazel-bin", "client", "libshardcast_client.so"))
    sys.path.insert(0, os.path.join(REPO, "python"))
    import warnings
    import shardcast
    warnings.simplefilter("ignore", shardcast.RawBytesWarning)  # bf16 as raw bytes is fine here
    work = tempfile.mkdtemp(prefix="control_plane.")
    ready = os.path.join(work, "ready.json")
    log = open(os.path.join(work, "shardcastd.log"), "w")
    proc = subprocess.Popen(["mpirun", "--allow-run-as-root", "--oversubscribe", "-np", "2", args.shardcastd,
                             "--checkpoint", args.checkpoint, "--device", "cpu", "--listen", "localhost:0",
                             "--layout", args.layout, "--ready-file", ready], stdout=log, stderr=subprocess.STDOUT)
    try:
        t0 = time.time()
        while not (os.path.exists(ready) and os.path.getsize(ready)):
            if proc.poll() is not None or time.time() - t0 > 60:
                raise SystemExit("shardcastd did not become ready:\n" + open(log.name).read())
            time.sleep(0.05)
        address = json.load(open(ready))["address"]
        c = shardcast.Client(address, timeout=60)
        c.manifest(2, 0)
        for label, fn in (("manifest round trip (cached request)", lambda: c._manifest(2, 0)),
                          ("status round trip", c.status)):
            ts = []
            for _ in range(300):
                t = time.perf_counter()
                fn()
                ts.append((time.perf_counter() - t) * 1e3)
            print("%s: p50 %.3f ms, p90 %.3f ms, p99 %.3f ms" % (label, pct(ts, 50), pct(ts, 90), pct(ts, 99)))
        for r in range(2):
            c.fetch(2, r)  # prepared and cached before the clients start
        lat, nbytes, errors = [], [], []
        lock = threading.Lock()
        start = threading.Barrier(args.clients)

        def client(i):
            try:
                with shardcast.Client(address, timeout=60) as ci:
                    start.wait()
                    t = time.perf_counter()
                    arrays = ci.fetch(2, i % 2)
                    secs = time.perf_counter() - t
                with lock:
                    lat.append(secs * 1e3)
                    nbytes.append(sum(a.nbytes for a in arrays.values()))
            except Exception as e:  # noqa: BLE001
                with lock:
                    errors.append(repr(e))

        threads = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
        t = time.perf_counter()
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        wall = time.perf_counter() - t
        print("%d concurrent stream clients (fetch TP 2, %.0f KB each): p50 %.1f ms, p99 %.1f ms (p99/p50 %.2f), "
              "aggregate %.1f MB/s, %d errors" % (args.clients, statistics.mean(nbytes) / 1e3, pct(lat, 50),
                                                   pct(lat, 99), pct(lat, 99) / pct(lat, 50), sum(nbytes) / wall / 1e6,
                                                   len(errors)))
        for e in errors[:5]:
            print("  error:", e)
        c.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)


if __name__ == "__main__":
    main()
