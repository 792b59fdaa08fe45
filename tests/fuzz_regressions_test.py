"""The fuzzers' metadata findings, replayed through `shardcast inspect` as a user would hit them:
each reproducer (tests/fuzz/make_regressions.py) must give a clean named error, quickly, never a
crash. (The record findings are unit tests in checkpoint/torch_record_test.cc.)"""
import os
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import junit_unittest  # noqa: E402
from testenv import fixtures_dir, runfile  # noqa: E402



SHARDCAST = runfile("shardcast/client/cli/shardcast")
MAKE = runfile("shardcast/tests/fuzz/make_regressions.py")


class FuzzRegressions(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp()
        subprocess.run([sys.executable, MAKE, cls.dir], check=True, capture_output=True)

    def replay(self, name, want, code=1):
        ckpt = os.path.join(self.dir, name + ".ckpt")
        os.makedirs(ckpt, exist_ok=True)
        with open(os.path.join(self.dir, name), "rb") as f, open(os.path.join(ckpt, ".metadata"), "wb") as g:
            g.write(f.read())
        t0 = time.time()
        p = subprocess.run([SHARDCAST, "inspect", ckpt, "--digest"], capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, code, p.stderr)  # never a crash (a signal gives a negative code)
        self.assertIn(want, p.stderr if code else p.stdout)
        self.assertLess(time.time() - t0, 5.0)

    def test_chunk_element_counts_overflow(self):
        self.replay("metadata-covered-overflow", "more elements than the shape")

    def test_many_duplicate_empty_chunks_are_fast(self):
        # 30,000 copies of one empty chunk of an empty [1, 0] tensor: used to take 13 s in the
        # overlap check. Empty chunks hold nothing, so the checkpoint is valid and reads at once.
        self.replay("metadata-quadratic-chunks", "[1,0]", code=0)


if __name__ == "__main__":
    junit_unittest.main()
