"""The `shardcast` Python package (ctypes over the C ABI) against a live `shardcastd --device cpu`
on the shared fixtures, with NumPy: status, manifest, fetch, load_into (typed and raw byte
buffers), strict mode, refusals before any byte moves, and errors carrying the service's code."""
import hashlib
import json
import os
import re
import subprocess
import sys
import time
import unittest
import warnings
from unittest import mock

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import junit_unittest  # noqa: E402
from testenv import fixtures_dir, runfile  # noqa: E402
import service_test  # noqa: E402  (reuses its Service launcher)

sys.path.insert(0, os.path.dirname(os.path.dirname(runfile("shardcast/python/shardcast/__init__.py", "SHARDCAST_PYTHON_PKG"))))
os.environ.setdefault("SHARDCAST_CLIENT_SO", runfile("shardcast/client/libshardcast_client.so", "SHARDCAST_CLIENT_SO"))
import numpy as np  # noqa: E402
import shardcast  # noqa: E402

FIXTURES = fixtures_dir()


def sha(a):
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


class PythonClient(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        with open(os.path.join(FIXTURES, "dcp-torch2.11", "expected.json")) as f:
            cls.expected = json.load(f)["tensors"]
        cls.svc = service_test.Service(os.path.join(FIXTURES, "dcp-torch2.11", "vit_flat"), token="py-token")
        cls.client = shardcast.Client(cls.svc.address, token_file=cls.svc.token_file, timeout=30)

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        cls.svc.stop()

    def test_status_and_manifest(self):
        st = self.client.status()
        self.assertEqual(st["state"], "ready")
        self.assertEqual(st["world_size"], 2)
        m = self.client.manifest(2, 1, prefix="model.vision_model.", rename={"model.vision_model.": "vision."})
        self.assertTrue(all(s["name"].startswith("vision.") for s in m))
        qkv = [s for s in m if s["name"] == "vision.decoder.layers.0.self_attention.linear_qkv.weight"][0]
        self.assertEqual(qkv["shape"], [96, 64])
        self.assertEqual(qkv["dtype"], "bfloat16")
        self.assertEqual(qkv["nbytes"], 96 * 64 * 2)
        self.assertIn("crc32c", qkv)

    def test_glu_assumption_is_warned_once_and_glu_settles_it(self):
        import warnings
        prefix = "model.vision_model.decoder.layers.0.mlp.linear_fc1."
        with shardcast.Client(self.svc.address, token_file=self.svc.token_file, timeout=30) as c:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                m = c.manifest(2, 0, layout="megatron", prefix=prefix)
                c.fetch(2, 0, layout="megatron", prefix=prefix)  # the same notes: not warned again
            glu = [w for w in caught if issubclass(w.category, shardcast.LayoutWarning)]
            self.assertEqual(len(glu), 1, [str(w.message) for w in caught])
            self.assertIn(prefix + "weight: assumed not gated (split:0)", str(glu[0].message))
            self.assertIn("glu=True/False", str(glu[0].message))
            fc1 = (prefix + "weight", prefix + "bias")  # the prefix also selects layer_norm_* (replicated)
            self.assertEqual({s["rule"] for s in m if s["name"] in fc1}, {"split:0"})
            for glu_arg, rule in ((True, "sections:0:2"), (False, "split:0")):
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    m = c.manifest(2, 0, layout="megatron", prefix=prefix, glu=glu_arg)
                self.assertEqual([w for w in caught if issubclass(w.category, shardcast.LayoutWarning)], [])
                self.assertEqual({s["rule"] for s in m if s["name"] in fc1}, {rule})

    def test_fetch_every_rank_of_tp2(self):
        for rank in range(2):
            arrays = self.client.fetch(2, rank)
            self.assertEqual(set(arrays), set(self.expected))
            for key, a in arrays.items():
                self.assertEqual(sha(a), self.expected[key]["shards"]["2"][rank], key)
            f32 = arrays["model.vision_model.decoder.final_layernorm.weight"]
            self.assertEqual(f32.dtype, np.float32)
            self.assertEqual(f32.shape, (64,))

    def test_load_into_typed_and_raw_buffers(self):
        m = self.client.manifest(4, 3)
        tensors = {}
        for s in m:
            if s["dtype"] == "float32":
                tensors[s["name"]] = np.zeros(s["shape"], dtype=np.float32)
            elif s["dtype"] == "int64":
                tensors[s["name"]] = np.zeros(s["shape"], dtype=np.int64)
            else:  # bf16 / fp16 etc.: raw bytes of the exact size
                tensors[s["name"]] = np.zeros(s["nbytes"], dtype=np.uint8)
        report = self.client.load_into(tensors, 4, 3)
        self.assertEqual(report["shards"], len(m))
        self.assertEqual(report["crc_checked"], len(m))
        self.assertEqual(report["transports"], ["stream"])
        for s in m:
            self.assertEqual(sha(tensors[s["name"]]), self.expected[s["key"]]["shards"]["4"][3], s["name"])

    def test_a_manifest_the_client_holds_is_not_sent_or_parsed_again(self):
        m = self.client.manifest(4, 2)
        tensors = {s["name"]: np.zeros(s["nbytes"], dtype=np.uint8) for s in m}
        with shardcast.Client(self.svc.address, token_file=self.svc.token_file, timeout=30) as c:
            real_json = c._lib.shardcast_manifest_json
            parsed = []
            with mock.patch.object(c._lib, "shardcast_manifest_json",
                                   side_effect=lambda h: parsed.append(1) or real_json(h)):
                for attempt in range(3):
                    for t in tensors.values():
                        t.fill(0)
                    report = c.load_into(tensors, 4, 2)
                    self.assertEqual(report["crc_checked"], len(m))
                    for s in m:
                        self.assertEqual(sha(tensors[s["name"]]), self.expected[s["key"]]["shards"]["4"][2], s["name"])
            self.assertEqual(len(parsed), 1)  # the first manifest only: then the server said "unchanged"
            self.assertTrue(c._manifest(4, 2).unchanged)  # the library sent its digest; the server confirmed it
            self.assertEqual(len(c._documents), 1)
            # What box_manifest hands out is the caller's own: changing it changes nothing kept.
            box = [{"name": "b", "key": m[0]["key"], "offsets": [0] * len(m[0]["shape"]), "sizes": [1] * len(m[0]["shape"])}]
            shards = c.box_manifest(box)
            shards[0]["nbytes"] = -1
            self.assertGreater(c.box_manifest(box)[0]["nbytes"], 0)

    def test_strict_mode_and_refusals(self):
        m = {s["name"]: s for s in self.client.manifest(2, 0)}
        name = "model.vision_model.decoder.final_layernorm.weight"
        buf = np.full((64,), 7.0, dtype=np.float32)
        with self.assertRaises(shardcast.ShardcastError) as e:
            self.client.load_into({name: buf, "not.a.tensor": np.zeros(3, np.float32)}, 2, 0)
        self.assertEqual(e.exception.code, "INVALID_ARGUMENT")
        self.assertIn("not.a.tensor", e.exception.message)
        self.assertIn("not expected", e.exception.message)
        self.assertTrue((buf == 7.0).all())  # nothing moved
        with self.assertRaises(shardcast.ShardcastError) as e:
            self.client.load_into({name: np.zeros((32,), np.float32)}, 2, 0, strict=False)
        self.assertIn("shape [32], the shard is [64]", e.exception.message)
        bf16 = "model.vision_model.decoder.layers.0.mlp.linear_fc1.layer_norm_weight"  # bfloat16 [64]
        with self.assertRaises(shardcast.ShardcastError) as e:
            self.client.load_into({bf16: np.zeros((64,), np.float16)}, 2, 0, strict=False)  # same size, other dtype
        self.assertIn("dtype float16, the shard is bfloat16", e.exception.message)
        report = self.client.load_into({name: buf}, 2, 0, strict=False)
        self.assertEqual(report["shards"], 1)
        self.assertEqual(len(report["skipped"]), len(m) - 1)
        self.assertEqual(sha(buf), self.expected["model.vision_model.decoder.final_layernorm.weight"]["shards"]["2"][0])

    def test_load_boxes_cut_every_rank_as_the_layout_does(self):
        # Each fixture tensor's TP 4 shard as boxes: col/row one box, glu two boxes of one key (gate
        # and up halves, as Megatron asks) into the two halves of one buffer, rep the whole tensor.
        tp = 4
        for rank in range(tp):
            boxes, buffers = [], {}
            for key, e in self.expected.items():
                shape, rule = e["shape"], e["rule"]
                item = np.dtype(np.float32).itemsize if e["dtype"] == "float32" else (
                    8 if e["dtype"] == "int64" else 2)
                numel = int(np.prod(shape)) if shape else 1
                sizes, offsets = list(shape), [0] * len(shape)
                parts = []
                if rule in ("col", "row"):
                    d = 0 if rule == "col" else 1
                    sizes[d] //= tp
                    offsets[d] = rank * sizes[d]
                    parts = [(offsets, sizes)]
                elif rule == "glu":
                    half = shape[0] // 2
                    sizes[0] = half // tp
                    parts = [([rank * sizes[0], 0], list(sizes)), ([half + rank * sizes[0], 0], list(sizes))]
                else:
                    parts = [(offsets, sizes)]
                nbytes = numel * item // (tp if rule != "rep" else 1)
                buf = np.zeros(nbytes, dtype=np.uint8)
                buffers[key] = buf
                step = nbytes // len(parts)
                for i, (o, z) in enumerate(parts):
                    boxes.append({"name": "%s#%d" % (key, i), "key": key, "offsets": o, "sizes": z,
                                  "tensor": buf[i * step:(i + 1) * step]})
            report = self.client.load_boxes(boxes)
            self.assertEqual(report["shards"], len(boxes))
            self.assertEqual(report["crc_checked"], len(boxes))
            self.assertEqual(report["skipped"], [])
            for key, buf in buffers.items():
                self.assertEqual(sha(buf), self.expected[key]["shards"]["4"][rank], "%s rank %d" % (key, rank))

    def test_box_batches_fit_the_request_limits(self):
        from shardcast._client import box_batches, MAX_BOXES
        many = [{"name": "n%d" % i, "key": "k", "offsets": [0], "sizes": [1]} for i in range(2 * MAX_BOXES + 5)]
        self.assertEqual([len(b) for b in box_batches(many)], [MAX_BOXES, MAX_BOXES, 5])
        big = [{"name": "n%d" % i, "key": "k" * 1000, "offsets": [0] * 8, "sizes": [1] * 8} for i in range(5000)]
        batches = box_batches(big)
        self.assertGreater(len(batches), 1)
        self.assertEqual(sum(len(b) for b in batches), 5000)
        # Each batch is accepted by the service's own check (a key it lacks is the only problem).
        with self.assertRaises(shardcast.ShardcastError) as e:
            self.client.box_manifest(batches[0])
        self.assertEqual(e.exception.code, "NOT_FOUND", e.exception.message)

    def test_box_cast_and_refusals(self):
        key = "model.vision_model.decoder.final_layernorm.weight"  # float32 [64]
        shard = self.client.box_manifest([{"name": "w", "key": key, "offsets": [8], "sizes": [16], "dtype": "fp16"}])
        self.assertEqual(shard[0]["dtype"], "float16")
        self.assertEqual(shard[0]["rule"], "box")
        self.assertEqual(shard[0]["shape"], [16])
        whole = self.client.fetch(1, 0, prefix=key, dtype="fp16")[key]
        out = np.zeros(16, np.float16)
        self.client.load_boxes([{"name": "w", "key": key, "offsets": [8], "sizes": [16], "dtype": "fp16", "tensor": out}])
        self.assertEqual(out.tobytes(), whole[8:24].tobytes())
        # The service lists every bad box; nothing moves.
        bad = [{"name": "a", "key": "no.such.key", "offsets": [0], "sizes": [1], "tensor": out},
               {"name": "b", "key": key, "offsets": [60], "sizes": [8], "tensor": out},
               {"name": "c", "key": "model.vision_model.summary_idxs", "offsets": [], "sizes": [], "dtype": "bf16",
                "tensor": out}]
        out[:] = 3
        with self.assertRaises(shardcast.ShardcastError) as e:
            self.client.load_boxes(bad)
        self.assertEqual(e.exception.code, "INVALID_ARGUMENT")
        for needle in ("3 of 3 boxes cannot be served", "a (key 'no.such.key'): no such tensor",
                       "b (key '%s'): box offsets [60] sizes [8] is not inside" % key, "cannot cast int64 to bfloat16"):
            self.assertIn(needle, e.exception.message)
        # Destinations are checked here before anything moves: size and dtype, all listed.
        with self.assertRaises(shardcast.ShardcastError) as e:
            self.client.load_boxes([{"name": "x", "key": key, "offsets": [0], "sizes": [16], "tensor": out},
                                    {"name": "y", "key": key, "offsets": [0], "sizes": [8], "tensor": out}])
        self.assertIn("x (key %s): dtype float16, the box is float32" % key, e.exception.message)
        self.assertIn("y (key %s): 16 elements, the box [8] has 8" % key, e.exception.message)
        self.assertTrue((out == 3).all())
        with self.assertRaises(shardcast.ShardcastError) as e:
            self.client.load_boxes([{"name": "x", "key": key, "offsets": [0], "sizes": [1], "tensor": out},
                                    {"name": "x", "key": key, "offsets": [1], "sizes": [1], "tensor": out}])
        self.assertIn("given to two boxes", e.exception.message)

    def test_client_options_verify_and_ipc(self):
        # verify=False skips the CRC32C check (the report says so); ipc=False only matters on a GPU.
        with shardcast.Client(self.svc.address, token_file=self.svc.token_file, timeout=30, verify=False,
                              ipc=False) as c:
            m = c.manifest(1, 0)
            tensors = {s["name"]: np.zeros(s["nbytes"], dtype=np.uint8) for s in m}
            report = c.load_into(tensors, 1, 0)
        self.assertEqual(report["crc_checked"], 0)
        self.assertEqual(report["shards"], len(m))
        for s in m:
            self.assertEqual(sha(tensors[s["name"]]), self.expected[s["key"]]["shards"]["1"][0], s["name"])

    def test_warm_up_errors_surface_and_leave_the_client_usable(self):
        # This service keeps its shards in host memory (--device cpu): a GPU warm-up must fail with
        # a ShardcastError (no GPU here, or the service has no GPU data plane), also from a thread.
        t = self.client.warm_up(2, 0, device="cuda:0", background=True)
        with self.assertRaises(shardcast.ShardcastError) as e:
            t.wait()
        self.assertIn(e.exception.code, ("INTERNAL", "UNIMPLEMENTED", "UNAVAILABLE"))
        arrays = self.client.fetch(2, 0)
        self.assertEqual(len(arrays), len(self.expected))

    def test_tls(self):
        import tempfile
        tmp = tempfile.mkdtemp()
        cert, key = service_test.make_certificate(tmp, "svc")
        svc = service_test.Service(os.path.join(FIXTURES, "dcp-torch2.11", "vit_flat"), extra=("--tls-cert", cert, "--tls-key", key))
        try:
            with shardcast.Client(svc.address, timeout=10, tls_ca=cert) as c:
                self.assertEqual(c.status()["state"], "ready")
                arrays = c.fetch(2, 1)
            for key_name, a in arrays.items():
                self.assertEqual(sha(a), self.expected[key_name]["shards"]["2"][1], key_name)
            with self.assertRaises(shardcast.ShardcastError) as e:
                shardcast.Client(svc.address, timeout=3)
            self.assertEqual(e.exception.code, "UNAVAILABLE")
            self.assertIn("pass --tls-ca", e.exception.message)
        finally:
            svc.stop()

    def test_errors_carry_the_service_code(self):
        wrong = os.path.join(self.svc.dir, "wrong-token")
        with open(wrong, "w") as f:
            f.write("nope")
        c = shardcast.Client(self.svc.address, token_file=wrong, timeout=10)
        with self.assertRaises(shardcast.ShardcastError) as e:
            c.status()
        self.assertEqual(e.exception.code, "UNAUTHENTICATED")
        c.close()
        with self.assertRaises(shardcast.ShardcastError) as e:
            self.client.manifest(3, 0)
        self.assertEqual(e.exception.code, "INVALID_ARGUMENT")
        self.assertIn("does not divide by TP 3", e.exception.message)

    def test_refused_connection_fails_fast_naming_the_address(self):
        # Issue 12: a refused connection used to wait out the whole timeout.
        start = time.monotonic()
        with self.assertRaises(shardcast.ShardcastError) as e:
            shardcast.Client("127.0.0.1:1", timeout=30)
        self.assertLess(time.monotonic() - start, 2.0)
        self.assertEqual(e.exception.code, "UNAVAILABLE")
        self.assertIn("127.0.0.1:1", e.exception.message)
        self.assertIn("is it running", e.exception.message)

    def test_bf16_without_ml_dtypes_warns_naming_the_fix(self):
        # Issue 12: without ml_dtypes bfloat16 shards came back as uint8 without a word.
        prefix = "model.vision_model.decoder.layers.0.self_attention."
        with mock.patch.dict(sys.modules, {"ml_dtypes": None}):  # `import ml_dtypes` fails
            with self.assertWarns(shardcast.RawBytesWarning) as w:
                arrays = self.client.fetch(2, 0, prefix=prefix)
        message = str(w.warning)
        self.assertIn("pip install ml_dtypes", message)
        self.assertIn("bfloat16", message)
        self.assertIn(prefix + "linear_qkv.weight", message)
        qkv = arrays[prefix + "linear_qkv.weight"]
        self.assertEqual(qkv.dtype, np.uint8)
        self.assertEqual(qkv.nbytes, 96 * 64 * 2)
        # Typed shards only: no warning.
        with warnings.catch_warnings():
            warnings.simplefilter("error", shardcast.RawBytesWarning)
            arrays = self.client.fetch(2, 0, prefix=prefix, dtype="fp32")
        self.assertEqual(arrays[prefix + "linear_qkv.weight"].dtype, np.float32)

    def test_version_has_one_source(self):
        header = runfile("shardcast/common/version.h", "SHARDCAST_VERSION_H")
        with open(header) as f:
            version = re.search(r'kVersion\[\] = "([^"]+)"', f.read()).group(1)
        self.assertEqual(shardcast.__version__, version)
        for binary, name in ((service_test.SHARDCAST, "shardcast"), (service_test.SHARDCASTD, "shardcastd")):
            out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30, check=True).stdout
            self.assertEqual(out, "%s %s\n" % (name, version))

    def test_layout_file_is_read_locally_and_limits_are_checked_before_sending(self):
        # layout= a local file: the client sends its text (the service opens no path a request names).
        path = os.path.join(self.svc.dir, "mine.layout")
        with open(service_test.LAYOUT) as src, open(path, "w") as dst:
            dst.write(src.read())
        arrays = self.client.fetch(2, 1, layout=path)
        for key, a in arrays.items():
            self.assertEqual(sha(a), self.expected[key]["shards"]["2"][1], key)
        with self.assertRaises(shardcast.ShardcastError) as e:
            self.client.manifest(2, 0, layout="/dev/zero")
        self.assertEqual(e.exception.code, "INVALID_ARGUMENT")
        self.assertIn("not a regular file", e.exception.message)
        # Issue 9: tp_size 2^31 was narrowed to int on the way; now refused by name.
        with self.assertRaises(shardcast.ShardcastError) as e:
            self.client.manifest(2 ** 31, 0)
        self.assertEqual(e.exception.code, "INVALID_ARGUMENT")
        self.assertIn("tp_size: 2147483648 is not in 1..65536", e.exception.message)
        with self.assertRaises(shardcast.ShardcastError) as e:
            self.client.manifest(1, 0, rules=["x%d=split:0" % i for i in range(65)])
        self.assertIn("rules: 65 entries", e.exception.message)

    def test_inconsistent_manifest_numbers_are_refused_before_any_write(self):
        # Issue 9 item 8: the client trusted the server's numbers (the Python client segfaulted). A
        # manifest whose nbytes, shape or owner disagree is refused by the C ABI, nothing written.
        text = self.client._manifest_raw(2, 1)
        good = json.loads(text)
        shard = good["shards"][0]
        for spoil, needle in ((lambda s: s.update(nbytes=s["nbytes"] * 2), "the manifest says"),
                              (lambda s: s.update(owner_rank=7), "names loader rank 7 of 2"),
                              (lambda s: s.update(shape=[2 ** 62, 4]), "impossible shape"),
                              (lambda s: s.update(dtype="float1024"), "unknown dtype")):
            bad = json.loads(text)
            spoil(bad["shards"][0])
            n = bad["shards"][0]["nbytes"]
            buf = np.zeros(min(n, 1 << 20), dtype=np.uint8)
            with self.assertRaises(shardcast.ShardcastError) as e:
                self.client._receive(json.dumps(bad), [(shard["name"], buf.ctypes.data, n)], -1)
            self.assertEqual(e.exception.code, "INVALID_ARGUMENT")
            self.assertIn(needle, e.exception.message)
            self.assertFalse(buf.any())


if __name__ == "__main__":
    junit_unittest.main()
