"""The deploy recipes, checked with what this machine can install: the Kubernetes manifests
against the Kubernetes API schema (kubernetes-validate, strict: unknown fields refused; the native
sidecar field proves the schema is the 1.29 one) and yamllint, plus the recipe's own contract
(native sidecar, probes on the listen port, token Secret, GPUs, client from the same image at the
wheel's paths); the deploy scripts with shellcheck; the Dockerfile parsed (stages, every path it
copies from the build context exists, every Bazel target it builds is declared, the runtime
stage installs the Debian package of every library shardcastd and shardcast link); and the
image's entry point run here: `serve` starts shardcastd under mpirun and SIGTERM ends it with exit
0 after the drain, `copy-client` lays the client out where the manifest's trainer looks."""
import glob
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

import kubernetes_validate
import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import junit_unittest  # noqa: E402
from testenv import fixtures_dir, runfile  # noqa: E402

# Not resolved through symlinks: the repository's files as the runfiles lay them out.
ROOT = os.environ.get("SHARDCAST_ROOT") or os.path.join(os.environ.get("TEST_SRCDIR", ""), "shardcast")
MANIFESTS = sorted(glob.glob(os.path.join(ROOT, "deploy", "k8s", "*.yaml")))
DOCKERFILE = os.path.join(ROOT, "deploy", "docker", "Dockerfile")
ENTRYPOINT = os.path.join(ROOT, "deploy", "docker", "entrypoint.sh")
SHARDCASTD = runfile("shardcast/server/shardcastd", "SHARDCASTD_BIN")
SHARDCAST = runfile("shardcast/client/cli/shardcast", "SHARDCAST_BIN")
FIXTURES = fixtures_dir()
# The source tree (BUILD files, context paths): the real location of a file in the runfiles.
SOURCE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(DOCKERFILE))))
YAMLLINT = ("{extends: default, rules: {line-length: {max: 120}, document-start: disable, "
            "comments: {min-spaces-from-content: 1}}}")
K8S_VERSION = "1.29.0"  # the first release with native sidecars on by default


def load_manifests():
    docs = []
    for path in MANIFESTS:
        with open(path) as f:
            docs += [(path, d) for d in yaml.safe_load_all(f) if d]
    return docs


def pod_spec(doc):
    return doc["spec"]["template"]["spec"] if doc["kind"] in ("Job", "Deployment", "StatefulSet") else doc["spec"]


def dockerfile_instructions():
    """(INSTRUCTION, arguments) per instruction, continuation lines joined, comments dropped."""
    out, cur = [], ""
    with open(DOCKERFILE) as f:
        for line in f:
            s = line.rstrip("\n")
            if not cur and (not s.strip() or s.lstrip().startswith("#")):
                continue
            if s.lstrip().startswith("#"):
                continue
            cur += s.rstrip("\\").strip() + " " if s.endswith("\\") else s.strip()
            if not s.endswith("\\"):
                word, _, rest = cur.partition(" ")
                out.append((word.upper(), rest.strip()))
                cur = ""
    return out


class KubernetesManifests(unittest.TestCase):
    def test_there_are_manifests(self):
        self.assertTrue(MANIFESTS, "no deploy/k8s/*.yaml in the runfiles")

    def test_schema_strict(self):
        for path, doc in load_manifests():
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)  # raises ValidationError
            # The schema is one that knows native sidecars: 1.27's refuses the same manifest.
            with self.assertRaisesRegex(kubernetes_validate.ValidationError, "restartPolicy"):
                kubernetes_validate.validate(doc, "1.27.0", strict=True)

    def test_schema_refuses_a_misspelt_field(self):
        path, doc = load_manifests()[0]
        pod_spec(doc)["initContainers"][-1]["startupProbe"]["failureTreshold"] = 3
        with self.assertRaises(kubernetes_validate.ValidationError):
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)

    def test_yamllint(self):
        p = subprocess.run([sys.executable, "-m", "yamllint", "-f", "parsable", "-d", YAMLLINT, *MANIFESTS],
                           capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)

    def test_native_sidecar_contract(self):
        for path, doc in load_manifests():
            spec = pod_spec(doc)
            sidecars = [c for c in spec.get("initContainers", []) if c.get("restartPolicy") == "Always"]
            self.assertEqual(len(sidecars), 1, path)
            sc = sidecars[0]
            self.assertEqual(sc["args"][0], "serve", "the image's entry point runs shardcastd on 'serve'")
            flags = dict(a[2:].split("=", 1) for a in sc["args"][1:])
            port = int(flags["listen"].rsplit(":", 1)[1])
            self.assertEqual(sc["startupProbe"]["grpc"]["port"], port)
            self.assertEqual(sc["readinessProbe"]["grpc"]["port"], port)
            self.assertGreaterEqual(sc["startupProbe"]["periodSeconds"] * sc["startupProbe"]["failureThreshold"], 600)
            self.assertIn("nvidia.com/gpu", sc["resources"]["limits"])
            self.assertEqual(str(sc["resources"]["limits"]["nvidia.com/gpu"]),  # one loader rank per GPU
                             next(e["value"] for e in sc["env"] if e["name"] == "SHARDCAST_RANKS"))
            self.assertNotIn("exit-when-idle", flags)  # a native sidecar that exits is restarted
            volumes = {v["name"]: v for v in spec["volumes"]}
            token_dir = os.path.dirname(flags["token-file"])
            token_mount = next(m for m in sc["volumeMounts"] if m["mountPath"] == token_dir)
            self.assertIn("secret", volumes[token_mount["name"]])
            self.assertEqual(spec["restartPolicy"], "Never")
            self.assertGreater(spec["terminationGracePeriodSeconds"], int(flags["deadline"]))
            # The trainer: the client from the same image, at the paths the wheel lays out.
            copy = next(c for c in spec["initContainers"] if c.get("args", [""])[0] == "copy-client")
            self.assertEqual(copy["image"], sc["image"])
            dest = copy["args"][1]
            (trainer,) = spec["containers"]
            env = {e["name"]: e["value"] for e in trainer["env"]}
            self.assertEqual(env["PYTHONPATH"], dest + "/python")
            self.assertEqual(env["SHARDCAST_TOKEN_FILE"], flags["token-file"])
            self.assertTrue(env["SHARDCAST_ADDR"].endswith(":%d" % port))
            self.assertIn(dest + "/python/shardcast/_bin/shardcast status --wait-ready", " ".join(trainer["command"]))
            mounts = {m["mountPath"]: m["name"] for m in trainer["volumeMounts"]}
            self.assertEqual(mounts[dest], copy["volumeMounts"][0]["name"])
            self.assertEqual(mounts[token_dir], token_mount["name"])


class Scripts(unittest.TestCase):
    def test_shellcheck(self):
        scripts = sorted(glob.glob(os.path.join(ROOT, "deploy", "**", "*.sh"), recursive=True)
                         + glob.glob(os.path.join(ROOT, "deploy", "**", "*.sbatch"), recursive=True)
                         + [os.path.join(ROOT, "tools", n) for n in ("build_wheel.sh", "install_python.sh")])
        self.assertGreaterEqual(len(scripts), 6, scripts)
        p = subprocess.run(["shellcheck", "-S", "warning", *scripts], capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)


class Dockerfile(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.ins = dockerfile_instructions()
        cls.stages = [re.split(r"\s+[Aa][Ss]\s+", a)[1] for i, a in cls.ins if i == "FROM" and " AS " in a.upper()]

    def test_stages(self):
        self.assertEqual(self.stages, ["cuda", "builder", "runtime"])
        # FROM ${CUDA_IMAGE}: the argument is declared before the first FROM (else it is empty there).
        first_from = next(n for n, (i, _) in enumerate(self.ins) if i == "FROM")
        for ref in re.findall(r"\$\{?(\w+)", self.ins[first_from][1]):
            self.assertTrue(any(i == "ARG" and a.split("=")[0] == ref for i, a in self.ins[:first_from]), ref)
        for i, a in self.ins:
            if i == "COPY" and "--from=" in a:
                self.assertIn(re.search(r"--from=(\S+)", a).group(1), self.stages, a)

    def test_context_paths_exist(self):
        for i, a in self.ins:
            if i in ("COPY", "ADD") and "--from=" not in a:
                srcs = shlex.split(a)[:-1]
                for s in srcs:
                    self.assertTrue(os.path.exists(os.path.join(SOURCE, s)), "COPY %s: not in the repository" % s)
        run = " ".join(a for i, a in self.ins if i == "RUN")
        for path in re.findall(r"(?<![/\w])((?:tools|deploy)/[\w/.-]+)", run):
            self.assertTrue(os.path.exists(os.path.join(SOURCE, path)), path)

    def test_bazel_targets_are_declared(self):
        run = " ".join(a for i, a in self.ins if i == "RUN")
        labels = re.findall(r"//([\w/]+):([\w.+-]+)", run)
        self.assertGreaterEqual(len(labels), 3)
        for pkg, name in labels:
            with open(os.path.join(SOURCE, pkg, "BUILD")) as f:
                self.assertRegex(f.read(), r'name = "%s"' % re.escape(name), "//%s:%s" % (pkg, name))

    def test_entrypoint_and_outputs(self):
        (entry,) = [json.loads(a) for i, a in self.ins if i == "ENTRYPOINT"]
        self.assertEqual(entry, ["/opt/shardcast/bin/entrypoint.sh"])
        run = " ".join(a for i, a in self.ins if i == "RUN")
        self.assertIn("deploy/docker/entrypoint.sh /out/bin/entrypoint.sh", run)
        self.assertIn("COPY --from=builder /out/ /opt/shardcast/", ["%s %s" % x for x in self.ins])
        for out in ("/out/bin/shardcastd", "/out/bin/shardcast", "--out /out/wheels", "--target /out/python"):
            self.assertIn(out, run)

    def test_runtime_installs_every_linked_library(self):
        runtime = self.ins[[n for n, (i, _) in enumerate(self.ins) if i == "FROM"][-1]:]
        apt = " ".join(a for i, a in runtime if i == "RUN")
        base = {"libc6", "libstdc++6", "libgcc-s1"}  # in debian:12-slim
        wanted = {}  # library -> (binary, the paths dpkg may know it by)
        for binary in (SHARDCASTD, SHARDCAST):
            needed = re.findall(r"\(NEEDED\)\s+Shared library: \[(\S+)\]",
                                subprocess.run(["readelf", "-d", binary], capture_output=True, text=True).stdout)
            ldd = dict(re.findall(r"^\s*(\S+) => (/\S+)", subprocess.run(["ldd", binary], capture_output=True,
                                                                          text=True).stdout, re.M))
            for lib in needed:
                # Not the dynamic loader (libc6), nor a sanitizer runtime (--config=asan/tsan builds).
                if not re.match(r"ld-linux|lib(a|ub|t)san\.so", lib):
                    wanted[lib] = (os.path.basename(binary), {ldd[lib], os.path.realpath(ldd[lib])})
        # One dpkg query for every path (merged /usr: a file is registered under one of the two).
        paths = sorted(set().union(*(p for _, p in wanted.values())))
        out = subprocess.run(["dpkg", "-S", *paths], capture_output=True, text=True).stdout
        owner = {path: pkg.split(":")[0] for pkg, path in re.findall(r"^(\S+): (/\S+)$", out, re.M)}
        self.assertGreater(len(wanted), 10)
        for lib, (binary, lib_paths) in sorted(wanted.items()):
            pkgs = {owner[p] for p in lib_paths if p in owner}
            self.assertEqual(len(pkgs), 1, "%s: no single Debian package owns %s" % (lib, sorted(lib_paths)))
            pkg = pkgs.pop()
            if pkg not in base:
                self.assertRegex(apt, r"(^|\s)%s(\s|$)" % re.escape(pkg), "%s needs %s (%s)" % (binary, lib, pkg))


class Entrypoint(unittest.TestCase):
    def setUp(self):
        self.home = tempfile.mkdtemp()
        os.makedirs(os.path.join(self.home, "bin"))
        os.symlink(SHARDCASTD, os.path.join(self.home, "bin", "shardcastd"))

    def tearDown(self):
        shutil.rmtree(self.home, ignore_errors=True)

    def test_serve_drains_on_sigterm_and_exits_0(self):
        ready = os.path.join(self.home, "ready.json")
        env = dict(os.environ, SHARDCAST_HOME=self.home, SHARDCAST_RANKS="2", OMPI_MCA_rmaps_base_oversubscribe="1")
        log = open(os.path.join(self.home, "log"), "w")
        proc = subprocess.Popen(["bash", ENTRYPOINT, "serve", "--checkpoint",
                                 os.path.join(FIXTURES, "dcp-torch2.11", "vit_flat"), "--device", "cpu", "--listen",
                                 "localhost:0", "--ready-file", ready, "--deadline", "4"],
                                stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        try:
            end = time.time() + 60
            while not os.path.exists(ready):
                self.assertIsNone(proc.poll(), open(log.name).read())
                self.assertLess(time.time(), end, "not ready:\n" + open(log.name).read())
                time.sleep(0.05)
            with open(ready) as f:
                address = json.load(f)["address"]
            st = subprocess.run([SHARDCAST, "status", "--server", address, "--json"], capture_output=True, text=True)
            self.assertEqual(json.loads(st.stdout)["state"], "ready")
            os.kill(proc.pid, signal.SIGTERM)  # what the kubelet sends the container's PID 1
            self.assertEqual(proc.wait(timeout=30), 0, open(log.name).read())
            text = open(log.name).read()
            self.assertIn("state=stopping", text)  # the drain: no new requests, transfers finish
            self.assertIn("shardcastd rank 0: stopped", text)
            self.assertIn("shardcastd rank 1: stopped", text)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            log.close()

    def test_copy_client_lays_out_what_the_trainer_uses(self):
        pkg = os.path.join(self.home, "python", "shardcast", "_bin")
        os.makedirs(pkg)
        shutil.copy(SHARDCAST, os.path.join(pkg, "shardcast"))
        os.makedirs(os.path.join(self.home, "wheels"))
        open(os.path.join(self.home, "wheels", "shardcast-0-py3-none-manylinux_2_35_x86_64.whl"), "w").close()
        dest = os.path.join(self.home, "volume")
        p = subprocess.run(["bash", ENTRYPOINT, "copy-client", dest], capture_output=True, text=True,
                           env=dict(os.environ, SHARDCAST_HOME=self.home))
        self.assertEqual(p.returncode, 0, p.stderr)
        cli = os.path.join(dest, "python", "shardcast", "_bin", "shardcast")
        self.assertIn("shardcast ", subprocess.run([cli, "--version"], capture_output=True, text=True).stdout)
        self.assertTrue(glob.glob(os.path.join(dest, "wheels", "*.whl")))
        p = subprocess.run(["bash", ENTRYPOINT], capture_output=True, text=True)
        self.assertEqual(p.returncode, 2)
        self.assertIn("usage", p.stderr)


if __name__ == "__main__":
    junit_unittest.main()
