"""shardcast.torch_nccl_library(): which libnccl the sidecar is told to load, found as PyTorch
itself has it (issue 12: NGC containers have no `nvidia.nccl` package). Fake `torch` modules in a
subprocess stand for the layouts: NCCL mapped into the process by `import torch` (NGC), a
libnccl inside torch's lib/ folder, and no torch at all."""
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import junit_unittest  # noqa: E402
from testenv import runfile  # noqa: E402

PACKAGE = os.path.dirname(os.path.dirname(runfile("shardcast/python/shardcast/__init__.py", "SHARDCAST_PYTHON_PKG")))
# Any real shared library can stand for libnccl.so.2 when only its path is looked at.
STAND_IN = next(p for p in ("/lib/x86_64-linux-gnu/libz.so.1", "/usr/lib/x86_64-linux-gnu/libz.so.1")
                if os.path.exists(p))


class TorchNcclLibrary(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp()
        self.torch = os.path.join(self.dir, "site", "torch")
        os.makedirs(self.torch)

    def tearDown(self):
        shutil.rmtree(self.dir)

    def fake_torch(self, body):
        with open(os.path.join(self.torch, "__init__.py"), "w") as f:
            f.write("import ctypes, types\ncuda = types.SimpleNamespace(is_available=lambda: False)\n" + body)

    def ask(self, code, with_torch=True):
        path = ([os.path.join(self.dir, "site")] if with_torch else []) + [PACKAGE]
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        env["PYTHONPATH"] = os.pathsep.join(path)
        p = subprocess.run([sys.executable, "-S", "-c", "import shardcast; " + code], capture_output=True, text=True,
                           env=env, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        return p.stdout.strip()

    def test_nccl_mapped_by_import_torch_is_found_like_ngc(self):
        system = os.path.join(self.dir, "usr_lib")
        os.makedirs(system)
        nccl = os.path.join(system, "libnccl.so.2")
        shutil.copy(STAND_IN, nccl)
        self.fake_torch("ctypes.CDLL(%r)\n" % nccl)
        self.assertEqual(self.ask("print(shardcast.torch_nccl_library())"), nccl)
        # Already imported torch: the same answer without importing it again.
        self.assertEqual(self.ask("import torch; print(shardcast.torch_nccl_library(import_torch=False))"), nccl)

    def test_nccl_in_torch_lib_folder(self):
        os.makedirs(os.path.join(self.torch, "lib"))
        nccl = os.path.join(self.torch, "lib", "libnccl.so.2")
        shutil.copy(STAND_IN, nccl)
        self.fake_torch("")
        self.assertEqual(self.ask("print(shardcast.torch_nccl_library())"), nccl)

    def test_torch_without_nccl_gives_none(self):
        self.fake_torch("")
        self.assertEqual(self.ask("print(shardcast.torch_nccl_library())"), "None")

    def test_no_torch_gives_none_and_client_path_does_not_import_it(self):
        self.assertEqual(self.ask("print(shardcast.torch_nccl_library())", with_torch=False), "None")
        self.fake_torch("raise SystemExit('torch imported')\n")
        self.assertEqual(self.ask("import sys; print(shardcast.torch_nccl_library(import_torch=False), "
                                  "'torch' in sys.modules)"), "None False")


if __name__ == "__main__":
    junit_unittest.main()
