"""tools/check_layers.py: each kind of upward dependency in a small synthetic tree is reported, a
clean tree passes, and the repository itself passes (the CI gate on the layers)."""
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import junit_unittest

# The source tree's tools/, through the runfile link of the checker (the last test reads the whole
# repository from there: tagged "local").
HERE = os.path.join(os.path.dirname(os.path.realpath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools", "check_layers.py"))))
sys.path.insert(0, HERE)
import check_layers  # noqa: E402


def write(root, rel, text):
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def clean_tree(root):
    """Every layered package with the right visibility, a root BUILD with the right groups, and
    one source per package that includes only what it may."""
    groups = []
    for pkg in check_layers.DEPS:
        name = check_layers.group_name(pkg)
        users = sorted(f"//{p}/..." if p in ("tests", "tools") else f"//{p}"
                       for p in check_layers.users_of(pkg))
        groups.append(f"package_group(name = {name!r}, packages = {users!r})")
        write(root, f"{pkg}/BUILD",
              f'package(default_visibility = ["//:{name}"])\n'
              f'cc_library(name = "lib", srcs = ["lib.cc"], '
              f'deps = [{", ".join(repr("//" + d + ":lib") for d in check_layers.DEPS[pkg])}])\n')
        includes = "".join(f'#include "{d}/lib.h"\n' for d in check_layers.DEPS[pkg])
        write(root, f"{pkg}/lib.cc", includes + '#include "absl/status/status.h"\n')
    write(root, "BUILD", "\n".join(groups) + "\n")


class CheckLayersTest(unittest.TestCase):
    def setUp(self):
        self.root = tempfile.mkdtemp()
        clean_tree(self.root)

    def tearDown(self):
        shutil.rmtree(self.root)

    def problems(self):
        out = []
        check_layers.check_includes(self.root, out)
        check_layers.check_build_files(self.root, out)
        check_layers.check_package_groups(self.root, out)
        return out

    def test_clean_tree_passes(self):
        self.assertEqual(self.problems(), [])

    def test_upward_include_is_reported_with_file_and_line(self):
        write(self.root, "kernels/up.h", '// x\n#include "server/loader.h"\n')
        (p,) = self.problems()
        self.assertIn("kernels/up.h:2: kernels includes server/", p)

    def test_include_of_a_path_with_digits_is_seen(self):
        # The generated proto headers live under proto/shardcast/v1/.
        write(self.root, "checkpoint/p.cc", '#include "proto/shardcast/v1/shardcast.pb.h"\n')
        (p,) = self.problems()
        self.assertIn("checkpoint/p.cc:1: checkpoint includes proto/", p)

    def test_server_and_client_may_not_use_each_other(self):
        write(self.root, "client/x.cc", '#include "server/loader.h"\n')
        write(self.root, "server/x.cc", '#include "client/client.h"\n')
        self.assertEqual(len(self.problems()), 2)

    def test_cli_is_its_own_layer_above_client(self):
        write(self.root, "client/y.cc", '#include "client/cli/args.h"\n')
        write(self.root, "client/cli/y.cc", '#include "client/client.h"\n')
        (p,) = self.problems()
        self.assertIn("client/y.cc:1: client includes client/cli/", p)

    def test_upward_build_label_is_reported(self):
        with open(os.path.join(self.root, "transport/BUILD"), "a") as f:
            f.write('cc_library(name = "bad", deps = ["//server:loader"])\n')
        (p,) = self.problems()
        self.assertIn("transport/BUILD:3: transport depends on //server", p)

    def test_wrong_visibility_is_reported(self):
        write(self.root, "reshard/BUILD", 'package(default_visibility = ["//visibility:public"])\n')
        (p,) = self.problems()
        self.assertIn("reshard/BUILD: package(default_visibility", p)

    def test_package_group_that_widens_a_layer_is_reported(self):
        with open(os.path.join(self.root, "BUILD")) as f:
            text = f.read()
        text = text.replace("package_group(name = 'server_users', packages = [",
                            "package_group(name = 'server_users', packages = ['//client', ")
        write(self.root, "BUILD", text)
        (p,) = self.problems()
        self.assertIn("package_group server_users", p)

    def test_cuda_header_outside_a_cuda_target_is_reported(self):
        write(self.root, "checkpoint/lib.cc", '#include "common/lib.h"\n#include <cuda_runtime.h>\n')
        (p,) = self.problems()
        self.assertIn('checkpoint/lib.cc:2: includes a CUDA/NCCL header but //checkpoint:lib is not tagged "cuda"', p)

    def test_cuda_header_in_a_cuda_target_is_fine(self):
        write(self.root, "kernels/BUILD", 'package(default_visibility = ["//:kernels_users"])\n'
              'cc_library(name = "lib", srcs = ["lib.cc"], tags = ["cuda"], deps = ["//common:lib"])\n')
        write(self.root, "kernels/lib.cc", '#include <cuda_runtime.h>\n#include "nccl.h"\n')
        self.assertEqual(self.problems(), [])

    def test_the_repository_keeps_its_layers(self):
        root = os.path.dirname(HERE)
        run = subprocess.run([sys.executable, os.path.join(HERE, "check_layers.py"), root],
                             capture_output=True, text=True)
        self.assertEqual(run.returncode, 0, run.stdout + run.stderr)
        self.assertIn("layers ok", run.stdout)


if __name__ == "__main__":
    junit_unittest.main()
