"""shardcast.torch end to end on the CPU (gloo): DTensor state dicts (Shard(0), Shard(1), Shard(2),
Replicate, uneven shards, plain tensors, 0-dim, non-tensor values nested and at the top) saved by
torch.distributed.checkpoint.save from 2 processes on a 1-D mesh and from 4 on a 2x2 mesh, served
by `mpirun -np 2 shardcastd --device cpu`, and loaded at other world sizes and meshes through
shardcast.torch.load and through dcp.load with shardcast.torch.StorageReader: every local tensor
bit-exact against dcp.load from the files, every value equal (tests/torch_dcp_worker.py).

Needs a Python with torch: $SHARDCAST_TORCH_PYTHON, else $SHARDCAST_MEGATRON_PYTHON (the venv that
tools/setup_megatron.sh prints). Without one the test fails saying so."""
import os
import socket
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import junit_unittest  # noqa: E402
from service_test import Service  # noqa: E402
from testenv import runfile  # noqa: E402

WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "torch_dcp_worker.py")
PACKAGE = os.path.dirname(os.path.dirname(runfile("shardcast/python/shardcast/__init__.py", "SHARDCAST_PYTHON_PKG")))
CLIENT_SO = runfile("shardcast/client/libshardcast_client.so", "SHARDCAST_CLIENT_SO")


def torch_python():
    py = os.environ.get("SHARDCAST_TORCH_PYTHON") or os.environ.get("SHARDCAST_MEGATRON_PYTHON")
    if not py:
        raise AssertionError("no Python with torch: set SHARDCAST_TORCH_PYTHON (or SHARDCAST_MEGATRON_PYTHON="
                             "$(bash tools/setup_megatron.sh))")
    return py


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_workers(mode, ckpt, world, mesh, address=None, timeout=300):
    """Runs `world` worker processes (one gloo group) and fails with their output unless all say ok."""
    env = dict(os.environ, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()), WORLD_SIZE=str(world),
               PYTHONPATH=PACKAGE, SHARDCAST_CLIENT_SO=CLIENT_SO, OMP_NUM_THREADS="1", USE_LIBUV="0")
    if address:
        env["SHARDCAST_ADDR"] = address
    procs = [subprocess.Popen([torch_python(), WORKER, mode, ckpt, "--mesh", mesh], env=dict(env, RANK=str(r)),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for r in range(world)]
    outs = []
    for p in procs:
        try:
            outs.append(p.communicate(timeout=timeout)[0])
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise
    failed = [(r, p.returncode, o) for r, (p, o) in enumerate(zip(procs, outs)) if p.returncode != 0 or "ok" not in o]
    if failed:
        raise AssertionError("%s (world %d, mesh %s) failed:\n%s" % (mode, world, mesh, "\n".join(
            "--- rank %d (exit %s)\n%s" % (r, rc, o[-4000:]) for r, rc, o in failed)))


class TorchAdapter(unittest.TestCase):
    def check(self, save_world, save_mesh, loads):
        ckpt = os.path.join(tempfile.mkdtemp(), "ckpt")
        run_workers("save", ckpt, save_world, save_mesh)
        svc = Service(ckpt)
        try:
            for world, mesh in loads:
                run_workers("load", ckpt, world, mesh, address=svc.address)
        finally:
            svc.stop()

    def test_saved_on_1d_mesh_of_2_loaded_on_3_and_2x2(self):
        self.check(2, "2", [(3, "3"), (4, "2x2"), (1, "1")])

    def test_saved_on_2x2_mesh_loaded_on_2(self):
        self.check(4, "2x2", [(2, "2"), (2, "1x2")])


if __name__ == "__main__":
    junit_unittest.main()
