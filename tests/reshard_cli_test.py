"""`shardcast reshard` as a user runs it: every TP shard of the PyTorch 2.11 fixtures against
expected.json (CPU executor), the megatron preset, safetensors output loaded by the `safetensors`
package, stacked checkpoints with --unstack, strict mode and the errors."""
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import junit_unittest  # noqa: E402
from testenv import fixtures_dir, runfile  # noqa: E402



# Under `bazel test` everything comes from the runfiles; elsewhere (a GPU host running the
# bundle) the environment names the pieces.
SHARDCAST = runfile("shardcast/client/cli/shardcast", "SHARDCAST_BIN")
FIXTURES = fixtures_dir()
LAYOUT = runfile("shardcast/tests/data/fixtures.layout", "SHARDCAST_LAYOUT")
GENERATOR = runfile("shardcast/tools/gen_synthetic_dcp.py", "SHARDCAST_GENERATOR")
CKPTS = ["vit_flat", "vit_tp2", "bridge_iter"]
DEVICE = os.environ.get("SHARDCAST_TEST_DEVICE", "cpu")


def run(*args, check=True):
    p = subprocess.run([SHARDCAST, *args], capture_output=True, text=True, timeout=300)
    if check and p.returncode != 0:
        raise AssertionError("shardcast %s failed (%d): %s" % (" ".join(args), p.returncode, p.stderr))
    return p


def reshard_json(ckpt, tp, rank, *extra):
    out = run("reshard", ckpt, "--tp", str(tp), "--rank", str(rank), "--digest", "--json", "--device", DEVICE, *extra)
    return json.loads(out.stdout)


class ReshardCli(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        with open(os.path.join(FIXTURES, "dcp-torch2.11", "expected.json")) as f:
            cls.expected = json.load(f)["tensors"]

    def check(self, result, tp, rank, keys=None):
        got = {t["key"]: t for t in result["tensors"]}
        want = keys if keys is not None else list(self.expected)
        self.assertEqual(sorted(got), sorted(want))
        for key in want:
            self.assertEqual(got[key]["sha256"], self.expected[key]["shards"][str(tp)][rank],
                             "%s tp %d rank %d (rule %s)" % (key, tp, rank, got[key]["rule"]))
        return len(want)

    def test_every_shard_tp_1_2_4_matches_expected(self):
        n = 0
        for ckpt in CKPTS:
            for tp in (1, 2, 4):
                for rank in range(tp):
                    n += self.check(reshard_json(os.path.join(FIXTURES, "dcp-torch2.11", ckpt), tp, rank,
                                                 "--layout", LAYOUT), tp, rank)
        self.assertEqual(n, 3 * 7 * len(self.expected))

    def test_tp3_shards_of_the_tensors_that_divide(self):
        keys = [k for k, v in self.expected.items() if "3" in v["shards"]]
        self.assertTrue(keys)
        path = os.path.join(FIXTURES, "dcp-torch2.11", "vit_tp2")
        for key in keys:
            for rank in range(3):
                self.check(reshard_json(path, 3, rank, "--layout", LAYOUT, "--prefix", key), 3, rank,
                           [k for k in self.expected if k.startswith(key)])

    def test_non_dividing_split_names_every_tensor(self):
        p = run("reshard", os.path.join(FIXTURES, "dcp-torch2.11", "vit_tp2"), "--tp", "3", "--rank", "0",
                "--layout", LAYOUT, "--digest", check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("model.vision_model.decoder.layers.0.mlp.linear_fc1.weight [256, 64]", p.stderr)
        self.assertIn("model.vision_model.decoder.layers.1.mlp.linear_fc2.weight [64, 256]", p.stderr)
        self.assertIn("does not divide by TP 3", p.stderr)

    def test_megatron_preset_with_fixture_overrides(self):
        path = os.path.join(FIXTURES, "dcp-torch2.11", "vit_tp2")
        rules = ["--rule", r".*word_embeddings\.weight=split:0",
                 "--rule", r".*language_model.*linear_fc1\.weight=sections:0:2"]
        for rank in range(2):
            self.check(reshard_json(path, 2, rank, "--layout", "megatron", *rules), 2, rank)
        # Without the GLU rule the decoy is cut as a plain split: a different (wrong) shard.
        res = reshard_json(path, 2, 0, "--layout", "megatron", "--rule", r".*word_embeddings\.weight=split:0")
        glu = [t for t in res["tensors"] if t["key"].endswith("language_model.decoder.layers.0.mlp.linear_fc1.weight")][0]
        self.assertNotEqual(glu["sha256"], self.expected[glu["key"]]["shards"]["2"][0])

    def test_vocab_padding_at_tp_2(self):
        path = os.path.join(FIXTURES, "dcp-torch2.11", "vit_tp2")
        key = "model.language_model.embedding.word_embeddings.weight"
        res = reshard_json(path, 2, 1, "--layout", "megatron", "--prefix", key)
        t = res["tensors"][0]
        self.assertEqual(t["rule"], "vocab:0:128")
        self.assertEqual(t["shape"], [128, 64])  # 96 rows padded to 256, 128 per rank

    def test_safetensors_output_loads_with_safetensors(self):
        import safetensors
        path = os.path.join(FIXTURES, "dcp-torch2.11", "vit_tp2")
        with tempfile.TemporaryDirectory() as d:
            out = os.path.join(d, "rank1.safetensors")
            res = json.loads(run("reshard", path, "--tp", "2", "--rank", "1", "--layout", LAYOUT, "--prefix",
                                 "model.vision_model.", "--rename", "model.vision_model.=vision.", "--out", out,
                                 "--json", "--device", DEVICE).stdout)
            with open(out, "rb") as f:
                blob = f.read()
            # The safetensors library parses and validates the file (bf16 included).
            tensors = dict(safetensors.deserialize(blob))
            self.assertEqual(len(tensors), len(res["tensors"]))
            st_dtype = {"bfloat16": "BF16", "float32": "F32", "float16": "F16", "int64": "I64"}
            for t in res["tensors"]:
                self.assertTrue(t["name"].startswith("vision."))
                got = tensors[t["name"]]
                self.assertEqual(list(got["shape"]), t["shape"])
                self.assertEqual(got["dtype"], st_dtype[t["dtype"]])
                self.assertEqual(hashlib.sha256(bytes(got["data"])).hexdigest(),
                                 self.expected[t["key"]]["shards"]["2"][1], t["key"])
            # NumPy can load the non-bf16 tensors directly.
            from safetensors.numpy import load
            with self.assertRaises(Exception):
                load(blob)  # numpy has no bfloat16: the library refuses, it does not misread
            header = json.loads(blob[8:8 + int.from_bytes(blob[:8], "little")])
            self.assertEqual(header["__metadata__"]["tp_rank"], "1")

    def test_dtype_cast_to_fp32(self):
        path = os.path.join(FIXTURES, "dcp-torch2.11", "vit_flat")
        key = "model.vision_model.class_token"
        res = reshard_json(path, 1, 0, "--prefix", key, "--dtype", "fp32")
        self.assertEqual(res["tensors"][0]["dtype"], "float32")
        # bf16 -> fp32 is exact: compare with the bf16 bytes widened by hand.
        with tempfile.TemporaryDirectory() as d:
            run("reshard", path, "--tp", "1", "--rank", "0", "--prefix", key, "--out", os.path.join(d, "a.st"))
            with open(os.path.join(d, "a.st"), "rb") as f:
                n = int.from_bytes(f.read(8), "little")
                f.read(n)
                raw = f.read()
        widened = b"".join(b"\x00\x00" + raw[i:i + 2] for i in range(0, len(raw), 2))
        self.assertEqual(res["tensors"][0]["sha256"], hashlib.sha256(widened).hexdigest())

    def test_boxes_file_gives_the_split_shards(self):
        # --boxes: the col/row tensors' TP 2 rank 1 boxes from a file, cut from vit_tp2's chunk grid.
        path = os.path.join(FIXTURES, "dcp-torch2.11", "vit_tp2")
        boxes = []
        for key, e in self.expected.items():
            if e["rule"] not in ("col", "row"):
                continue
            d = 0 if e["rule"] == "col" else 1
            offsets, sizes = [0] * len(e["shape"]), list(e["shape"])
            sizes[d] //= 2
            offsets[d] = sizes[d]
            boxes.append({"name": "b." + key, "key": key, "offsets": offsets, "sizes": sizes})
        with tempfile.TemporaryDirectory() as d:
            f = os.path.join(d, "boxes.json")
            with open(f, "w") as out:
                json.dump(boxes, out)
            res = json.loads(run("reshard", path, "--boxes", f, "--digest", "--json", "--device", DEVICE).stdout)
            got = {t["name"]: t for t in res["tensors"]}
            self.assertEqual(len(got), len(boxes))
            for b in boxes:
                self.assertEqual(got[b["name"]]["sha256"], self.expected[b["key"]]["shards"]["2"][1], b["name"])
                self.assertEqual(got[b["name"]]["rule"], "box")
            # The layout flags do not go with --boxes; a bad box is named.
            p = run("reshard", path, "--boxes", f, "--tp", "2", "--rank", "0", "--json", check=False)
            self.assertEqual(p.returncode, 2, p.stderr)
            self.assertIn("drop --tp, --rank", p.stderr)
            with open(f, "w") as out:
                json.dump([{"name": "x", "key": boxes[0]["key"], "offsets": [0, 0], "sizes": [10 ** 6, 1]}], out)
            p = run("reshard", path, "--boxes", f, "--digest", "--json", check=False)
            self.assertNotEqual(p.returncode, 0)
            self.assertIn("x (key '%s'): box offsets [0, 0] sizes [1000000, 1] is not inside" % boxes[0]["key"],
                          p.stderr)

    def test_stacked_unstack_equals_per_layer(self):
        with tempfile.TemporaryDirectory() as d:
            for name, extra in (("flat", []), ("stacked", ["--stacked"])):
                subprocess.run([sys.executable, GENERATOR, os.path.join(d, name), "--preset", "tiny", "--writers", "2",
                                *extra], check=True, capture_output=True)
            for tp in (1, 2):
                for rank in range(tp):
                    flat = reshard_json(os.path.join(d, "flat"), tp, rank, "--layout", "megatron",
                                        "--prefix", "model.vision_model.decoder.layers.")
                    st = reshard_json(os.path.join(d, "stacked"), tp, rank, "--layout", "megatron", "--unstack",
                                      "--prefix", "model.vision_model.decoder.layers.")
                    f = {t["name"]: (t["shape"], t["sha256"]) for t in flat["tensors"]}
                    s = {t["name"]: (t["shape"], t["sha256"]) for t in st["tensors"]}
                    self.assertEqual(f, s)
                    self.assertTrue(any(t["rule"].endswith("@stacked") for t in st["tensors"]))

    def test_strict_mode_lists_missing_and_unexpected(self):
        path = os.path.join(FIXTURES, "dcp-torch2.11", "vit_flat")
        with tempfile.TemporaryDirectory() as d:
            exp = os.path.join(d, "expect.json")
            with open(exp, "w") as f:
                json.dump({"model.vision_model.class_token": [1, 1, 64], "model.vision_model.nope": None,
                           "model.vision_model.embedder.weight": [64, 64]}, f)
            p = run("reshard", path, "--tp", "2", "--rank", "0", "--layout", LAYOUT, "--prefix", "model.vision_model.e",
                    "--digest", "--expect", exp, check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("model.vision_model.nope", p.stderr)
        self.assertIn("expected [64, 64], the checkpoint gives [32, 192]", p.stderr)
        self.assertIn("unexpected", p.stderr)

    def test_refuses_bad_requests(self):
        path = os.path.join(FIXTURES, "dcp-torch2.11", "vit_flat")
        p = run("reshard", path, "--tp", "2", "--rank", "2", "--digest", check=False)
        self.assertEqual(p.returncode, 2)
        self.assertIn("--rank must be in 0..1", p.stderr)
        p = run("reshard", path, "--tp", "2", "--rank", "0", check=False)
        self.assertEqual(p.returncode, 2)
        p = run("reshard", path, "--tp", "1", "--rank", "0", "--out", os.path.join(path, "x.safetensors"), check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("never writes", p.stderr)
        p = run("reshard", path, "--tp", "1", "--rank", "0", "--digest", "--rule", "x=bogus:1", check=False)
        self.assertEqual(p.returncode, 2)  # bad usage, as README says (issue 12)
        self.assertIn("unknown rule", p.stderr)

    def test_bad_layout_rule_and_device_are_usage_errors(self):
        # Issue 12: an unknown preset, an unreadable layout file or invalid rule text is bad usage
        # (exit 2, nothing read), named in the message.
        path = os.path.join(FIXTURES, "dcp-torch2.11", "vit_flat")
        for extra, needle in ((["--layout", "megatronn"], "'megatronn' is neither a preset"),
                              (["--layout", "/nonexistent/x.layout"], "/nonexistent/x.layout"),
                              (["--rule", "no-equals-sign"], "expected PATTERN=RULE"),
                              (["--rule", "x=split:nope"], "--rule"),
                              (["--rule", "x(=split:0"], "--rule"),
                              (["--device", "cuda:x"], "cuda:N"),
                              (["--device", "gpu"], "cuda:N")):
            p = run("reshard", path, "--tp", "1", "--rank", "0", "--digest", *extra, check=False)
            self.assertEqual(p.returncode, 2, (extra, p.stderr))
            self.assertIn(needle, p.stderr)
            self.assertEqual(p.stdout, "")
        self.assertIn("layouts list", run("reshard", path, "--tp", "1", "--rank", "0", "--digest", "--layout", "nope",
                                          check=False).stderr)

    def test_unused_rules_are_reported(self):
        # Issue 12: a --rule that cuts nothing (a typo) is warned of, naming it; --strict-rules
        # makes it an error before any byte moves. A rule in use is not reported.
        path = os.path.join(FIXTURES, "dcp-torch2.11", "vit_tp2")
        typo = r"model\.visoin_model\..*=split:0"
        used = r".*final_layernorm\.weight=replicate"
        shadowed = r".*final_layernorm\..*=replicate"
        p = run("reshard", path, "--tp", "2", "--rank", "0", "--digest", "--json", "--rule", typo, "--rule", shadowed,
                "--rule", used)
        self.assertIn("--rule 'model", p.stderr)
        self.assertIn("visoin_model", p.stderr)
        self.assertIn("matches no selected tensor", p.stderr)
        # final_layernorm.bias is matched by `shadowed` alone, so it is used; with only .weight keys
        # under a prefix it is taken entirely by the later rule.
        self.assertNotIn("final_layernorm", p.stderr)
        self.assertEqual(json.loads(p.stdout)["tp_size"], 2)
        p = run("reshard", path, "--tp", "2", "--rank", "0", "--digest", "--rule", shadowed, "--rule", used,
                "--prefix", "model.vision_model.decoder.final_layernorm.weight")
        self.assertIn("taken by a later --rule", p.stderr)
        self.assertEqual(p.stderr.count("warning:"), 1)
        p = run("reshard", path, "--tp", "2", "--rank", "0", "--digest", "--rule", used)
        self.assertNotIn("is unused", p.stderr)  # (the fixture's fc1 gets the GLU note: another warning)
        p = run("reshard", path, "--tp", "2", "--rank", "0", "--digest", "--rule", typo, "--strict-rules", check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("--strict-rules", p.stderr)
        self.assertIn("visoin_model", p.stderr)
        self.assertEqual(p.stdout, "")

    def test_hostile_rule_numbers_fail_instead_of_giving_wrong_shards(self):
        # Issue 9: a vocab multiple near 2^60 overflowed the padding arithmetic (wrong shards, exit 0);
        # split:2^32 was narrowed to split:0; tp 2^32 wrapped. Each is now a named error, exit 1 or 2
        # (rule text out of range is bad usage: exit 2 since issue 12).
        path = os.path.join(FIXTURES, "dcp-torch2.11", "vit_tp2")
        emb = r".*word_embeddings\.weight"
        for rule, needle in (("%s=vocab:0:1152921504606846976" % emb, "the multiple M must be an integer in 1..1048576"),
                             ("%s=vocab:0:9223372036854775807" % emb, "the multiple M"),
                             (r".*linear_proj\.weight=split:4294967296", "the dim D must be an integer in 0..63"),
                             (r".*linear_qkv\.weight=qkv:4294967296:4294967296", "HEADS and GROUPS")):
            p = run("reshard", path, "--tp", "2", "--rank", "0", "--digest", "--rule", rule, check=False)
            self.assertEqual(p.returncode, 2, rule)
            self.assertIn(needle, p.stderr)
            self.assertEqual(p.stdout, "")
        # Within range, a multiple that pads far beyond the tensor is refused, not allocated.
        p = run("reshard", path, "--tp", "64", "--rank", "0", "--digest", "--prefix", "model.language_model.embedding",
                "--rule", "%s=vocab:0:1048576" % emb, check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("bytes larger than the tensor", p.stderr)
        p = run("reshard", path, "--tp", "4294967296", "--rank", "0", "--digest", check=False)
        self.assertEqual(p.returncode, 2)
        self.assertIn("--tp must be in 1..65536", p.stderr)
        # A layout file that is not a regular file is refused before it is opened.
        p = run("reshard", path, "--tp", "1", "--rank", "0", "--digest", "--layout", "/dev/zero", check=False)
        self.assertEqual(p.returncode, 2)
        self.assertIn("not a regular file", p.stderr)

    @unittest.skipIf(DEVICE == "cuda", "checks the CPU-only machine's answer")
    def test_cuda_device_without_gpu_is_a_clear_error(self):
        # On a GPU host run with SHARDCAST_TEST_DEVICE=cuda instead (deploy/gpu/run_gpu_checks.sh).
        import ctypes.util
        p = run("reshard", os.path.join(FIXTURES, "dcp-torch2.11", "vit_flat"), "--tp", "1", "--rank", "0",
                "--digest", "--device", "cuda", check=False)
        if p.returncode == 0:
            self.assertIn("cuda", p.stdout + p.stderr)  # a GPU is present: it ran
        else:
            self.assertEqual(p.returncode, 1)
            self.assertIn("no CUDA device", p.stderr)

    def test_version(self):
        p = run("--version")
        self.assertRegex(p.stdout, r"^shardcast \d+\.\d+\.\d+\S*\n$")

    def test_layouts_show(self):
        out = run("layouts", "show", "megatron").stdout
        self.assertIn("split:1@stacked", out)
        self.assertIn("vocab:0:128", out)
        self.assertIn("megatron", run("layouts", "list").stdout)


    # --- GLU fc1 under the megatron preset (issue 10, item 4) ---

    FC1 = r"model.language_model.decoder.layers.%smlp.linear_fc1.weight"

    def gen(self, d, name, writers, *extra):
        """A float32 checkpoint with a small language-model decoy (fc1 [2f, H], fc2 [H, f])."""
        path = os.path.join(d, name)
        subprocess.run([sys.executable, GENERATOR, path, "--preset", "tiny", "--writers", str(writers), "--dtype",
                        "float32", "--with-llm-decoy", "0.05", *extra], check=True, capture_output=True)
        return path

    def whole_tensor(self, path, key, d):
        from safetensors.numpy import load_file
        out = os.path.join(d, "whole.safetensors")
        run("reshard", path, "--tp", "1", "--rank", "0", "--layout", "replicate", "--prefix", key, "--out", out)
        return load_file(out)[key]

    def test_glu_fc1_saved_at_tp2_is_cut_per_half_at_tp_1_2_4(self):
        import numpy as np
        with tempfile.TemporaryDirectory() as d:
            for stacked in (False, True):
                path = self.gen(d, "glu%d" % stacked, 2, "--glu-decoy", *(["--stacked"] if stacked else []))
                key = self.FC1 % ("" if stacked else "0.")
                whole = self.whole_tensor(path, key, d)
                axis = 1 if stacked else 0
                f = whole.shape[axis] // 2
                gate, up = np.split(whole, [f], axis=axis)  # naive reference: rows[:F], rows[F:]
                for tp in (1, 2, 4):
                    for rank in range(tp):
                        res = reshard_json(path, tp, rank, "--layout", "megatron", "--prefix", key)
                        (t,) = res["tensors"]
                        self.assertEqual(t["rule"], "sections:0:2@stacked" if stacked else "sections:0:2")
                        part = f // tp
                        want = np.concatenate([np.take(gate, range(rank * part, (rank + 1) * part), axis=axis),
                                               np.take(up, range(rank * part, (rank + 1) * part), axis=axis)],
                                              axis=axis)
                        self.assertEqual(t["shape"], list(want.shape))
                        self.assertEqual(t["sha256"], hashlib.sha256(np.ascontiguousarray(want).tobytes()).hexdigest(),
                                         "stacked %s tp %d rank %d" % (stacked, tp, rank))
                        self.assertEqual(len(res["notes"]), 1)
                        self.assertIn(key + ": " + t["rule"] + " inferred from the stored chunk grid (GLU fc1 saved "
                                      "at TP 2", res["notes"][0])
                # An explicit rule wins: the plain split, no note.
                res = reshard_json(path, 2, 0, "--layout", "megatron", "--prefix", key, "--glu", "no")
                self.assertEqual(res["tensors"][0]["rule"], "split:0@stacked" if stacked else "split:0")
                self.assertEqual(res["notes"], [])

    def test_ordinary_split_saved_fc1_keeps_split(self):
        with tempfile.TemporaryDirectory() as d:
            path = self.gen(d, "plain", 2)
            for tp in (2, 4):
                p = run("reshard", path, "--tp", str(tp), "--rank", "1", "--layout", "megatron", "--digest", "--json",
                        "--prefix", "model.language_model.decoder.")
                res = json.loads(p.stdout)
                rules = {t["key"].rsplit(".", 2)[1]: t["rule"] for t in res["tensors"]}
                self.assertEqual(rules["linear_fc1"], "split:0")
                self.assertEqual(res["notes"], [])
                self.assertNotIn("warning", p.stderr)

    def test_fc1_saved_at_tp1_warns_once_unless_settled(self):
        with tempfile.TemporaryDirectory() as d:
            path = self.gen(d, "tp1", 1)
            key = self.FC1 % "0."
            args = ["reshard", path, "--tp", "2", "--rank", "0", "--layout", "megatron", "--digest", "--json",
                    "--prefix", "model.language_model.decoder."]
            p = run(*args)
            res = json.loads(p.stdout)
            self.assertEqual([t["rule"] for t in res["tensors"] if t["key"] == key], ["split:0"])
            self.assertEqual(len(res["notes"]), 1)
            self.assertIn(key + ": assumed not gated (split:0)", res["notes"][0])
            self.assertEqual(p.stderr.count("warning:"), 1)
            self.assertIn(key, p.stderr)
            self.assertIn("--glu yes", p.stderr)
            # Settled: by --glu either way, or by an explicit rule. No note, no warning.
            for extra, rule in ((["--glu", "no"], "split:0"), (["--glu", "yes"], "sections:0:2"),
                                (["--rule", r".*linear_fc1\.weight=sections:0:2"], "sections:0:2")):
                p = run(*args, *extra)
                res = json.loads(p.stdout)
                self.assertEqual([t["rule"] for t in res["tensors"] if t["key"] == key], [rule], extra)
                self.assertEqual(res["notes"], [], extra)
                self.assertNotIn("warning", p.stderr, extra)
            # At TP 1 both readings give the whole tensor: nothing to warn about.
            p = run("reshard", path, "--tp", "1", "--rank", "0", "--layout", "megatron", "--digest", "--json")
            self.assertEqual(json.loads(p.stdout)["notes"], [])
            p = run(*args, "--glu", "maybe", check=False)
            self.assertEqual(p.returncode, 2)  # a usage error
            self.assertIn("--glu must be yes or no", p.stderr)

    def test_sections_on_a_stacked_tensor_suggest_stacked(self):
        with tempfile.TemporaryDirectory() as d:
            path = self.gen(d, "st", 2, "--glu-decoy", "--stacked")
            p = run("reshard", path, "--tp", "2", "--rank", "0", "--layout", "megatron", "--digest",
                    "--rule", r".*language_model.*linear_fc1\.weight=sections:0:2", check=False)
            self.assertEqual(p.returncode, 1)
            self.assertIn("did you mean sections:0:2@stacked? the tensor may have a leading layer axis of 1", p.stderr)


if __name__ == "__main__":
    junit_unittest.main()
