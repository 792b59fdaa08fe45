"""The service's index and bytes entries end to end: `mpirun -np 2 shardcastd --device cpu` on a
PyTorch 2.14 checkpoint (tensors and bytes entries) and on a synthetic one of more than one index
page; `shardcast index` and the Python client's index() / read_bytes() against what the checkpoint
holds (`shardcast inspect` reads it locally; the bytes entries are torch.save archives whose
data.pkl unpickles without torch); --prefix selection; refusals listed together; the token."""
import io
import json
import os
import pickle
import subprocess
import sys
import tempfile
import unittest
import zipfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import junit_unittest  # noqa: E402
from service_test import FIXTURES, GENERATOR, SHARDCAST, Service  # noqa: E402
from testenv import runfile  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(runfile("shardcast/python/shardcast/__init__.py",
                                                           "SHARDCAST_PYTHON_PKG"))))
os.environ.setdefault("SHARDCAST_CLIENT_SO", runfile("shardcast/client/libshardcast_client.so", "SHARDCAST_CLIENT_SO"))
import shardcast  # noqa: E402

PT214 = os.path.join(FIXTURES, "dcp-multiversion", "pt2.14_py3.14")


def unpickle_torch_save(data):
    """The object in a torch.save archive holding no tensor (data.pkl is a plain pickle then)."""
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        name = [n for n in z.namelist() if n.endswith("/data.pkl")][0]
        return pickle.loads(z.read(name))


def inspect_json(ckpt):
    p = subprocess.run([SHARDCAST, "inspect", ckpt, "--json"], capture_output=True, text=True, check=True)
    return json.loads(p.stdout)


class IndexOfPyTorchCheckpoint(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.svc = Service(PT214, token="idx-token")

    @classmethod
    def tearDownClass(cls):
        cls.svc.stop()

    def client(self):
        return shardcast.Client(self.svc.address, token_file=self.svc.token_file)

    def test_cli_index_matches_the_checkpoint(self):
        index = json.loads(self.svc.cli("index", "--json").stdout)
        local = inspect_json(PT214)
        want = {t["key"]: (t["dtype"], t["shape"]) for t in local["tensors"]}
        got = {t["key"]: (t["dtype"], t["shape"]) for t in index["tensors"]}
        self.assertEqual(got, want)
        self.assertEqual(got["w"], ("bfloat16", [8, 4]))
        self.assertEqual(got["model.scalar"], ("float64", []))
        self.assertEqual(sorted(b["key"] for b in index["bytes"]),
                         ["optim.param_groups.0.lr", "optim.param_groups.0.params", "step"])
        self.assertTrue(all(b["nbytes"] > 0 and not b["compressed"] for b in index["bytes"]))
        self.assertEqual(index["prefix"], "")
        human = self.svc.cli("index").stdout
        self.assertIn("7 tensors, 3 bytes entries", human)

    def test_python_index_equals_cli(self):
        with self.client() as c:
            self.assertEqual(c.index(), json.loads(self.svc.cli("index", "--json").stdout))

    def test_read_bytes_returns_the_saved_values(self):
        with self.client() as c:
            values = c.read_bytes(["step", "optim.param_groups.0.lr", "optim.param_groups.0.params"])
            sizes = {b["key"]: b["nbytes"] for b in c.index()["bytes"]}
        self.assertEqual(list(values), ["step", "optim.param_groups.0.lr", "optim.param_groups.0.params"])
        self.assertEqual(unpickle_torch_save(values["step"]), 7)
        self.assertEqual(unpickle_torch_save(values["optim.param_groups.0.lr"]), 0.1)
        self.assertEqual(unpickle_torch_save(values["optim.param_groups.0.params"]), [0])
        for key, data in values.items():
            self.assertEqual(len(data), sizes[key])

    def test_read_bytes_lists_every_unserved_key(self):
        with self.client() as c:
            with self.assertRaises(shardcast.ShardcastError) as cm:
                c.read_bytes(["step", "no.such.key", "w"])
        self.assertEqual(cm.exception.code, "NOT_FOUND")
        self.assertIn("'no.such.key' is not in the checkpoint", cm.exception.message)
        self.assertIn("'w' is a tensor", cm.exception.message)
        with self.client() as c:
            with self.assertRaises(shardcast.ShardcastError) as cm:
                c.read_bytes(["step", "step"])
        self.assertEqual(cm.exception.code, "INVALID_ARGUMENT")

    def test_token_is_required(self):
        p = self.svc.cli("index", token=False, check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("requires a token", p.stderr)
        with shardcast.Client(self.svc.address) as c:
            with self.assertRaises(shardcast.ShardcastError) as cm:
                c.read_bytes(["step"])
        self.assertEqual(cm.exception.code, "UNAUTHENTICATED")


class IndexUnderPrefix(unittest.TestCase):
    def test_prefix_selects_tensors_and_bytes_entries(self):
        svc = Service(PT214, extra=["--prefix", "optim."])
        try:
            with shardcast.Client(svc.address) as c:
                index = c.index()
                self.assertEqual(index["prefix"], "optim.")
                self.assertEqual([t["key"] for t in index["tensors"]], ["optim.state.0.step"])
                self.assertEqual(sorted(b["key"] for b in index["bytes"]),
                                 ["optim.param_groups.0.lr", "optim.param_groups.0.params"])
                with self.assertRaises(shardcast.ShardcastError) as cm:
                    c.read_bytes(["step"])
                self.assertEqual(cm.exception.code, "NOT_FOUND")
                self.assertIn("outside the service's --prefix 'optim.'", cm.exception.message)
        finally:
            svc.stop()


class IndexOfManyPages(unittest.TestCase):
    """4210 entries: more than one page of 4096; the client asks for them all, in order."""

    def test_every_entry_once_in_order(self):
        tmp = tempfile.mkdtemp()
        ckpt = os.path.join(tmp, "ckpt")
        subprocess.run([sys.executable, GENERATOR, ckpt, "--preset", "tiny", "--layers", "350", "--writers", "1"],
                       check=True, capture_output=True)
        svc = Service(ckpt)
        try:
            with shardcast.Client(svc.address) as c:
                index = c.index()
                extra = "model.vision_model.decoder.layers.0.self_attention.linear_qkv._extra_state"
                data = c.read_bytes([extra])[extra]
        finally:
            svc.stop()
        local = inspect_json(ckpt)
        self.assertGreater(len(local["tensors"]), 4096)
        self.assertEqual([(t["key"], t["dtype"], t["shape"]) for t in index["tensors"]],
                         [(t["key"], t["dtype"], t["shape"]) for t in local["tensors"]])
        self.assertEqual([b["key"] for b in index["bytes"]], [extra])
        self.assertEqual(len(data), index["bytes"][0]["nbytes"])
        self.assertEqual(data[:4], b"PK\x03\x04")


if __name__ == "__main__":
    junit_unittest.main()
