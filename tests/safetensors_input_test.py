"""Safetensors input end to end: the same tensors as a DCP (tools/gen_synthetic_dcp.py) and as
safetensors folders written by the `safetensors` package (one `model.safetensors`; a sharded
`model-0000N-of-00003.safetensors` set with `model.safetensors.index.json`; bf16, fp16, fp32 and
int64) give identical shards (sha256) at TP 1, 2 and 4 through `shardcast reshard`, the same
keys, shapes and dtypes through `shardcast inspect`, and `shardcastd --device cpu` on the sharded
folder serves fetches bit-exact; a folder holding both formats and a hostile index are refused."""
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import numpy as np
import safetensors

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import junit_unittest  # noqa: E402
import service_test  # noqa: E402  (reuses its Service launcher)
from testenv import runfile  # noqa: E402

SHARDCAST = runfile("shardcast/client/cli/shardcast", "SHARDCAST_BIN")
GENERATOR = runfile("shardcast/tools/gen_synthetic_dcp.py", "SHARDCAST_GENERATOR")
# bf16 has no numpy dtype: its bits travel as uint16 and the header says BF16.
NP_DTYPES = {"bfloat16": np.uint16, "float16": np.float16, "float32": np.float32, "int64": np.int64}


def run(*args, check=True):
    p = subprocess.run([SHARDCAST, *args], capture_output=True, text=True, timeout=300)
    if check and p.returncode != 0:
        raise AssertionError("shardcast %s failed (%d): %s" % (" ".join(args), p.returncode, p.stderr))
    return p


def digests(ckpt, tp, rank, *extra):
    out = json.loads(run("reshard", ckpt, "--tp", str(tp), "--rank", str(rank), "--digest", "--json", *extra).stdout)
    return {t["key"]: t["sha256"] for t in out["tensors"]}


def inspect_tensors(ckpt):
    out = json.loads(run("inspect", ckpt, "--json").stdout)
    return sorted((t["key"], t["dtype"], tuple(t["shape"])) for t in out["tensors"])


def assemble(dcp, entry):
    """A whole tensor from its DCP chunks (raw C-order bytes at each chunk's data_offset)."""
    dtype = np.dtype(NP_DTYPES[entry["dtype"]])
    full = np.zeros(entry["shape"], dtype=dtype)
    for c in entry["chunks"]:
        count = int(np.prod(c["sizes"], dtype=np.int64))
        with open(os.path.join(dcp, c["file"]), "rb") as f:
            f.seek(c["data_offset"])
            part = np.frombuffer(f.read(count * dtype.itemsize), dtype=dtype).reshape(c["sizes"])
        full[tuple(slice(o, o + s) for o, s in zip(c["offsets"], c["sizes"]))] = part
    return full


def save(path, tensors, dtypes, metadata=None):
    """Writes `tensors` (name -> array) with the safetensors package; bf16 named explicitly."""
    specs = {k: safetensors.TensorSpec(dtype=dtypes[k], shape=list(a.shape), data_ptr=a.ctypes.data,
                                       data_len=a.nbytes) for k, a in tensors.items()}
    safetensors.serialize_file(specs, path, metadata)


class SafetensorsInput(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp()
        cls.dcp = os.path.join(cls.tmp, "dcp")
        subprocess.run([sys.executable, GENERATOR, cls.dcp, "--dtype", "bfloat16", "--writers", "2"], check=True,
                       capture_output=True)
        with open(cls.dcp + ".expected.json") as f:
            expected = json.load(f)["tensors"]
        cls.tensors = {k: assemble(cls.dcp, e) for k, e in expected.items()}  # C order (np.zeros)
        cls.dtypes = {k: e["dtype"] for k, e in expected.items()}
        for k, e in expected.items():  # the test's own input is right
            assert hashlib.sha256(cls.tensors[k].tobytes()).hexdigest() == e["sha256"], k
        cls.single = os.path.join(cls.tmp, "single")
        os.mkdir(cls.single)
        save(os.path.join(cls.single, "model.safetensors"), cls.tensors, cls.dtypes, {"format": "pt"})
        cls.sharded = os.path.join(cls.tmp, "sharded")
        os.mkdir(cls.sharded)
        names = ["model-%05d-of-00003.safetensors" % (i + 1) for i in range(3)]
        weight_map = {k: names[i % 3] for i, k in enumerate(sorted(cls.tensors))}
        for name in names:
            save(os.path.join(cls.sharded, name), {k: a for k, a in cls.tensors.items() if weight_map[k] == name},
                 cls.dtypes)
        with open(os.path.join(cls.sharded, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {"total_size": sum(a.nbytes for a in cls.tensors.values())},
                       "weight_map": weight_map}, f)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp)

    def test_dtypes_cover_bf16_fp16_fp32_int64(self):
        self.assertEqual(set(self.dtypes.values()), {"bfloat16", "float16", "float32", "int64"})

    def test_reshard_tp_1_2_4_gives_the_shards_of_the_dcp(self):
        for tp in (1, 2, 4):
            for rank in range(tp):
                want = digests(self.dcp, tp, rank)
                self.assertEqual(len(want), len(self.tensors))
                for ckpt in (self.single, self.sharded, os.path.join(self.single, "model.safetensors")):
                    self.assertEqual(digests(ckpt, tp, rank), want, "%s tp %d rank %d" % (ckpt, tp, rank))

    def test_prefix_and_cast_select_the_same_shards(self):
        prefix = "model.vision_model.decoder.layers.0."
        want = digests(self.dcp, 2, 1, "--prefix", prefix, "--dtype", "fp32")
        self.assertTrue(want)
        self.assertTrue(all(k.startswith(prefix) for k in want))
        self.assertEqual(digests(self.sharded, 2, 1, "--prefix", prefix, "--dtype", "fp32"), want)

    def test_box_requests_give_the_boxes_of_the_dcp(self):
        boxes = os.path.join(self.tmp, "boxes.json")
        with open(boxes, "w") as f:
            json.dump([
                {"name": "a", "key": "model.vision_model.embedder.weight", "offsets": [16, 8], "sizes": [16, 40]},
                {"name": "b", "key": "model.vision_model.summary_idxs", "offsets": [], "sizes": []},
                {"name": "c", "key": "model.vision_model.decoder.layers.1.mlp.linear_fc2.weight",
                 "offsets": [3, 100], "sizes": [7, 60], "dtype": "fp32"},
            ], f)

        def boxes_of(ckpt):
            out = json.loads(run("reshard", ckpt, "--boxes", boxes, "--digest", "--json").stdout)
            return {t["name"]: t["sha256"] for t in out["tensors"]}

        want = boxes_of(self.dcp)
        self.assertEqual(sorted(want), ["a", "b", "c"])
        self.assertEqual(boxes_of(self.sharded), want)
        self.assertEqual(boxes_of(self.single), want)

    def test_inspect_names_the_format_and_keeps_file_metadata(self):
        single = json.loads(run("inspect", self.single, "--json").stdout)
        self.assertEqual(single["format"], "safetensors")
        self.assertEqual(single["file_metadata"], {"model.safetensors": {"format": "pt"}})
        self.assertEqual(json.loads(run("inspect", self.dcp, "--json").stdout)["format"], "dcp")

    def test_inspect_lists_the_same_keys_shapes_and_dtypes(self):
        want = inspect_tensors(self.dcp)
        self.assertEqual(len(want), len(self.tensors))
        self.assertEqual(inspect_tensors(self.single), want)
        self.assertEqual(inspect_tensors(self.sharded), want)

    def test_a_folder_with_both_formats_is_refused_naming_both(self):
        both = os.path.join(self.tmp, "both")
        shutil.copytree(self.single, both)
        shutil.copy(os.path.join(self.dcp, ".metadata"), both)
        p = run("inspect", both, check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn(".metadata", p.stderr)
        self.assertIn("model.safetensors", p.stderr)

    def test_an_index_pointing_outside_the_folder_is_refused(self):
        bad = os.path.join(self.tmp, "bad_index")
        os.mkdir(bad)
        with open(os.path.join(bad, "model.safetensors.index.json"), "w") as f:
            json.dump({"weight_map": {"w": "../single/model.safetensors"}}, f)
        p = run("inspect", bad, check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("'../single/model.safetensors'", p.stderr)

    def test_shardcastd_serves_a_safetensors_folder_bit_exact(self):
        svc = service_test.Service(self.sharded, layout="megatron")
        try:
            for tp in (1, 2):
                for rank in range(tp):
                    res = service_test.fetch_json(svc, tp, rank)
                    got = {t["key"]: t["sha256"] for t in res["tensors"]}
                    self.assertEqual(got, digests(self.dcp, tp, rank), "tp %d rank %d" % (tp, rank))
                    self.assertEqual(res["report"]["crc_checked"], len(self.tensors))
        finally:
            svc.stop()

    def test_shardcastd_serves_a_single_safetensors_file(self):
        svc = service_test.Service(os.path.join(self.single, "model.safetensors"), layout="megatron")
        try:
            got = {t["key"]: t["sha256"] for t in service_test.fetch_json(svc, 2, 1)["tensors"]}
            self.assertEqual(got, digests(self.dcp, 2, 1))
        finally:
            svc.stop()


if __name__ == "__main__":
    junit_unittest.main()
