"""`shardcast inspect` as a user runs it: --json --digest against expected.json, the human
table, --prefix/--key selection, and errors with non-zero exits."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import struct
import time
import unittest
import zipfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import junit_unittest  # noqa: E402
from testenv import fixtures_dir, runfile  # noqa: E402



SHARDCAST = runfile("shardcast/client/cli/shardcast", "SHARDCAST_BIN")
FIXTURES = fixtures_dir()


def run(*args, check=True):
    p = subprocess.run([SHARDCAST, *args], capture_output=True, text=True, timeout=120)
    if check and p.returncode != 0:
        raise AssertionError("shardcast %s failed (%d): %s" % (" ".join(args), p.returncode, p.stderr))
    return p


class InspectCli(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        with open(os.path.join(FIXTURES, "dcp-torch2.11", "expected.json")) as f:
            cls.expected = json.load(f)

    def check_against_expected(self, name):
        out = json.loads(run("inspect", os.path.join(FIXTURES, "dcp-torch2.11", name), "--digest", "--json").stdout)
        got = {t["key"]: t for t in out["tensors"]}
        self.assertEqual(set(got), set(self.expected["tensors"]))
        for key, exp in self.expected["tensors"].items():
            self.assertEqual(got[key]["dtype"], exp["dtype"], key)
            self.assertEqual(got[key]["shape"], exp["shape"], key)
            self.assertEqual(got[key]["sha256"], exp["sha256"], key)
            n = 1
            for d in exp["shape"]:
                n *= d
            self.assertEqual(got[key]["bytes"], n * {"bfloat16": 2, "float16": 2, "float32": 4, "int64": 8}[exp["dtype"]])
            covered = sum(__import__("math").prod(c["sizes"]) for c in got[key]["chunks"])
            self.assertEqual(covered, n, key)
        return out

    def test_vit_flat_matches_expected(self):
        out = self.check_against_expected("vit_flat")
        self.assertEqual([b["key"] for b in out["bytes_entries"]], self.expected["bytes_entries"])
        self.assertIsNone(out["iteration"])

    def test_vit_tp2_matches_expected(self):
        out = self.check_against_expected("vit_tp2")
        multi = [t for t in out["tensors"] if len(t["chunks"]) == 2]
        self.assertTrue(multi, "vit_tp2 should store split tensors as 2 chunks")

    def test_bridge_iter_matches_expected_and_names_iteration(self):
        out = self.check_against_expected("bridge_iter")
        self.assertEqual(out["iteration"], 42)
        self.assertTrue(out["path"].endswith("iter_0000042"))

    def test_multiversion_checkpoints_inspect(self):
        for name in sorted(os.listdir(os.path.join(FIXTURES, "dcp-multiversion"))):
            path = os.path.join(FIXTURES, "dcp-multiversion", name)
            if not os.path.isdir(path):
                continue
            out = json.loads(run("inspect", path, "--digest", "--json").stdout)
            w = [t for t in out["tensors"] if t["key"] == "w"][0]
            self.assertEqual((w["dtype"], w["shape"]), ("bfloat16", [8, 4]), name)

    def test_prefix_and_key_select(self):
        path = os.path.join(FIXTURES, "dcp-torch2.11", "vit_tp2")
        out = json.loads(run("inspect", path, "--prefix", "model.vision_model.", "--json").stdout)
        self.assertTrue(out["tensors"])
        self.assertTrue(all(t["key"].startswith("model.vision_model.") for t in out["tensors"]))
        self.assertLess(out["selected_bytes"], out["total_bytes"])
        key = "model.vision_model.class_token"
        out = json.loads(run("inspect", path, "--key", key, "--digest", "--json").stdout)
        self.assertEqual([t["key"] for t in out["tensors"]], [key])
        self.assertEqual(out["tensors"][0]["sha256"], self.expected["tensors"][key]["sha256"])

    def test_human_output(self):
        text = run("inspect", os.path.join(FIXTURES, "dcp-torch2.11", "bridge_iter")).stdout
        self.assertIn("iteration   42", text)
        self.assertIn("model.vision_model.class_token", text)
        self.assertIn("bfloat16", text)
        self.assertIn("non-tensor entries:", text)

    def test_errors_are_named_and_exit_non_zero(self):
        p = run("inspect", "/nonexistent/ckpt", check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("not a folder", p.stderr)
        p = run("inspect", FIXTURES, check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("is not a DCP checkpoint", p.stderr)
        p = run("inspect", os.path.join(FIXTURES, "dcp-torch2.11", "vit_tp2"), "--key", "nope", check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("no tensor 'nope'", p.stderr)
        p = run("inspect", "--bogus", check=False)
        self.assertEqual(p.returncode, 2)
        self.assertIn("unknown flag --bogus", p.stderr)

    def copy_fixture(self, name="min_pt2.14_py3.14"):
        tmp = tempfile.mkdtemp(prefix="inspect_cli_")
        self.addCleanup(shutil.rmtree, tmp, True)
        dst = os.path.join(tmp, "ckpt")
        shutil.copytree(os.path.join(FIXTURES, "dcp-multiversion", name), dst)
        for f in os.listdir(dst):
            os.chmod(os.path.join(dst, f), 0o644)
        return dst

    def rename_key_w(self, path, new_key):
        """Renames tensor 'w' of the min fixture to new_key (raw bytes) in .metadata."""
        meta = os.path.join(path, ".metadata")
        with open(meta, "rb") as f:
            data = f.read()
        old = b"\x8c\x01w\x94"  # SHORT_BINUNICODE 'w', MEMOIZE (the fqn refers to the memo)
        self.assertEqual(data.count(old), 1)
        with open(meta, "wb") as f:
            f.write(data.replace(old, b"\x8c" + bytes([len(new_key)]) + new_key + b"\x94"))

    def test_hostile_key_gives_valid_json(self):
        path = self.copy_fixture()
        self.rename_key_w(path, b"w\nfake.key\xff\xed\xa0\x80")
        # run() decodes stdout as strict UTF-8: a raw 0xff in the output would fail here.
        out = json.loads(run("inspect", path, "--json", "--digest").stdout)
        # \xff -> U+FFFD; the pickle-style surrogate ED A0 80 -> \ud800, as Python's json writes it.
        self.assertEqual([t["key"] for t in out["tensors"]], ["w\nfake.key\ufffd\ud800"])

    def test_key_with_newline_cannot_forge_a_line(self):
        path = self.copy_fixture()
        self.rename_key_w(path, b"w\nfake.key  float32")
        text = run("inspect", path).stdout
        lines = text.splitlines()
        self.assertFalse([l for l in lines if l.startswith("fake.key")], text)
        self.assertIn("w\\nfake.key  float32", text)
        self.assertEqual(len([l for l in lines if "bfloat16" in l]), 1, text)
        # reshard --digest's human table escapes the same way.
        text = run("reshard", path, "--tp", "1", "--rank", "0", "--digest").stdout
        self.assertFalse([l for l in text.splitlines() if l.startswith("fake.key")], text)
        self.assertIn("w\\nfake.key  float32", text)

    def test_fifo_in_place_of_a_file_is_refused_quickly(self):
        for victim in ("__0_0.distcp", ".metadata"):
            path = self.copy_fixture()
            os.unlink(os.path.join(path, victim))
            os.mkfifo(os.path.join(path, victim))
            start = time.monotonic()
            p = run("inspect", path, "--digest", check=False)
            self.assertLess(time.monotonic() - start, 10)
            self.assertEqual(p.returncode, 1, p.stderr)
            self.assertIn("is a FIFO, not a regular file", p.stderr)
            self.assertIn(victim, p.stderr)

    def test_tracker_file_is_capped_and_never_blocks(self):
        tmp = tempfile.mkdtemp(prefix="inspect_cli_")
        self.addCleanup(shutil.rmtree, tmp, True)
        with open(os.path.join(tmp, "latest_checkpointed_iteration.txt"), "w") as f:
            f.write("1" * 5000)
        p = run("inspect", tmp, check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("5000 bytes, more than the 4096-byte limit", p.stderr)
        os.unlink(os.path.join(tmp, "latest_checkpointed_iteration.txt"))
        os.mkfifo(os.path.join(tmp, "latest_checkpointed_iteration.txt"))
        start = time.monotonic()
        p = run("inspect", tmp, check=False)
        self.assertLess(time.monotonic() - start, 10)
        self.assertEqual(p.returncode, 1)
        self.assertIn("is a FIFO, not a regular file", p.stderr)

    def test_flipped_payload_bit_fails_the_crc_check(self):
        path = self.copy_fixture()
        out = json.loads(run("inspect", path, "--digest", "--json").stdout)
        self.assertEqual(out["storage_crc"]["verified_records"], 2)
        self.assertEqual(out["storage_crc"]["unverified_partial_records"], 0)
        # __1_0.distcp is one torch.save record (item offset 0): flip a bit of its payload.
        data_file = os.path.join(path, "__1_0.distcp")
        with zipfile.ZipFile(data_file) as z:
            info = [i for i in z.infolist() if i.filename.endswith("/data/0")][0]
        with open(data_file, "rb") as f:
            blob = bytearray(f.read())
        name_len, extra_len = struct.unpack("<HH", blob[info.header_offset + 26:info.header_offset + 30])
        blob[info.header_offset + 30 + name_len + extra_len + 5] ^= 0x10
        with open(data_file, "wb") as f:
            f.write(blob)
        p = run("inspect", path, "--digest", check=False)
        self.assertEqual(p.returncode, 1, p.stdout)
        self.assertIn("key 'w'", p.stderr)
        self.assertIn("__1_0.distcp", p.stderr)
        self.assertIn("CRC-32", p.stderr)
        p = run("reshard", path, "--tp", "1", "--rank", "0", "--digest", check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("CRC-32", p.stderr)
        # Switched off, the bytes are served as they are.
        out = json.loads(run("inspect", path, "--digest", "--json", "--no-verify-storage-crc").stdout)
        self.assertEqual(out["storage_crc"]["verified_records"], 0)
        run("reshard", path, "--tp", "1", "--rank", "0", "--digest", "--no-verify-storage-crc")
        text = run("inspect", FIXTURES + "/dcp-multiversion/min_pt2.14_py3.14", "--digest").stdout
        self.assertIn("storage CRC-32: 2 records verified", text)

    def test_help(self):
        p = run("inspect", "--help")
        self.assertIn("--digest", p.stdout)
        self.assertIn("--prefix", p.stdout)
        self.assertIn("inspect", run("--help").stdout)


if __name__ == "__main__":
    junit_unittest.main()
