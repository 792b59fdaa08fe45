"""The fault matrix of shardcastd on `--device cpu`, as CI runs it: each fault with its expected
outcome asserted (a named error within a bound, no hang, other clients unaffected, exit codes),
and the resource limits: sockets bound to loopback only, bounded rank memory under thousands of
distinct requests, and concurrent fetches under a tight budget (served or RESOURCE_EXHAUSTED,
never NOT_FOUND).

| fault                                   | expected outcome                                                    |
|-----------------------------------------|---------------------------------------------------------------------|
| kill -9 of a loader rank, mid-transfer  | the client fails at once naming the rank; status failed naming it  |
| SIGSTOP of a loader rank, mid-transfer  | rank 0 marks it failed (~3-5 s); the in-flight client is told then, |
|                                         | UNAVAILABLE "loader rank 1 failed", long before its own deadline   |
| data file removed / truncated after the | nothing: the tensors were read once; the same bytes are served      |
| load                                    |                                                                     |
| data file truncated before the load     | refused within seconds, naming the file and "passes the end of the |
|                                         | file" (the reader checks sizes at open: every rank prints the error |
|                                         | and exits 1; a later failure shows as status failed, same reason)  |
| FIFO in place of a data file            | refused within seconds, naming the file: "is a FIFO, not a regular |
|                                         | file" (no blocking open)                                           |
| data files corrupted (same size) before | the ranks start, the load fails (CRC or record error): status      |
| the load                                | failed naming it; --ready-file gets {"state": "failed", "reason"}; |
|                                         | after --exit-on-failure rank 0 aborts the job: mpirun exits 3      |
| client killed mid-transfer              | other clients get exact bytes; clients_active returns to 0         |
| SIGTERM to the ranks                    | health NOT_SERVING, state stopping, new requests UNAVAILABLE,      |
|                                         | in-flight transfers finish, every rank and mpirun exit 0           |
| SIGUSR1 to mpirun (forwarded)           | the same drain; mpirun exits 0                                      |
"""
import ctypes
import glob
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import junit_unittest  # noqa: E402
from service_test import CLIENT_SO, DEADLINE, FIXTURES, GENERATOR, SHARDCAST, Service, fetch_json  # noqa: E402
from testenv import runfile  # noqa: E402

HEALTH_PROBE = runfile("shardcast/tests/health_probe", "SHARDCAST_HEALTH_PROBE")
VIT = os.path.join(FIXTURES, "dcp-torch2.11", "vit_tp2")
# The C ABI's status codes (absl / gRPC numbering).
NOT_FOUND, RESOURCE_EXHAUSTED, UNAVAILABLE = 5, 8, 14


class Abi:
    """The C ABI (libshardcast_client.so) through ctypes: manifests and receives in this process."""

    def __init__(self, address, timeout=60.0):
        self.lib = ctypes.CDLL(CLIENT_SO)
        self.lib.shardcast_free.argtypes = [ctypes.c_void_p]
        self.client = ctypes.c_void_p()
        err = ctypes.c_char_p()
        rc = self.lib.shardcast_connect(address.encode(), None, ctypes.c_double(timeout), ctypes.byref(self.client),
                                        ctypes.byref(err))
        if rc != 0:
            raise AssertionError("connect: %s" % err.value)

    def close(self):
        self.lib.shardcast_close(self.client)

    def manifest(self, request):
        """(0, manifest text) or (code, error message)."""
        out, err = ctypes.c_void_p(), ctypes.c_char_p()
        rc = self.lib.shardcast_manifest(self.client, json.dumps(request).encode(), ctypes.byref(out), ctypes.byref(err))
        if rc != 0:
            return rc, err.value.decode()
        text = ctypes.cast(out, ctypes.c_char_p).value
        self.lib.shardcast_free(out)
        return 0, text

    def receive(self, manifest_text):
        """(0, report) or (code, error message): every shard of the manifest into host buffers."""
        shards = json.loads(manifest_text)["shards"]
        n = len(shards)
        names = (ctypes.c_char_p * n)(*[s["name"].encode() for s in shards])
        bufs = [ctypes.create_string_buffer(max(1, s["nbytes"])) for s in shards]
        ptrs = (ctypes.c_void_p * n)(*[ctypes.cast(b, ctypes.c_void_p) for b in bufs])
        sizes = (ctypes.c_uint64 * n)(*[s["nbytes"] for s in shards])
        report, err = ctypes.c_void_p(), ctypes.c_char_p()
        rc = self.lib.shardcast_receive(self.client, manifest_text, ctypes.c_size_t(n), names, ptrs, sizes, -1,
                                        ctypes.byref(report), ctypes.byref(err))
        if rc != 0:
            return rc, err.value.decode()
        self.lib.shardcast_free(report)
        return 0, ""


def rank_pids(svc):
    return {r["rank"]: r["pid"] for r in svc.status()["ranks"]}


def rss_bytes(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS for pid %d" % pid)


def wait_for(predicate, timeout, step=0.05):
    end = time.time() + timeout
    while time.time() < end:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    return predicate()


def listening_sockets(pid):
    """(address, port) of every TCP socket in LISTEN state that process `pid` holds."""
    inodes = set()
    for fd in glob.glob("/proc/%d/fd/*" % pid):
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = []
    for table, family in (("tcp", socket.AF_INET), ("tcp6", socket.AF_INET6)):
        try:
            lines = open("/proc/%d/net/%s" % (pid, table)).read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state != "0A" or inode not in inodes:  # 0A: LISTEN
                continue
            addr_hex, port_hex = local.split(":")
            raw = bytes.fromhex(addr_hex)
            # /proc prints each 32-bit word in host (little-endian) order.
            raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
            found.append((socket.inet_ntop(family, raw), int(port_hex, 16)))
    return found


def is_loopback(addr):
    return addr.startswith("127.") or addr in ("::1", "::ffff:127.0.0.1") or addr.startswith("::ffff:127.")


def shardcastd_pids(svc):
    out = subprocess.run(["ps", "-o", "pid=,comm=", "--ppid", str(svc.proc.pid)], capture_output=True, text=True).stdout
    return [int(line.split()[0]) for line in out.splitlines() if line.split()[1] == "shardcastd"]


class LoopbackBinding(unittest.TestCase):
    def test_listen_127_0_0_1_binds_no_other_address(self):
        svc = Service(VIT, listen="127.0.0.1:0")
        try:
            pids = shardcastd_pids(svc)
            self.assertEqual(sorted(pids), sorted(rank_pids(svc).values()))  # this job's ranks only
            self.assertTrue(svc.address.startswith("127.0.0.1:"), svc.address)
            seen = []
            for pid in pids:
                socks = listening_sockets(pid)
                self.assertTrue(socks, "no listening socket found for pid %d" % pid)
                seen += socks
                for addr, port in socks:
                    self.assertTrue(is_loopback(addr), "shardcastd pid %d listens on %s:%d" % (pid, addr, port))
            # Rank 0's client port and every rank's data-plane port are among them, advertised as bound.
            ports = {p for _, p in seen}
            self.assertIn(int(svc.address.rsplit(":", 1)[1]), ports)
            for r in svc.status()["ranks"]:
                self.assertTrue(r["address"].startswith("127.0.0.1:"), r["address"])
                self.assertIn(int(r["address"].rsplit(":", 1)[1]), ports)
            fetch_json(svc, 2, 1)
        finally:
            svc.stop()

    def test_listen_without_host_is_refused(self):
        p = subprocess.run([runfile("shardcast/server/shardcastd", "SHARDCASTD_BIN"), "--checkpoint", VIT, "--device",
                            "cpu", "--listen", ":0"], capture_output=True, text=True, timeout=60)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("--listen ':0' is not HOST:PORT", p.stderr)


class Resources(unittest.TestCase):
    def test_rank_memory_stays_bounded_under_thousands_of_distinct_requests(self):
        # 1500 distinct requests (a rename that matches nothing makes each one new) on a small
        # checkpoint, each received; the cache keeps at most 64 of them. Before: +230 MB per rank
        # per 2000 requests, linearly; now flat after the first few hundred.
        # Under the sanitizers the runtimes' own memory grows too (ASan's quarantine of freed
        # blocks, made small here; TSan's shadow): a looser bound that still fails on the linear
        # growth of before (~140 MB over these 1200 requests).
        sanitizer = os.environ.get("SHARDCAST_SANITIZER", "")
        bound = (64 << 20) if sanitizer else (24 << 20)
        saved = os.environ.get("ASAN_OPTIONS")
        if saved is not None:
            os.environ["ASAN_OPTIONS"] = saved + ":quarantine_size_mb=16"
        try:
            svc = Service(VIT, extra=("--max-cached-requests", "64"))
        finally:
            if saved is not None:
                os.environ["ASAN_OPTIONS"] = saved
        abi = Abi(svc.address)
        try:
            pids = rank_pids(svc)

            def run(start, stop):
                for i in range(start, stop):
                    rc, text = abi.manifest({"tp_size": 2, "tp_rank": i % 2, "renames": ["nomatch%d.=x." % i]})
                    self.assertEqual(rc, 0, text)
                    rc, msg = abi.receive(text)  # ends the manifest's lease
                    self.assertEqual(rc, 0, msg)

            run(0, 300)
            before = {r: rss_bytes(p) for r, p in pids.items()}
            run(300, 1500)
            after = {r: rss_bytes(p) for r, p in pids.items()}
            print("rank RSS after 300 / 1500 requests: %s / %s" % (before, after), file=sys.stderr)
            for r in pids:
                self.assertLess(after[r] - before[r], bound, "rank %d grew from %d to %d bytes" % (r, before[r], after[r]))
            st = svc.status()
            self.assertLessEqual(len(st["cached_layouts"]), 64)
        finally:
            abi.close()
            svc.stop()

    def test_host_bytes_of_names_count_against_the_budget(self):
        svc = Service(VIT)
        abi = Abi(svc.address)
        try:
            def held():
                return sum(r["memory_held"] for r in svc.status()["ranks"])

            held0 = held()
            rc, text = abi.manifest({"tp_size": 1, "tp_rank": 0, "renames": ["model.=%s." % ("n" * 1000)]})
            self.assertEqual(rc, 0, text)
            shards = len(json.loads(text)["shards"])
            self.assertGreater(shards, 10)
            # TP 1 cuts nothing (whole tensors are aliased): what the cache now holds is the names,
            # on both ranks (every rank keeps the request's description of every shard). Rank 0
            # polls the ranks' figures every 250 ms.
            self.assertTrue(wait_for(lambda: held() - held0 > 2 * shards * 1000, 3), (held0, held()))
        finally:
            abi.close()
            svc.stop()

    def test_200_concurrent_fetches_under_a_tight_budget_never_get_not_found(self):
        # Tensors take ~170 KB a rank; the budget leaves room for a few requests' shards.
        svc = Service(VIT, extra=("--memory-budget", "600KiB"))
        results = []
        lock = threading.Lock()

        def one(i):
            abi = Abi(svc.address)
            try:
                rc, text = abi.manifest({"tp_size": 2, "tp_rank": i % 2, "renames": ["nomatch%d.=x." % i]})
                if rc == 0:
                    rc, text = abi.receive(text)
            finally:
                abi.close()
            with lock:
                results.append((rc, text))

        try:
            threads = [threading.Thread(target=one, args=(i,)) for i in range(200)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(120)
            self.assertEqual(len(results), 200)
            codes = [rc for rc, _ in results]
            self.assertNotIn(NOT_FOUND, codes, [m for rc, m in results if rc == NOT_FOUND][:3])
            self.assertEqual(set(codes) - {0, RESOURCE_EXHAUSTED}, set(), [m for rc, m in results if rc not in (0, 8)][:3])
            self.assertGreater(codes.count(0), 0)
            print("200 concurrent fetches: %d served, %d RESOURCE_EXHAUSTED" % (codes.count(0), codes.count(8)),
                  file=sys.stderr)
            for rc, msg in results:
                if rc == RESOURCE_EXHAUSTED:
                    self.assertIn("--memory-budget", msg)
            self.assertEqual(svc.status()["state"], "ready")
            fetch_json(svc, 2, 0)  # pins ended or expired: the service still serves
        finally:
            svc.stop()


class Faults(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp()

    def copy_checkpoint(self, name):
        dst = os.path.join(self.tmp, name)
        subprocess.run(["cp", "-r", VIT, dst], check=True)
        return dst

    def data_files(self, ckpt):
        files = sorted(glob.glob(os.path.join(ckpt, "*.distcp")))
        self.assertTrue(files)
        return files

    def test_sigstop_of_a_loader_rank_tells_in_flight_clients_at_once(self):
        svc = Service(VIT)
        abi = Abi(svc.address, timeout=60.0)
        pid = rank_pids(svc)[1]
        try:
            rc, text = abi.manifest({"tp_size": 1, "tp_rank": 0})
            self.assertEqual(rc, 0, text)
            os.kill(pid, signal.SIGSTOP)
            t0 = time.time()
            rc, msg = abi.receive(text)  # rank 1's stream hangs until the client is told
            took = time.time() - t0
            self.assertEqual(rc, UNAVAILABLE, msg)
            self.assertIn("loader rank 1 failed", msg)
            self.assertNotIn("raise the client timeout", msg)
            self.assertLess(took, DEADLINE + 4)  # the client's own deadline is 60 s
            self.assertEqual(svc.status()["state"], "failed")
        finally:
            os.kill(pid, signal.SIGKILL)
            abi.close()
            svc.stop()

    def test_manifests_waiting_on_a_frozen_rank_take_no_thread_per_rank(self):
        # Rank 0 used to start a thread per rank per manifest; now its calls to the ranks are
        # asynchronous: 24 manifests stuck on a frozen rank 1 cost rank 0 about one server thread
        # each (was two threads each, plus the server's).
        svc = Service(VIT)
        pids = rank_pids(svc)

        def threads(pid):
            with open("/proc/%d/status" % pid) as f:
                return int(f.read().split("Threads:")[1].split()[0])

        try:
            base = threads(pids[0])
            os.kill(pids[1], signal.SIGSTOP)
            results = []

            def one(i):
                abi = Abi(svc.address)
                try:
                    results.append(abi.manifest({"tp_size": 4, "tp_rank": i % 4, "renames": ["t%d.=x." % i]})[0])
                finally:
                    abi.close()

            workers = [threading.Thread(target=one, args=(i,)) for i in range(24)]
            for w in workers:
                w.start()
            time.sleep(1.5)
            peak = threads(pids[0])
            for w in workers:
                w.join(DEADLINE + 10)
            self.assertEqual(len(results), 24)
            self.assertTrue(all(rc == UNAVAILABLE for rc in results), results)
            print("rank 0 threads: %d before, %d with 24 stuck manifests" % (base, peak), file=sys.stderr)
            self.assertLess(peak - base, 40, (base, peak))
        finally:
            os.kill(pids[1], signal.SIGKILL)
            svc.stop()

    def test_a_manifest_waiting_on_a_frozen_rank_fails_once_the_rank_is_marked_failed(self):
        # With a 30 s deadline, a manifest whose Prepare waits on a frozen rank used to take the
        # whole 30 s; rank 0 now cancels it when it marks the rank failed (~3-5 s).
        svc = Service(VIT, deadline=30)
        pids = rank_pids(svc)
        abi = Abi(svc.address, timeout=60.0)
        try:
            os.kill(pids[1], signal.SIGSTOP)
            t0 = time.time()
            rc, text = abi.manifest({"tp_size": 2, "tp_rank": 0, "renames": ["frozen.=x."]})
            took = time.time() - t0
            self.assertEqual(rc, UNAVAILABLE, text)
            self.assertIn("loader rank 1", text)
            self.assertLess(took, 15, text)
        finally:
            abi.close()
            os.kill(pids[1], signal.SIGKILL)
            svc.stop()

    def test_kill_9_of_a_loader_rank_mid_transfer_fails_the_client_at_once(self):
        svc = Service(VIT)
        abi = Abi(svc.address, timeout=60.0)
        pid = rank_pids(svc)[1]
        try:
            rc, text = abi.manifest({"tp_size": 1, "tp_rank": 0})
            self.assertEqual(rc, 0, text)
            os.kill(pid, signal.SIGSTOP)  # hold rank 1's stream in flight, then kill it there
            out = {}
            th = threading.Thread(target=lambda: out.update(r=abi.receive(text)))
            th.start()
            time.sleep(0.5)
            t0 = time.time()
            os.kill(pid, signal.SIGKILL)
            th.join(DEADLINE + 6)
            self.assertFalse(th.is_alive(), "the receive hung after the rank was killed")
            rc, msg = out["r"]
            self.assertNotEqual(rc, 0)
            self.assertIn("loader rank 1", msg)
            self.assertLess(time.time() - t0, DEADLINE + 2)
            state = wait_for(lambda: svc.status()["state"] == "failed", DEADLINE + 5)
            self.assertTrue(state)
            self.assertIn("loader rank 1", svc.status()["reason"])
        finally:
            abi.close()
            svc.stop()

    def test_data_files_removed_or_truncated_after_the_load_change_nothing(self):
        ckpt = self.copy_checkpoint("after_load")
        svc = Service(ckpt)
        try:
            before = fetch_json(svc, 2, 1)
            files = self.data_files(ckpt)
            os.remove(files[0])
            with open(files[1], "r+b") as f:
                f.truncate(10)
            after = fetch_json(svc, 2, 0)
            again = fetch_json(svc, 2, 1)
            self.assertEqual(again["tensors"], before["tensors"])
            self.assertEqual(len(after["tensors"]), len(before["tensors"]))
            self.assertEqual(svc.status()["state"], "ready")
        finally:
            svc.stop()

    def start_expecting_failure(self, ckpt):
        """Starts shardcastd on a checkpoint that cannot load. Either the ranks refuse it while
        opening it (the reader checks every data file's size and kind at open: mpirun exits
        non-zero, the error on stderr) or the service starts and turns `failed`. Returns
        ({"reason": ...}, seconds), or (None, seconds) if neither happened in time."""
        d = tempfile.mkdtemp()
        cmd = ["mpirun", "--allow-run-as-root", "--oversubscribe", "--mca", "orte_abort_on_non_zero_status", "0", "-np",
               "2", runfile("shardcast/server/shardcastd", "SHARDCASTD_BIN"), "--checkpoint", ckpt, "--device", "cpu",
               "--listen", "127.0.0.1:0", "--deadline", str(DEADLINE), "--layout", "megatron"]
        log = open(os.path.join(d, "log"), "w+")
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        t0 = time.time()
        try:
            def serving_or_exited():
                lines = [l.split("serving on ")[1].split()[0] for l in open(log.name) if "serving on " in l]
                return lines or proc.poll() is not None

            self.assertTrue(wait_for(serving_or_exited, 20), open(log.name).read())
            if proc.poll() is not None:
                # Every rank printed its error and exited 1; mpirun itself exits 0 under
                # `orte_abort_on_non_zero_status 0` (Open MPI 4.1's behaviour), so the log is
                # what tells.
                errors = [l for l in open(log.name) if ": error: " in l]
                self.assertTrue(errors, open(log.name).read())
                return {"reason": "".join(errors)}, time.time() - t0
            address = [l.split("serving on ")[1].split()[0] for l in open(log.name) if "serving on " in l][0]

            def failed():
                p = subprocess.run([SHARDCAST, "status", "--server", address, "--json"], capture_output=True, text=True)
                return p.returncode == 0 and json.loads(p.stdout)["state"] == "failed" and json.loads(p.stdout)

            st = wait_for(failed, 10, step=0.2)
            return st, time.time() - t0
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    def test_data_file_truncated_before_the_load_fails_naming_the_file(self):
        ckpt = self.copy_checkpoint("truncated")
        victim = self.data_files(ckpt)[0]
        with open(victim, "r+b") as f:
            f.truncate(100)
        st, took = self.start_expecting_failure(ckpt)
        self.assertTrue(st, "the service neither refused the checkpoint nor reported failed")
        self.assertIn(os.path.basename(victim), st["reason"])
        self.assertIn("passes the end of the file", st["reason"])
        self.assertLess(took, 15)

    def test_fifo_in_place_of_a_data_file_fails_naming_the_file(self):
        # The reader refuses non-regular files before any blocking open (issue 9, item 7): before
        # that fix the service stayed 'loading' for ever.
        ckpt = self.copy_checkpoint("fifo")
        victim = self.data_files(ckpt)[0]
        os.remove(victim)
        os.mkfifo(victim)
        try:
            st, took = self.start_expecting_failure(ckpt)
        finally:
            try:  # release a reader blocked in open(), if any
                os.close(os.open(victim, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:
                pass
        self.assertTrue(st, "the service neither refused the checkpoint nor reported failed")
        self.assertIn(os.path.basename(victim), st["reason"])
        self.assertIn("is a FIFO, not a regular file", st["reason"])
        self.assertLess(took, 15)

    def test_a_service_that_fails_while_loading_exits_3_and_the_ready_file_says_why(self):
        ckpt = self.copy_checkpoint("corrupt")
        for victim in self.data_files(ckpt):  # same size (the open-time checks pass), bad content
            size = os.path.getsize(victim)
            with open(victim, "r+b") as f:
                f.seek(size // 3)
                f.write(b"\x5a" * (size // 3))
        d = tempfile.mkdtemp()
        ready = os.path.join(d, "ready.json")
        grace = 3
        cmd = ["mpirun", "--allow-run-as-root", "--oversubscribe", "--mca", "orte_abort_on_non_zero_status", "0", "-np",
               "2", runfile("shardcast/server/shardcastd", "SHARDCASTD_BIN"), "--checkpoint", ckpt, "--device", "cpu",
               "--listen", "127.0.0.1:0", "--deadline", str(DEADLINE), "--layout", "megatron", "--ready-file", ready,
               "--exit-on-failure", str(grace)]
        log = open(os.path.join(d, "log"), "w+")
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            st = wait_for(lambda: os.path.exists(ready) and json.load(open(ready)), 20, step=0.1)
            failed_at = time.time()
            self.assertTrue(st, open(log.name).read())
            self.assertEqual(st["state"], "failed")
            self.assertIn("loader rank", st["reason"])
            self.assertGreater(st["pid"], 0)
            # During the grace period the service still explains itself.
            p = subprocess.run([SHARDCAST, "status", "--server", st["address"], "--json"], capture_output=True, text=True)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual(json.loads(p.stdout)["state"], "failed")
            self.assertEqual(json.loads(p.stdout)["reason"], st["reason"])
            rc = proc.wait(timeout=grace + DEADLINE + 10)
            took = time.time() - failed_at
            text = open(log.name).read()
            self.assertGreater(took, grace - 1, text)
            self.assertIn("exiting with status 3 in 3 s (--exit-on-failure)", text)
            # Rank 0 ends the job with MPI_Abort(3): mpirun exits 3 although it ignores its ranks'
            # exit statuses under orte_abort_on_non_zero_status 0.
            self.assertEqual(rc, 3, text)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            log.close()

    def test_client_killed_mid_transfer_leaves_others_unaffected(self):
        svc = Service(VIT)
        try:
            base = fetch_json(svc, 2, 0)
            procs = []
            for _ in range(3):
                p = subprocess.Popen([SHARDCAST, "fetch", "--server", svc.address, "--tp", "1", "--rank", "0", "--digest"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                procs.append(p)
            time.sleep(0.05)
            for p in procs:
                p.kill()
                p.wait()
            again = fetch_json(svc, 2, 0)
            self.assertEqual(again["tensors"], base["tensors"])
            self.assertTrue(wait_for(lambda: sum(r["clients_active"] for r in svc.status()["ranks"]) == 0, 10))
            self.assertEqual(svc.status()["state"], "ready")
        finally:
            svc.stop()

    def drain(self, svc, send_signal):
        """Signals the job, then checks the drain; returns mpirun's exit code."""
        results = []

        def fetcher():  # started just before the signal: served whole, or refused as shutting down
            p = svc.cli("fetch", "--tp", "2", "--rank", "1", "--digest", "--json", check=False)
            results.append(p)

        th = threading.Thread(target=fetcher)
        th.start()
        t0 = time.time()
        send_signal()
        health = wait_for(lambda: subprocess.run([HEALTH_PROBE, svc.address], capture_output=True, text=True).stdout
                          .strip() == "NOT_SERVING", 1.5, step=0.02)
        self.assertTrue(health, "health never said NOT_SERVING")
        p = svc.cli("fetch", "--tp", "4", "--rank", "3", "--digest", check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("shutting down", p.stderr)
        try:
            rc = svc.proc.wait(timeout=DEADLINE + 6)
        except subprocess.TimeoutExpired:
            self.fail("shardcastd did not exit within the drain bound")
        self.assertLess(time.time() - t0, DEADLINE + 6)
        th.join(30)
        self.assertEqual(len(results), 1)
        if results[0].returncode != 0:
            self.assertIn("shutting down", results[0].stderr)
        else:
            self.assertEqual(len(json.loads(results[0].stdout)["tensors"]), 36)
        log = open(svc.log.name).read()
        self.assertIn("shardcastd rank 0: stopped", log)
        self.assertIn("shardcastd rank 1: stopped", log)
        return rc

    def test_sigterm_to_the_ranks_drains_and_every_rank_exits_0(self):
        svc = Service(VIT, listen="127.0.0.1:0")
        try:
            pids = list(rank_pids(svc).values())
            rc = self.drain(svc, lambda: [os.kill(p, signal.SIGTERM) for p in pids])
            self.assertEqual(rc, 0, open(svc.log.name).read())
        finally:
            svc.stop()

    def test_sigusr1_to_mpirun_drains_and_mpirun_exits_0(self):
        svc = Service(VIT, listen="127.0.0.1:0")
        try:
            rc = self.drain(svc, lambda: os.kill(svc.proc.pid, signal.SIGUSR1))
            self.assertEqual(rc, 0, open(svc.log.name).read())
        finally:
            svc.stop()


if __name__ == "__main__":
    junit_unittest.main()
