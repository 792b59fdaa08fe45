"""deploy/slurm/train_with_shardcast.sbatch run as Slurm would, with a fake `srun` on PATH that
runs each step here (the sidecar step under `mpirun -np 2`, a real `shardcastd --device cpu` on the
shared fixtures; the training step a Python trainer that fetches through the `shardcast` package):
the success path delivers bit-exact shards; a sidecar that dies (no checkpoint) or fails while
loading (a corrupted record) ends the job quickly with status 1, the reason printed and no Python
traceback; the NGC/pyxis variant passes --container-image to both steps."""
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import junit_unittest  # noqa: E402
from testenv import fixtures_dir, runfile  # noqa: E402

SBATCH = runfile("shardcast/deploy/slurm/train_with_shardcast.sbatch", "SHARDCAST_SBATCH")
SHARDCAST = runfile("shardcast/client/cli/shardcast", "SHARDCAST_BIN")
SHARDCASTD = runfile("shardcast/server/shardcastd", "SHARDCASTD_BIN")
CLIENT_SO = runfile("shardcast/client/libshardcast_client.so", "SHARDCAST_CLIENT_SO")
PACKAGE = os.path.dirname(runfile("shardcast/python/shardcast/__init__.py", "SHARDCAST_PYTHON_PKG"))
FIXTURES = fixtures_dir()

FAKE_SRUN = r"""#!/bin/bash
# Fake srun: logs its arguments, drops the options, runs the step here (MPI steps under mpirun).
echo "$*" >> "$FAKE_SRUN_LOG"
mpi=0
while [ $# -gt 0 ]; do
  case $1 in --mpi=*) mpi=1; shift ;; --*) shift ;; *) break ;; esac
done
if [ "$mpi" = 1 ]; then
  exec mpirun --allow-run-as-root --oversubscribe --mca orte_abort_on_non_zero_status 0 -np 2 "$@"
fi
exec "$@"
"""

TRAINER = r"""
import hashlib, json, sys, numpy as np, shardcast
arrays = shardcast.Client(timeout=30).fetch(2, 1)   # SHARDCAST_ADDR / SHARDCAST_TOKEN_FILE from the job
with open(sys.argv[1], "w") as f:
    json.dump({k: hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest() for k, a in arrays.items()}, f)
"""


class SlurmRecipe(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        with open(os.path.join(FIXTURES, "dcp-torch2.11", "expected.json")) as f:
            cls.expected = json.load(f)["tensors"]

    def setUp(self):
        self.dir = tempfile.mkdtemp()
        # $SHARDCAST laid out as a bundle: bin/shardcast, python/shardcast with _lib/.
        bundle = os.path.join(self.dir, "bundle")
        os.makedirs(os.path.join(bundle, "bin"))
        os.symlink(SHARDCAST, os.path.join(bundle, "bin", "shardcast"))
        pkg = os.path.join(bundle, "python", "shardcast")
        shutil.copytree(PACKAGE, pkg, ignore=shutil.ignore_patterns("__pycache__", "_lib"))
        os.makedirs(os.path.join(pkg, "_lib"))
        shutil.copy(CLIENT_SO, os.path.join(pkg, "_lib", "libshardcast_client.so"))
        fake = os.path.join(self.dir, "fakebin")
        os.makedirs(fake)
        with open(os.path.join(fake, "srun"), "w") as f:
            f.write(FAKE_SRUN)
        os.chmod(os.path.join(fake, "srun"), stat.S_IRWXU)
        self.trainer = os.path.join(self.dir, "trainer.py")
        with open(self.trainer, "w") as f:
            f.write(TRAINER)
        self.srun_log = os.path.join(self.dir, "srun.log")
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("SHARDCAST_", "PYTHON"))}
        self.env.update(PATH=fake + os.pathsep + os.environ.get("PATH", "/usr/bin:/bin"), SHARDCAST=bundle,
                        SHARDCASTD=SHARDCASTD, DEVICE="cpu", LISTEN="localhost:0", MEMORY_BUDGET="1GiB",
                        JOB_DIR=os.path.join(self.dir, "job"), SLURM_JOB_ID="4242", FAKE_SRUN_LOG=self.srun_log,
                        READY_TIMEOUT="120")

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def job(self, ckpt, **env):
        out = os.path.join(self.dir, "shards.json")
        trainer = [sys.executable, self.trainer, out]
        runtime = os.environ.get("SHARDCAST_SANITIZER_PRELOAD")
        if runtime:  # --config=asan/tsan: the client library needs its runtime loaded first
            trainer = ["env", "LD_PRELOAD=" + runtime,
                       "ASAN_OPTIONS=%s:detect_leaks=0" % os.environ.get("ASAN_OPTIONS", "")] + trainer
        start = time.time()
        p = subprocess.run(["bash", SBATCH, *trainer], capture_output=True, text=True,
                           env=dict(self.env, CKPT=ckpt, **env), timeout=180)
        return p, time.time() - start, out

    def srun_lines(self):
        with open(self.srun_log) as f:
            return f.read().splitlines()

    def test_success_path_trains_on_bit_exact_shards(self):
        p, _, out = self.job(os.path.join(FIXTURES, "dcp-torch2.11", "vit_flat"))
        self.assertEqual(p.returncode, 0, p.stderr)
        with open(out) as f:
            got = json.load(f)
        # The recipe serves PREFIX (model.vision_model.) with the megatron layout: TP 2 rank 1 of it.
        want = {k: e["shards"]["2"][1] for k, e in self.expected.items() if k.startswith("model.vision_model.")}
        self.assertGreater(len(want), 5)
        self.assertEqual(got, want)
        lines = self.srun_lines()
        self.assertEqual(len(lines), 3, lines)  # NCCL lookup, sidecar, training
        self.assertIn("torch_nccl_library()", lines[0])
        self.assertIn("--mpi=pmix", lines[1])
        self.assertIn("--het-group=1", lines[2])
        self.assertNotIn("--container-image", " ".join(lines))

    def test_sidecar_that_dies_ends_the_job_quickly(self):
        empty = os.path.join(self.dir, "not_a_checkpoint")
        os.makedirs(empty)
        p, secs, out = self.job(empty)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertLess(secs, 60)
        self.assertIn("the shardcast sidecar failed: its job step exited with status", p.stderr)
        self.assertIn("not_a_checkpoint", p.stderr)  # the sidecar's own error, from its log
        self.assertNotIn("Traceback", p.stderr)
        self.assertFalse(os.path.exists(out))  # training never started
        self.assertEqual(len(self.srun_lines()), 2)

    def test_sidecar_failing_while_loading_names_the_reason(self):
        ckpt = os.path.join(self.dir, "corrupt")
        shutil.copytree(os.path.join(FIXTURES, "dcp-torch2.11", "vit_flat"), ckpt)
        data = os.path.join(ckpt, "__0_0.distcp")
        size = os.path.getsize(data)
        with open(data, "r+b") as f:  # flip bytes inside a tensor payload: the record's CRC-32 fails
            f.seek(size // 2)
            chunk = f.read(64)
            f.seek(size // 2)
            f.write(bytes(b ^ 0xFF for b in chunk))
        p, secs, out = self.job(ckpt)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertLess(secs, 60)
        self.assertIn("the shardcast sidecar failed: state failed: loader rank", p.stderr)
        self.assertIn("the file is corrupt", p.stderr)
        self.assertRegex(p.stderr, r"\n1 +failed ")  # `shardcast status` names the failed rank
        self.assertNotIn("Traceback", p.stderr)
        self.assertFalse(os.path.exists(out))

    def test_pyxis_variant_runs_both_steps_in_containers(self):
        p, _, out = self.job(os.path.join(FIXTURES, "dcp-torch2.11", "vit_flat"),
                             CONTAINER_IMAGE="nvcr.io#nvidia/pytorch:24.05-py3", SIDECAR_IMAGE="shardcast:test")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertTrue(os.path.exists(out))
        lines = self.srun_lines()
        self.assertIn("--container-image=nvcr.io#nvidia/pytorch:24.05-py3", lines[0])
        self.assertIn("--container-image=shardcast:test", lines[1])
        self.assertIn("--container-image=nvcr.io#nvidia/pytorch:24.05-py3", lines[2])
        for line in lines:
            self.assertRegex(line, r"--container-mounts=\S+:\S+:ro,")


if __name__ == "__main__":
    junit_unittest.main()
