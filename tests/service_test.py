"""shardcastd end to end on the CPU, as CI runs it: `mpirun -np 2 shardcastd --device cpu` on the
shared fixtures; clients fetch every rank of TP 1, 2 and 4 over the stream transport and match
expected.json; 8 concurrent clients; status fields; tokens; a vanished client; a killed loader
rank. Every server is started and stopped by the tests themselves."""
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import junit_unittest  # noqa: E402
from testenv import fixtures_dir, runfile  # noqa: E402



SHARDCAST = runfile("shardcast/client/cli/shardcast", "SHARDCAST_BIN")
SHARDCASTD = runfile("shardcast/server/shardcastd", "SHARDCASTD_BIN")
FIXTURES = fixtures_dir()
LAYOUT = runfile("shardcast/tests/data/fixtures.layout", "SHARDCAST_LAYOUT")
GENERATOR = runfile("shardcast/tools/gen_synthetic_dcp.py", "SHARDCAST_GENERATOR")
CLIENT_SO = runfile("shardcast/client/libshardcast_client.so", "SHARDCAST_CLIENT_SO")
DEADLINE = 4  # seconds, the servers' --deadline


class Service:
    """One `mpirun -np N shardcastd` job."""

    def __init__(self, ckpt, ranks=2, token=None, layout=LAYOUT, extra=(), listen="localhost:0", deadline=DEADLINE,
                 wait_ready=True, launcher=True):
        self.dir = tempfile.mkdtemp()
        self.ready = os.path.join(self.dir, "ready.json")
        self.token_file = None
        args = []
        if token:
            self.token_file = os.path.join(self.dir, "token")
            with open(self.token_file, "w") as f:
                f.write(token + "\n")
            args += ["--token-file", self.token_file]
        cmd = [SHARDCASTD, "--checkpoint", ckpt, "--device", "cpu", "--listen", listen, "--ready-file", self.ready,
               "--deadline", str(deadline), "--layout", layout, *args, *extra]
        env = dict(os.environ)
        if launcher:
            cmd = ["mpirun", "--allow-run-as-root", "--oversubscribe", "--mca", "orte_abort_on_non_zero_status", "0",
                   "-np", str(ranks), *cmd]
        else:  # started on its own, as a Kubernetes sidecar container is: no launcher's variables
            env = {k: v for k, v in env.items() if not k.startswith(("OMPI_", "PMI", "PMIX_", "SLURM_"))}
        self.log = open(os.path.join(self.dir, "log"), "w")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True, env=env)
        end = time.time() + 60
        if not wait_ready:  # only until rank 0 serves (still loading, perhaps)
            while not self.serving_address():
                if self.proc.poll() is not None or time.time() > end:
                    self.stop()
                    raise AssertionError("shardcastd did not start:\n" + open(self.log.name).read())
                time.sleep(0.01)
            self.address = self.serving_address()
            return
        while not os.path.exists(self.ready):
            if self.proc.poll() is not None or time.time() > end:
                self.stop()
                raise AssertionError("shardcastd did not become ready:\n" + open(self.log.name).read())
            time.sleep(0.05)
        with open(self.ready) as f:
            self.address = json.load(f)["address"]

    def serving_address(self):
        lines = [l for l in open(self.log.name) if "shardcastd: serving on " in l]
        return lines[0].split("serving on ")[1].split()[0] if lines else None

    def cli(self, *args, token=True, check=True, timeout=120):
        extra = ["--server", self.address]
        if token and self.token_file:
            extra += ["--token-file", self.token_file]
        p = subprocess.run([SHARDCAST, args[0], *extra, *args[1:]], capture_output=True, text=True, timeout=timeout)
        if check and p.returncode != 0:
            raise AssertionError("shardcast %s failed (%d): %s" % (" ".join(args), p.returncode, p.stderr))
        return p

    def status(self):
        return json.loads(self.cli("status", "--json").stdout)

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()


def fetch_json(svc, tp, rank, *extra):
    return json.loads(svc.cli("fetch", "--tp", str(tp), "--rank", str(rank), "--digest", "--json", *extra).stdout)


class FixtureService(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        with open(os.path.join(FIXTURES, "dcp-torch2.11", "expected.json")) as f:
            cls.expected = json.load(f)["tensors"]
        cls.svc = Service(os.path.join(FIXTURES, "dcp-torch2.11", "vit_tp2"), token="s3cret-token")

    @classmethod
    def tearDownClass(cls):
        cls.svc.stop()

    def check(self, res, tp, rank):
        got = {t["key"]: t for t in res["tensors"]}
        self.assertEqual(sorted(got), sorted(self.expected))
        for key, exp in self.expected.items():
            self.assertEqual(got[key]["sha256"], exp["shards"][str(tp)][rank], "%s tp %d rank %d" % (key, tp, rank))
        self.assertEqual(res["report"]["transport"], "stream")
        self.assertEqual(res["report"]["crc_checked"], len(self.expected))

    def test_every_rank_of_tp_1_2_4_matches_expected(self):
        for tp in (1, 2, 4):
            for rank in range(tp):
                self.check(fetch_json(self.svc, tp, rank), tp, rank)

    def test_eight_concurrent_clients(self):
        results, errors = {}, []

        def one(i):
            tp, rank = (2, i % 2) if i < 4 else (4, i % 4)
            try:
                results[i] = (tp, rank, fetch_json(self.svc, tp, rank))
            except Exception as e:  # noqa: BLE001
                errors.append(e)

        threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(errors, [])
        self.assertEqual(len(results), 8)
        for tp, rank, res in results.values():
            self.check(res, tp, rank)

    def test_status_fields(self):
        fetch_json(self.svc, 2, 0)
        st = self.svc.status()
        self.assertEqual(st["state"], "ready")
        self.assertEqual(st["world_size"], 2)
        self.assertGreater(st["uptime_seconds"], 0)
        self.assertTrue(st["checkpoint"].endswith("vit_tp2"))
        ranks = st["ranks"]
        self.assertEqual([r["rank"] for r in ranks], [0, 1])
        self.assertEqual(sum(r["tensors_owned"] for r in ranks), len(self.expected))
        total = sum(sum(1 for _ in [0]) * 0 + r["bytes_selected"] for r in ranks)
        self.assertEqual(total, sum(self._nbytes(e) for e in self.expected.values()))
        for r in ranks:
            self.assertEqual(r["state"], "ready")
            self.assertEqual(r["device"], "cpu")
            self.assertGreaterEqual(r["bytes_read"], r["bytes_selected"])
            self.assertGreater(r["memory_held"], 0)
            self.assertGreater(r["pid"], 0)
            self.assertEqual(r["last_error"], "")
        self.assertGreater(sum(r["clients_served"] for r in ranks), 0)
        self.assertTrue(st["cached_layouts"])
        text = self.svc.cli("status").stdout
        self.assertIn("state       ready", text)
        self.assertEqual(self.svc.cli("status", "--wait-ready", "5").returncode, 0)

    @staticmethod
    def _nbytes(e):
        n = {"bfloat16": 2, "float16": 2, "float32": 4, "int64": 8}[e["dtype"]]
        for d in e["shape"]:
            n *= d
        return n

    def test_missing_and_wrong_token_are_refused(self):
        p = self.svc.cli("status", token=False, check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("requires a token", p.stderr)
        wrong = os.path.join(self.svc.dir, "wrong")
        with open(wrong, "w") as f:
            f.write("nope\n")
        p = subprocess.run([SHARDCAST, "fetch", "--server", self.svc.address, "--token-file", wrong, "--tp", "1",
                            "--rank", "0", "--digest"], capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 1)
        self.assertIn("wrong token", p.stderr)

    def test_bad_requests_get_clear_errors(self):
        p = self.svc.cli("fetch", "--tp", "3", "--rank", "0", "--digest", check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("does not divide by TP 3", p.stderr)
        self.assertIn("linear_fc1.weight [256, 64]", p.stderr)
        p = self.svc.cli("fetch", "--tp", "2", "--rank", "5", "--digest", check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("tp_rank 5 is not in 0..1", p.stderr)
        p = self.svc.cli("fetch", "--tp", "2", "--rank", "0", "--digest", "--rule", "x=bogus", check=False)
        self.assertEqual(p.returncode, 2)  # bad usage: refused before connecting (issue 12)
        self.assertIn("unknown rule", p.stderr)
        for extra, needle in ((["--layout", "nosuchpreset"], "neither a preset"), (["--rule", "x(=split:0"], "--rule"),
                              (["--device", "cuda:x"], "cuda:N")):
            p = self.svc.cli("fetch", "--tp", "2", "--rank", "0", "--digest", *extra, check=False)
            self.assertEqual(p.returncode, 2, (extra, p.stderr))
            self.assertIn(needle, p.stderr)

    def test_fetch_reports_unused_rules(self):
        # Issue 12: the server plans, but the manifest's keys tell the client which --rule cut nothing.
        typo = r"model\.visoin_model\..*=split:0"
        p = self.svc.cli("fetch", "--tp", "2", "--rank", "0", "--digest", "--rule", typo,
                         "--rule", r".*final_layernorm\.weight=replicate")
        self.assertEqual(p.stderr.count("warning:"), 1, p.stderr)
        self.assertIn("visoin_model", p.stderr)
        self.assertIn("matches no selected tensor", p.stderr)
        p = self.svc.cli("fetch", "--tp", "2", "--rank", "0", "--digest", "--rule", typo, "--strict-rules", check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("--strict-rules", p.stderr)
        self.assertEqual(p.stdout, "")

    def raw(self, text_proto, timeout=60):
        """Sends one ShardRequest (text format) straight to rank 0, without the client's checks."""
        raw_request = runfile("shardcast/tests/raw_request", "SHARDCAST_RAW_REQUEST")
        p = subprocess.run([raw_request, self.svc.address, self.svc.token_file, text_proto], capture_output=True,
                           text=True, timeout=timeout)
        return p.stdout.strip()

    def assert_still_serving(self):
        self.check(fetch_json(self.svc, 2, 1), 2, 1)

    def test_hostile_numbers_get_named_invalid_argument_and_the_rank_keeps_serving(self):
        # Issue 9 item 1: each of these crashed a loader rank, narrowed silently, or overflowed.
        emb = ".*word_embeddings.weight"
        cases = [
            ('tp_size: 2 tp_rank: 0 rules: "%s=vocab:0:1152921504606846976"' % emb,
             "the multiple M must be an integer in 1..1048576"),
            ('tp_size: 2 tp_rank: 0 rules: "%s=vocab:0:%d"' % (emb, (1 << 63) - 1), "the multiple M"),
            ('tp_size: 2 tp_rank: 0 rules: ".*linear_proj.weight=split:4294967296"',
             "the dim D must be an integer in 0..63"),
            ('tp_size: 2 tp_rank: 0 rules: ".*linear_qkv.weight=qkv:4294967296:4294967296"',
             "HEADS and GROUPS must be integers in 1..1048576"),
            ("tp_size: 2147483648 tp_rank: 0", "tp_size: 2147483648 is not in 1..65536"),
            ("tp_size: 4294967295 tp_rank: 4294967294", "tp_size: 4294967295 is not in 1..65536"),
            ("tp_size: 2 tp_rank: 2", "tp_rank 2 is not in 0..1"),
        ]
        for req, needle in cases:
            out = self.raw(req)
            self.assertTrue(out.startswith("INVALID_ARGUMENT: "), "%s -> %s" % (req, out))
            self.assertIn(needle, out, req)
        self.assert_still_serving()
        self.assertEqual(self.svc.status()["state"], "ready")

    def test_request_limits_are_enforced_by_the_server(self):
        too_many = " ".join('rules: "x%d=split:0"' % i for i in range(65))
        out = self.raw("tp_size: 1 tp_rank: 0 " + too_many)
        self.assertEqual(out, "INVALID_ARGUMENT: rules: 65 entries, more than the limit of 64 (README: Request limits)")
        out = self.raw('tp_size: 1 tp_rank: 0 rules: "%s=split:0"' % ("a" * 1050))
        self.assertIn("INVALID_ARGUMENT: ", out)
        self.assertIn("pattern of 1050 bytes, more than the limit of 1024", out)
        out = self.raw('tp_size: 1 tp_rank: 0 rules: "%s=split:0"' % ("a" * 5000))
        self.assertIn("INVALID_ARGUMENT: rules[0]: 5008 bytes", out)
        out = self.raw('tp_size: 1 tp_rank: 0 layout_text: "%s split:0"' % ("b" * 2000))
        self.assertIn("INVALID_ARGUMENT: layout_text:1: pattern of 2000 bytes", out)
        out = self.raw('tp_size: 1 tp_rank: 0 prefix: "%s"' % ("p" * 2000))
        self.assertIn("INVALID_ARGUMENT: prefix: 2000 bytes, more than the limit of 1024", out)
        out = self.raw("tp_size: 1 tp_rank: 0 " + " ".join('renames: "a=b"' for _ in range(65)))
        self.assertIn("INVALID_ARGUMENT: renames: 65 entries", out)
        # The client refuses the same before sending.
        p = self.svc.cli("fetch", "--tp", "1", "--rank", "0", "--digest", *[a for i in range(65) for a in ("--rule", "x%d=split:0" % i)],
                         check=False)
        self.assertEqual(p.returncode, 2)  # bad usage (issue 12)
        self.assertIn("rules: 65 entries, more than the limit of 64", p.stderr)
        self.assert_still_serving()

    def test_an_oversized_message_is_refused_before_it_is_parsed(self):
        # 5 MiB of renames: over the 4 MiB a message may be on any port, refused by gRPC itself.
        with tempfile.NamedTemporaryFile("w", suffix=".txt") as f:
            f.write("tp_size: 1 tp_rank: 0 " + " ".join('renames: "%s=b"' % ("a" * 1000) for _ in range(5 * 1024)))
            f.flush()
            out = self.raw("@" + f.name)
        self.assertTrue(out.startswith("RESOURCE_EXHAUSTED: "), out)
        self.assertIn("larger than max", out)
        self.assert_still_serving()

    def test_a_request_naming_a_path_is_refused_without_opening_it(self):
        # Issue 9 item 2: the server opened the request's layout as a file and quoted its first line.
        for path in ("/etc/passwd", "/proc/self/environ", "/dev/zero", "../../etc/hostname", "fixtures.layout"):
            t0 = time.time()
            out = self.raw('tp_size: 1 tp_rank: 0 layout: "%s"' % path)
            self.assertLess(time.time() - t0, 10)
            self.assertTrue(out.startswith("INVALID_ARGUMENT: layout: '%s' is not a preset" % path), out)
            self.assertIn("send the layout's text instead (layout_text", out)
            self.assertNotIn("root:", out)
            self.assertNotIn("PATH=", out)
        for r in self.svc.status()["ranks"]:
            self.assertLess(r["memory_held"], 64 << 20)
        self.assert_still_serving()

    def test_cli_reads_a_layout_file_locally_and_sends_its_text(self):
        res = fetch_json(self.svc, 2, 0, "--layout", LAYOUT)
        self.check(res, 2, 0)
        # A file the client cannot use is a usage error (exit 2, issue 12); nothing reaches the server.
        p = self.svc.cli("fetch", "--tp", "2", "--rank", "0", "--digest", "--layout", "/dev/zero", check=False)
        self.assertEqual(p.returncode, 2)
        self.assertIn("not a regular file", p.stderr)
        # So is an unknown preset name (neither a preset nor a file), naming the presets.
        p = self.svc.cli("fetch", "--tp", "2", "--rank", "0", "--digest", "--layout", "no-such-preset", check=False)
        self.assertEqual(p.returncode, 2)
        self.assertIn("is neither a preset (megatron, replicate)", p.stderr)

    def test_heavy_patterns_do_not_block_other_clients(self):
        # Issue 9 item 5: 200 heavy Unicode-class patterns (13 KB) blocked every client for 49 s under
        # the prepare lock. Now they are compiled outside it, under RE2's memory limit and a layout
        # budget: they fail fast, and other clients are served meanwhile.
        heavy = "\\n".join(r"[\\p{L}\\p{N}]{20}[\\p{Greek}\\p{Han}]{10}.*%d split:0" % i for i in range(200))
        stop, outcomes = threading.Event(), []

        def hostile():
            while not stop.is_set():
                t0 = time.time()
                outcomes.append((self.raw('tp_size: 1 tp_rank: 0 layout_text: "%s"' % heavy), time.time() - t0))

        threads = [threading.Thread(target=hostile) for _ in range(2)]
        for t in threads:
            t.start()
        try:
            time.sleep(0.5)
            for i in range(3):
                t0 = time.time()
                # A new request each time (a rename makes it distinct): it must be planned and cut.
                res = fetch_json(self.svc, 4, i, "--rename", "model.=heavy%d." % i)
                self.assertLess(time.time() - t0, 10)
                self.assertEqual(len(res["tensors"]), len(self.expected))
        finally:
            stop.set()
            for t in threads:
                t.join()
        self.assertTrue(outcomes)
        for out, secs in outcomes:
            self.assertTrue(out.startswith("INVALID_ARGUMENT: "), out)
            self.assertIn("bad pattern", out)
            self.assertLess(secs, 10)

    def test_fetch_writes_safetensors(self):
        import safetensors
        with tempfile.TemporaryDirectory() as d:
            out = os.path.join(d, "r1.safetensors")
            self.svc.cli("fetch", "--tp", "2", "--rank", "1", "--out", out, "--prefix", "model.vision_model.",
                         "--rename", "model.vision_model.=vision.")
            with open(out, "rb") as f:
                tensors = dict(safetensors.deserialize(f.read()))
        key = "model.vision_model.decoder.layers.0.mlp.linear_fc1.weight"
        got = tensors["vision.decoder.layers.0.mlp.linear_fc1.weight"]
        self.assertEqual(hashlib.sha256(bytes(got["data"])).hexdigest(), self.expected[key]["shards"]["2"][1])


    def test_c_abi_receives_into_caller_buffers(self):
        import ctypes
        lib = ctypes.CDLL(CLIENT_SO)
        lib.shardcast_free.argtypes = [ctypes.c_void_p]
        err = ctypes.c_char_p()
        client = ctypes.c_void_p()
        token = open(self.svc.token_file).read().strip().encode()
        rc = lib.shardcast_connect(self.svc.address.encode(), token, ctypes.c_double(30.0), ctypes.byref(client),
                                   ctypes.byref(err))
        self.assertEqual(rc, 0, err.value)
        try:
            out = ctypes.c_void_p()
            self.assertEqual(lib.shardcast_status(client, ctypes.byref(out), ctypes.byref(err)), 0, err.value)
            status = json.loads(ctypes.cast(out, ctypes.c_char_p).value)
            lib.shardcast_free(out)
            self.assertEqual(status["state"], "ready")
            req = json.dumps({"tp_size": 2, "tp_rank": 1}).encode()
            self.assertEqual(lib.shardcast_manifest(client, req, ctypes.byref(out), ctypes.byref(err)), 0, err.value)
            manifest_text = ctypes.cast(out, ctypes.c_char_p).value
            lib.shardcast_free(out)
            manifest = json.loads(manifest_text)
            shards = manifest["shards"]
            n = len(shards)
            names = (ctypes.c_char_p * n)(*[s["name"].encode() for s in shards])
            bufs = [ctypes.create_string_buffer(max(1, s["nbytes"])) for s in shards]
            ptrs = (ctypes.c_void_p * n)(*[ctypes.cast(b, ctypes.c_void_p) for b in bufs])
            sizes = (ctypes.c_uint64 * n)(*[s["nbytes"] for s in shards])
            report = ctypes.c_void_p()
            rc = lib.shardcast_receive(client, manifest_text, ctypes.c_size_t(n), names, ptrs, sizes, -1,
                                       ctypes.byref(report), ctypes.byref(err))
            self.assertEqual(rc, 0, err.value)
            rep = json.loads(ctypes.cast(report, ctypes.c_char_p).value)
            lib.shardcast_free(report)
            self.assertEqual(rep["crc_checked"], n)
            for s, b in zip(shards, bufs):
                self.assertEqual(hashlib.sha256(b.raw[:s["nbytes"]]).hexdigest(), self.expected[s["key"]]["shards"]["2"][1])
            # A wrong buffer size is refused before any byte moves, with a status code and message.
            sizes[0] = sizes[0] + 1
            rc = lib.shardcast_receive(client, manifest_text, ctypes.c_size_t(n), names, ptrs, sizes, -1, None,
                                       ctypes.byref(err))
            self.assertEqual(rc, 3)  # INVALID_ARGUMENT
            self.assertIn(b"nothing was transferred", err.value)
        finally:
            lib.shardcast_close(client)


class NoService(unittest.TestCase):
    """Issue 12: nothing listening at the address fails at once, naming it."""

    def test_refused_connection_fails_within_two_seconds(self):
        for args in (["status", "--server", "127.0.0.1:1"], ["status", "--server", "localhost:1", "--json"],
                     ["fetch", "--server", "127.0.0.1:1", "--tp", "1", "--rank", "0", "--digest"]):
            start = time.monotonic()
            p = subprocess.run([SHARDCAST, *args], capture_output=True, text=True, timeout=120)
            self.assertLess(time.monotonic() - start, 2.0, args)
            self.assertEqual(p.returncode, 1, p.stderr)
            self.assertIn("shardcastd at %s" % args[2], p.stderr)
            self.assertIn("is it running", p.stderr)

    def test_version(self):
        cli = subprocess.run([SHARDCAST, "--version"], capture_output=True, text=True, timeout=30, check=True).stdout
        daemon = subprocess.run([SHARDCASTD, "--version"], capture_output=True, text=True, timeout=30,
                                check=True).stdout
        self.assertRegex(cli, r"^shardcast \d+\.\d+\.\d+\S*\n$")
        self.assertEqual(daemon, cli.replace("shardcast ", "shardcastd ", 1))


class GluNotesService(unittest.TestCase):
    """The megatron preset's fc1 through the service: the rule inferred from the stored grid, or the
    assumption stated in the manifest's notes and warned once by `shardcast fetch`."""

    def gen(self, d, name, writers, *extra):
        path = os.path.join(d, name)
        subprocess.run([sys.executable, GENERATOR, path, "--preset", "tiny", "--writers", str(writers),
                        "--with-llm-decoy", "0.05", *extra], check=True, capture_output=True)
        return path

    def test_inferred_rule_and_assumption_reach_the_client(self):
        key = "model.language_model.decoder.layers.0.mlp.linear_fc1.weight"
        with tempfile.TemporaryDirectory() as d:
            for name, writers, extra, note in (("glu", 2, ["--glu-decoy"], "sections:0:2 inferred from the stored chunk grid"),
                                               ("tp1", 1, [], "assumed not gated (split:0)")):
                path = self.gen(d, name, writers, *extra)
                svc = Service(path, layout="megatron")
                try:
                    p = svc.cli("fetch", "--tp", "2", "--rank", "1", "--digest", "--json", "--prefix", key)
                    res = json.loads(p.stdout)
                    self.assertEqual(len(res["notes"]), 1, name)
                    self.assertIn(key + ": " + note, res["notes"][0])
                    self.assertEqual(p.stderr.count("warning:"), 1, p.stderr)
                    local = subprocess.run([SHARDCAST, "reshard", path, "--tp", "2", "--rank", "1", "--layout", "megatron",
                                            "--digest", "--json", "--prefix", key], capture_output=True, text=True,
                                           check=True)
                    self.assertEqual(res["tensors"][0]["sha256"], json.loads(local.stdout)["tensors"][0]["sha256"])
                    self.assertEqual(res["tensors"][0]["rule"], json.loads(local.stdout)["tensors"][0]["rule"])
                    # --glu settles it: no note, no warning.
                    p = svc.cli("fetch", "--tp", "2", "--rank", "1", "--digest", "--json", "--prefix", key, "--glu", "yes")
                    res = json.loads(p.stdout)
                    self.assertEqual(res["notes"], [])
                    self.assertEqual(res["tensors"][0]["rule"], "sections:0:2")
                    self.assertNotIn("warning", p.stderr)
                finally:
                    svc.stop()


class FaultService(unittest.TestCase):
    """A larger generated checkpoint, so transfers take long enough to interrupt."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp()
        cls.ckpt = os.path.join(cls.tmp, "ckpt")
        subprocess.run([sys.executable, GENERATOR, cls.ckpt, "--preset", "tiny", "--hidden", "1024", "--ffn", "4096",
                        "--layers", "4", "--heads", "8"], check=True, capture_output=True)

    def test_vanished_client_does_not_disturb_others_then_killed_rank_fails_fast(self):
        svc = Service(self.ckpt, layout="megatron")
        try:
            base = fetch_json(svc, 2, 0)
            # A client that goes away mid-transfer.
            p = subprocess.Popen([SHARDCAST, "fetch", "--server", svc.address, "--tp", "1", "--rank", "0", "--digest"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(0.15)
            p.kill()
            p.wait()
            again = fetch_json(svc, 2, 0)
            self.assertEqual([t["sha256"] for t in again["tensors"]], [t["sha256"] for t in base["tensors"]])
            end = time.time() + 10
            while time.time() < end and sum(r["clients_active"] for r in svc.status()["ranks"]) != 0:
                time.sleep(0.1)
            self.assertEqual(sum(r["clients_active"] for r in svc.status()["ranks"]), 0)
            # Kill loader rank 1: the service turns failed with the reason, clients get an error fast.
            pid = [r["pid"] for r in svc.status()["ranks"] if r["rank"] == 1][0]
            os.kill(pid, signal.SIGKILL)
            t0 = time.time()
            state = None
            while time.time() - t0 < DEADLINE + 5:
                st = svc.status()
                state = st["state"]
                if state == "failed":
                    break
                time.sleep(0.1)
            self.assertEqual(state, "failed")
            self.assertLess(time.time() - t0, DEADLINE + 5)
            self.assertIn("loader rank 1", st["reason"])
            t0 = time.time()
            p = svc.cli("fetch", "--tp", "2", "--rank", "0", "--digest", check=False)
            self.assertEqual(p.returncode, 1)
            self.assertIn("failed", p.stderr)
            self.assertLess(time.time() - t0, DEADLINE)
            p = svc.cli("status", "--wait-ready", "2", check=False)
            self.assertEqual(p.returncode, 1)
        finally:
            svc.stop()


    def test_progress_counts_payload_bytes_and_reaches_100_when_ready(self):
        svc = Service(self.ckpt, layout="megatron", wait_ready=False)
        try:
            samples, end = [], time.time() + 60
            while time.time() < end:
                samples.append(svc.status())
                if samples[-1]["state"] != "loading":
                    break
                time.sleep(0.02)
            self.assertEqual(samples[-1]["state"], "ready")
            last_done = {}
            for st in samples:
                ranks = st["ranks"]
                self.assertEqual(st["payload_bytes_total"], sum(r["bytes_selected"] for r in ranks))
                self.assertEqual(st["payload_bytes_done"], sum(r["payload_bytes_done"] for r in ranks))
                self.assertLessEqual(st["payload_bytes_done"], st["payload_bytes_total"])
                self.assertTrue(0 <= st["percent"] <= 100, st["percent"])
                for r in ranks:
                    self.assertTrue(0 <= r["payload_bytes_done"] <= r["bytes_selected"], r)
                    self.assertTrue(0 <= r["percent"] <= 100, r)
                    self.assertGreaterEqual(r["payload_bytes_done"], last_done.get(r["rank"], 0))  # never goes back
                    last_done[r["rank"]] = r["payload_bytes_done"]
            ready = samples[-1]
            self.assertEqual(ready["percent"], 100)
            self.assertEqual(ready["eta_seconds"], 0)
            self.assertEqual(ready["payload_bytes_done"], ready["payload_bytes_total"])
            self.assertGreater(ready["payload_bytes_total"], 0)
            for r in ready["ranks"]:
                self.assertEqual((r["percent"], r["eta_seconds"]), (100, 0))
                self.assertGreater(r["load_seconds"], 0)
                # bytes_read also counts each record's head and tail reads (zip headers, data.pkl):
                # the difference is what the status text explains, never counted as progress.
                self.assertGreater(r["bytes_read"], r["payload_bytes_done"])
            text = svc.cli("status").stdout
            self.assertIn("progress    loaded ", text)
            self.assertIn("(100.0%), ETA -", text)
            self.assertIn("read: every byte read from the files", text)
            p = svc.cli("status", "--wait-ready", "5")
            self.assertIn("ready (loaded ", p.stdout)
            self.assertIn("(100.0%)", p.stdout)
        finally:
            svc.stop()


class JsonLogService(unittest.TestCase):
    """--log-format json (issue 12): every log line of every rank is one JSON object; a state change,
    a manifest served, a transfer finished and a refused request each leave their line."""

    def test_log_lines_are_json_with_sessions_transfers_states_and_refusals(self):
        svc = Service(os.path.join(FIXTURES, "dcp-torch2.11", "vit_tp2"), token="json-log-token",
                      extra=("--log-format", "json"))
        try:
            fetch_json(svc, 2, 1)
            raw_request = runfile("shardcast/tests/raw_request", "SHARDCAST_RAW_REQUEST")
            out = subprocess.run([raw_request, svc.address, svc.token_file, "tp_size: 2 tp_rank: 2"],
                                 capture_output=True, text=True, timeout=60).stdout
            self.assertTrue(out.startswith("INVALID_ARGUMENT: "), out)
            # Client-supplied bytes (a quote, a newline, a control byte) in a refused request (proto3
            # strings are UTF-8: invalid UTF-8 never reaches the server; common/log_test covers it).
            out = subprocess.run([raw_request, svc.address, svc.token_file,
                                  'tp_size: 1 tp_rank: 0 layout: "no\\"such\\nlay\\001out"'],
                                 capture_output=True, text=True, errors="replace", timeout=60).stdout
            self.assertTrue(out.startswith("INVALID_ARGUMENT: "), out)
        finally:
            svc.stop()
        with open(svc.log.name, "rb") as f:
            text = f.read().decode("utf-8")  # the log is valid UTF-8 whatever the client sent
        self.assertIn("shardcastd: ready\n", text)  # the stdout milestones stay as they were
        records = []
        for line in text.splitlines():
            self.assertIsNone(re.match(r"\d{4}-\d\d-\d\dT\S+Z \[shardcastd", line), line)  # no text-format line
            if line.startswith("{"):
                rec = json.loads(line)
                self.assertRegex(rec["ts"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
                self.assertIn(rec["level"], ("debug", "info", "warning", "error"))
                self.assertIsInstance(rec["msg"], str)
                self.assertIn("rank", rec, line)
                records.append(rec)

        def find(**want):
            return [r for r in records if all(r.get(k) == v for k, v in want.items())]

        self.assertTrue(find(msg="service state", state="loading", rank=0), records)
        self.assertTrue(find(msg="service state", state="ready", rank=0, level="info"), records)
        self.assertTrue(find(msg="service state", state="stopping", rank=0), records)
        served = find(msg="manifest served", tp_size=2, tp_rank=1, rank=0, level="info")
        self.assertEqual(len(served), 1, records)
        m = served[0]
        self.assertGreater(m["shards"], 0)
        self.assertGreater(m["bytes"], 0)
        self.assertTrue(m["lease"] and m["request_id"])
        self.assertRegex(m["peer"], r"^ipv[46]:")
        self.assertGreaterEqual(m["ms"], 0)
        transfers = find(msg="transfer finished", transport="stream", request_id=m["request_id"], ok=True)
        self.assertGreaterEqual(len(transfers), 1, records)  # one per loader rank holding shards
        self.assertEqual(sum(t["bytes"] for t in transfers), m["bytes"])
        for t in transfers:
            self.assertRegex(t["peer"], r"^ipv[46]:")
        refused = find(msg="request refused", call="GetManifest", code="INVALID_ARGUMENT", level="warning", rank=0)
        self.assertTrue(any("tp_rank 2 is not in 0..1" in r["error"] for r in refused), refused)
        hostile = [r for r in refused if "such" in r["error"]]
        self.assertEqual(len(hostile), 1, refused)  # its line parsed as one JSON object
        self.assertIn('no"such\nlay\x01out', hostile[0]["error"])  # escaped in the line, intact once parsed


class Lifecycle(unittest.TestCase):
    """--exit-when-idle and --exit-after-clients: the sidecar gives its devices back by itself."""

    def test_exit_when_idle_exits_0_after_a_fetch(self):
        svc = Service(os.path.join(FIXTURES, "dcp-torch2.11", "vit_tp2"), extra=("--exit-when-idle", "2"))
        try:
            time.sleep(3)  # idle, but no client served yet: it stays
            self.assertIsNone(svc.proc.poll(), open(svc.log.name).read())
            fetch_json(svc, 2, 1)
            t0 = time.time()
            rc = svc.proc.wait(timeout=20)
            took = time.time() - t0
            log = open(svc.log.name).read()
            self.assertEqual(rc, 0, log)
            self.assertGreaterEqual(took, 1.5, log)  # idle for 2 s first (polled every 200-250 ms)
            self.assertIn("exiting (--exit-when-idle)", log)
            self.assertEqual(log.count("stopped"), 2, log)  # both ranks drained
        finally:
            svc.stop()

    def test_exit_after_clients_exits_0_once_the_transfers_ended(self):
        svc = Service(os.path.join(FIXTURES, "dcp-torch2.11", "vit_tp2"), extra=("--exit-after-clients", "2"))
        try:
            fetch_json(svc, 2, 0)
            time.sleep(1)
            self.assertIsNone(svc.proc.poll(), open(svc.log.name).read())  # one of two
            fetch_json(svc, 2, 1)
            rc = svc.proc.wait(timeout=20)
            log = open(svc.log.name).read()
            self.assertEqual(rc, 0, log)
            self.assertIn("2 manifests served and every rank idle", log)
        finally:
            svc.stop()


class StartUp(unittest.TestCase):
    """Each rank logs where its start-up went; a process started without a launcher is one rank
    without MPI (bench/cold_start.sh measures both against a plain read)."""

    def steps(self, log):
        lines = [l for l in log.splitlines() if "start-up" in l and "steps=" in l]
        self.assertTrue(lines, log)
        return lines

    def test_every_rank_logs_its_start_up_steps(self):
        svc = Service(os.path.join(FIXTURES, "dcp-torch2.11", "vit_tp2"))
        try:
            fetch_json(svc, 2, 0)
        finally:
            svc.stop()
        lines = self.steps(open(svc.log.name).read())
        self.assertEqual(len(lines), 2)  # one per rank
        for step in ("checkpoint metadata", "loading starts at", "reads", "address exchange"):
            self.assertTrue(all(step in l for l in lines), (step, lines))
        self.assertEqual(sum("until every rank is ready" in l for l in lines), 1, lines)  # rank 0's

    def test_a_process_started_on_its_own_serves_as_the_only_rank(self):
        svc = Service(os.path.join(FIXTURES, "dcp-torch2.11", "vit_tp2"), launcher=False)
        try:
            st = svc.status()
            self.assertEqual(st["state"], "ready")
            self.assertEqual(st["world_size"], 1)
            with open(os.path.join(FIXTURES, "dcp-torch2.11", "expected.json")) as f:
                expected = json.load(f)["tensors"]
            got = {t["key"]: t["sha256"] for t in fetch_json(svc, 2, 1)["tensors"]}
            self.assertEqual(got, {k: e["shards"]["2"][1] for k, e in expected.items()})
            os.killpg(svc.proc.pid, signal.SIGTERM)
            self.assertEqual(svc.proc.wait(timeout=20), 0)
        finally:
            svc.stop()
        self.assertEqual(len(self.steps(open(svc.log.name).read())), 1)


def make_certificate(directory, name):
    """A self-signed certificate naming this host (rank addresses use the host name) and localhost."""
    import socket
    cert, key = os.path.join(directory, name + ".pem"), os.path.join(directory, name + ".key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=shardcast-test",
                    "-addext", "subjectAltName=DNS:localhost,DNS:%s,IP:127.0.0.1" % socket.gethostname(),
                    "-keyout", key, "-out", cert], check=True, capture_output=True)
    return cert, key


class TlsService(unittest.TestCase):
    """shardcastd --tls-cert/--tls-key: rank 0 reaches the other rank over TLS (it becomes ready),
    clients that trust the certificate get correct shards, others are refused with a hint."""

    @classmethod
    def setUpClass(cls):
        with open(os.path.join(FIXTURES, "dcp-torch2.11", "expected.json")) as f:
            cls.expected = json.load(f)["tensors"]
        cls.tmp = tempfile.mkdtemp()
        cls.cert, key = make_certificate(cls.tmp, "service")
        cls.other, _ = make_certificate(cls.tmp, "other")
        cls.svc = Service(os.path.join(FIXTURES, "dcp-torch2.11", "vit_tp2"), token="tls-token",
                          extra=("--tls-cert", cls.cert, "--tls-key", key))

    @classmethod
    def tearDownClass(cls):
        cls.svc.stop()

    def run_cli(self, *args, env=None):
        return subprocess.run([SHARDCAST, args[0], "--server", self.svc.address, "--token-file", self.svc.token_file,
                               "--timeout", "5", *args[1:]], capture_output=True, text=True, timeout=120,
                              env=dict(os.environ, **(env or {})))

    def test_trusting_client_gets_exact_shards(self):
        p = self.run_cli("fetch", "--tp", "2", "--rank", "1", "--digest", "--json", "--tls-ca", self.cert)
        self.assertEqual(p.returncode, 0, p.stderr)
        got = {t["key"]: t["sha256"] for t in json.loads(p.stdout)["tensors"]}
        self.assertEqual(got, {k: v["shards"]["2"][1] for k, v in self.expected.items()})
        p = self.run_cli("status", "--json", env={"SHARDCAST_TLS_CA": self.cert})
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(json.loads(p.stdout)["state"], "ready")

    def test_plaintext_and_untrusting_clients_are_refused(self):
        p = self.run_cli("status")
        self.assertEqual(p.returncode, 1)
        self.assertIn("pass --tls-ca", p.stderr)
        p = self.run_cli("status", "--tls-ca", self.other)
        self.assertEqual(p.returncode, 1)
        self.assertIn("--tls-ca must be the CA", p.stderr)
        p = self.run_cli("status", "--tls-ca", os.path.join(self.tmp, "missing.pem"))
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("--tls-ca", p.stderr)
        self.assertIn("cannot be read", p.stderr)


if __name__ == "__main__":
    junit_unittest.main()
