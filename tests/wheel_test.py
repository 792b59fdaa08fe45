"""The pip wheel as a user gets it: tools/build_wheel.sh builds it from the Bazel-built client
library and CLI (auditwheel: manylinux tag, native dependencies bundled), a fresh venv installs
it without any index, and the installed package (not the source tree) reports the version of
common/version.h and fetches every shard of TP 2 bit-exact from a live `shardcastd --device cpu`,
through the Python client and through the wheel's `shardcast` console script."""
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import unittest
import zipfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import junit_unittest  # noqa: E402
from testenv import fixtures_dir, runfile  # noqa: E402
import service_test  # noqa: E402  (reuses its Service launcher)

# Not resolved through symlinks: the script finds python/ and common/ beside itself (the runfiles).
BUILD_WHEEL = os.environ.get("SHARDCAST_BUILD_WHEEL") or os.path.join(os.environ.get("TEST_SRCDIR", ""), "shardcast",
                                                                        "tools", "build_wheel.sh")
CLIENT_SO = runfile("shardcast/client/libshardcast_client.so", "SHARDCAST_CLIENT_SO")
CLI = runfile("shardcast/client/cli/shardcast", "SHARDCAST_BIN")
VERSION_H = runfile("shardcast/common/version.h", "SHARDCAST_VERSION_H")
FIXTURES = fixtures_dir()

# The venv's Python fetches TP 2 and prints {key: sha256} per rank (NumPy from the system site).
FETCH = """
import hashlib, json, sys, numpy as np, shardcast
c = shardcast.Client(sys.argv[1], token_file=sys.argv[2], timeout=30)
out = {rank: {k: hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest() for k, a in c.fetch(2, rank).items()}
       for rank in (0, 1)}
print(json.dumps({"file": shardcast.__file__, "version": shardcast.__version__, "shas": out}))
"""


def clean_env(venv):
    """The environment of a user's shell with the venv activated: nothing pointing into Bazel."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTHON", "SHARDCAST_", "RUNFILES", "TEST_")) and k != "VIRTUAL_ENV"}
    env["PATH"] = os.path.join(venv, "bin") + os.pathsep + env.get("PATH", "/usr/bin:/bin")
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env["PIP_NO_CACHE_DIR"] = "1"
    return env


class Wheel(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp()
        with open(VERSION_H) as f:
            cls.version = re.search(r'kVersion\[\] = "([^"]+)"', f.read()).group(1)
        start = time.time()
        p = subprocess.run(["bash", BUILD_WHEEL, "--out", os.path.join(cls.tmp, "dist"), "--lib", CLIENT_SO,
                            "--cli", CLI], capture_output=True, text=True, timeout=600,
                           env=dict(os.environ, PYTHON=sys.executable))
        if p.returncode != 0:
            raise AssertionError("build_wheel.sh failed (%d):\n%s" % (p.returncode, p.stderr))
        cls.wheel = p.stdout.strip().splitlines()[-1]
        built = time.time()
        cls.venv = os.path.join(cls.tmp, "venv")
        # --system-site-packages only for NumPy (optional for the package); the venv's own
        # site-packages come first, and the test checks shardcast is imported from there.
        subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", cls.venv], check=True, timeout=300)
        cls.py = os.path.join(cls.venv, "bin", "python")
        p = subprocess.run([cls.py, "-m", "pip", "install", "-q", "--no-index", cls.wheel], capture_output=True,
                           text=True, timeout=300, env=clean_env(cls.venv), cwd=cls.tmp)
        if p.returncode != 0:
            raise AssertionError("pip install of the wheel failed:\n" + p.stderr)
        sys.stderr.write("wheel_test: build_wheel %.1f s, venv + install %.1f s\n" % (built - start, time.time() - built))
        with open(os.path.join(FIXTURES, "dcp-torch2.11", "expected.json")) as f:
            cls.expected = json.load(f)["tensors"]

    def run_venv(self, *args, timeout=120):
        p = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, env=clean_env(self.venv),
                           cwd=self.tmp)
        self.assertEqual(p.returncode, 0, "%s failed:\n%s" % (" ".join(args), p.stderr))
        return p.stdout

    def test_wheel_is_manylinux_and_bundles_native_libraries(self):
        name = os.path.basename(self.wheel)
        self.assertRegex(name, r"^shardcast-%s-py3-none-manylinux_2_\d+_x86_64\.whl$" % re.escape(self.version))
        show = subprocess.run([sys.executable, "-m", "auditwheel", "show", self.wheel], capture_output=True,
                              text=True, timeout=120)
        self.assertEqual(show.returncode, 0, show.stderr)
        text = " ".join(show.stdout.split())
        self.assertRegex(text, r'is consistent with the following platform tag: "manylinux_2_\d+_x86_64"')
        names = zipfile.ZipFile(self.wheel).namelist()
        self.assertIn("shardcast/_lib/libshardcast_client.so", names)
        self.assertIn("shardcast/_bin/shardcast", names)
        self.assertIn("shardcast/_version.py", names)
        bundled = [n for n in names if n.startswith("shardcast.libs/")]
        for lib in ("libgrpc++", "libprotobuf", "libabsl_status", "libre2"):
            self.assertTrue(any(os.path.basename(n).startswith(lib) for n in bundled), "%s not bundled" % lib)

    def test_installed_library_resolves_from_the_wheel_alone(self):
        site = self.run_venv(self.py, "-c", "import os, shardcast; print(os.path.dirname(shardcast.__file__))").strip()
        self.assertTrue(site.startswith(self.venv), site)
        for elf in ("_lib/libshardcast_client.so", "_bin/shardcast"):
            ldd = subprocess.run(["ldd", os.path.join(site, elf)], capture_output=True, text=True).stdout
            self.assertNotIn("not found", ldd, elf)
            grpc = [l for l in ldd.splitlines() if "libgrpc++" in l]
            self.assertEqual(len(grpc), 1, ldd)
            self.assertIn("shardcast.libs", grpc[0], "%s takes gRPC from outside the wheel: %s" % (elf, grpc[0]))

    def test_version_and_console_script(self):
        got = self.run_venv(self.py, "-c", "import shardcast; print(shardcast.__version__)").strip()
        self.assertEqual(got, self.version)
        self.assertIn(self.version, self.run_venv(os.path.join(self.venv, "bin", "shardcast"), "--version"))

    def test_fetch_bit_exact_from_live_service(self):
        svc = service_test.Service(os.path.join(FIXTURES, "dcp-torch2.11", "vit_flat"), token="wheel-token")
        try:
            res = json.loads(self.run_venv(self.py, "-c", FETCH, svc.address, svc.token_file))
            self.assertTrue(res["file"].startswith(self.venv), res["file"])
            self.assertEqual(res["version"], self.version)
            for rank in ("0", "1"):
                self.assertEqual(set(res["shas"][rank]), set(self.expected))
                for key, sha in res["shas"][rank].items():
                    self.assertEqual(sha, self.expected[key]["shards"]["2"][int(rank)], "%s rank %s" % (key, rank))
            cli = json.loads(self.run_venv(os.path.join(self.venv, "bin", "shardcast"), "fetch", "--server",
                                           svc.address, "--token-file", svc.token_file, "--tp", "2", "--rank", "1",
                                           "--digest", "--json"))
            got = {t["key"]: t["sha256"] for t in cli["tensors"]}
            self.assertEqual(got, {k: e["shards"]["2"][1] for k, e in self.expected.items()})
        finally:
            svc.stop()


if __name__ == "__main__":
    junit_unittest.main()
