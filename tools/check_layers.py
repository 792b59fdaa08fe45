#!/usr/bin/env python3
"""Checks that dependencies point down the layers of docs/ARCHITECTURE.md.

                       client/cli
                           |
            server       client         (server and client never use each other)
               |   \   /    |
               |    \ /     |
            reshard   transport
            /    \    /    \
    checkpoint   kernels    proto       (the schema, and request_convert)
            \       |       /
                  common

A package may use only the packages listed for it in DEPS (below it in the picture; DEPS is the
transitive closure, so a package may skip layers). bench/, tests/, tools/, examples/ and python/
sit above everything. Three views are checked, so that neither a header nor a BUILD
label can point up unnoticed:
  1. every `#include "pkg/..."` in a layered package's sources;
  2. every `//pkg:target` label in a layered package's BUILD file;
  3. Bazel visibility: each layered package's BUILD declares
     `package(default_visibility = ["//:<name>_users"])` and the root BUILD's package group of that
     name lists exactly the packages allowed above it (so Bazel itself refuses an upward dep).
Also: CUDA and NCCL headers are included only by sources of targets tagged "cuda" (or built by
sc_cuda_library), so a machine without CUDA builds everything else.

Usage: tools/check_layers.py [REPO_ROOT]   (exit status 1 and one line per violation)
"""

import os
import re
import sys

_BELOW_SERVER = ["common", "checkpoint", "kernels", "proto", "reshard", "transport"]
DEPS = {
    "common": [],
    "checkpoint": ["common"],
    "kernels": ["common"],
    "proto": ["common"],
    "reshard": ["common", "checkpoint", "kernels"],
    "transport": ["common", "kernels", "proto"],
    "server": _BELOW_SERVER,
    "client": _BELOW_SERVER,
    "client/cli": _BELOW_SERVER + ["client"],
}
LAYERS = DEPS  # the layered packages
TOP = ["bench", "examples", "python", "tests", "tools"]  # may use any layer; nothing uses them
SOURCE_SUFFIXES = (".h", ".cc", ".cu")
CUDA_HEADERS = re.compile(r'#\s*include\s*[<"](cuda[a-z_]*\.h|nccl\.h|cuda/[^>"]+)[>"]')
OUR_INCLUDE = re.compile(r'#\s*include\s*"([a-z0-9_]+(?:/[a-z0-9_]+)*)/[^"/]+"')
LABEL = re.compile(r'"//([a-z0-9_/]+)[:"]')


def package_of(path):
    """The layered package a repo-relative path belongs to (the longest match), or None."""
    best = None
    for pkg in LAYERS:
        if path == pkg or path.startswith(pkg + "/"):
            if best is None or len(pkg) > len(best):
                best = pkg
    return best


def allowed(src_pkg, dst_pkg):
    return dst_pkg is None or src_pkg == dst_pkg or dst_pkg in DEPS[src_pkg]


def users_of(pkg):
    """The packages allowed to depend on `pkg`: those listing it in DEPS, and the top packages."""
    return sorted([p for p in DEPS if pkg in DEPS[p]] + TOP)


def group_name(pkg):
    return pkg.replace("/", "_") + "_users"


def source_files(root, pkg):
    base = os.path.join(root, pkg)
    for dirpath, dirnames, filenames in os.walk(base):
        rel_dir = os.path.relpath(dirpath, root)
        dirnames[:] = [d for d in dirnames if package_of(os.path.join(rel_dir, d)) == pkg]
        for name in filenames:
            if name.endswith(SOURCE_SUFFIXES):
                yield os.path.join(rel_dir, name)


def check_includes(root, problems):
    for pkg in LAYERS:
        for rel in source_files(root, pkg):
            with open(os.path.join(root, rel), encoding="utf-8", errors="replace") as f:
                for lineno, line in enumerate(f, 1):
                    m = OUR_INCLUDE.search(line)
                    if not m:
                        continue
                    dst = package_of(m.group(1))
                    if not allowed(pkg, dst):
                        problems.append(f"{rel}:{lineno}: {pkg} includes {dst}/, but {pkg} may use "
                                        f"only {DEPS[pkg] or 'nothing of ours'}")


class _Target(dict):
    pass


def read_build(path):
    """Evaluates a BUILD file with stub rules; returns (targets, package() kwargs)."""
    targets, package = [], {}

    def rule(kind):
        def make(**kw):
            t = _Target(kw)
            t["kind"] = kind
            targets.append(t)
        return make

    class Names(dict):  # any other name is a rule (cc_library, sc_cc_grpc_proto, ...)
        def __missing__(self, kind):
            return rule(kind)

    env = Names({"package": lambda **kw: package.update(kw), "load": lambda *a, **kw: None,
                 "glob": lambda *a, **kw: [], "select": lambda d: [],
                 "exports_files": lambda *a, **kw: None})
    with open(path, encoding="utf-8") as f:
        code = f.read()
    exec(compile(code, path, "exec"), {"__builtins__": {}}, env)  # Starlark: a subset of Python
    return targets, package


def check_build_files(root, problems):
    for pkg in LAYERS:
        path = os.path.join(root, pkg, "BUILD")
        if not os.path.exists(path):
            continue
        with open(path, encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if line.lstrip().startswith("#"):
                    continue
                for m in LABEL.finditer(line):
                    dst = package_of(m.group(1))
                    if not allowed(pkg, dst):
                        problems.append(f"{pkg}/BUILD:{lineno}: {pkg} depends on //{m.group(1)}, but "
                                        f"{pkg} may use only {DEPS[pkg] or 'nothing of ours'}")
        targets, package = read_build(path)
        want = [f"//:{group_name(pkg)}"]
        if package.get("default_visibility") != want:
            problems.append(f"{pkg}/BUILD: package(default_visibility = {want!r}) expected, found "
                            f"{package.get('default_visibility')!r}")
        check_cuda_tags(root, pkg, targets, problems)


def check_cuda_tags(root, pkg, targets, problems):
    for t in targets:
        cuda = t["kind"] == "sc_cuda_library" or "cuda" in t.get("tags", [])
        if cuda:
            continue
        for src in list(t.get("srcs", [])) + list(t.get("hdrs", [])):
            if src.startswith(":") or src.startswith("//"):
                continue
            path = os.path.join(root, pkg, src)
            if not os.path.exists(path) or not src.endswith(SOURCE_SUFFIXES):
                continue
            with open(path, encoding="utf-8", errors="replace") as f:
                for lineno, line in enumerate(f, 1):
                    if CUDA_HEADERS.search(line):
                        problems.append(f"{pkg}/{src}:{lineno}: includes a CUDA/NCCL header but "
                                        f"//{pkg}:{t['name']} is not tagged \"cuda\"")


def check_package_groups(root, problems):
    targets, _ = read_build(os.path.join(root, "BUILD"))
    groups = {t["name"]: t for t in targets if t["kind"] == "package_group"}
    for pkg in LAYERS:
        name = group_name(pkg)
        # Packages with subpackages of their own (tests/gpu, tools/sanitizers) as `//p/...`;
        # client/ is listed alone: //client/... would let client/cli's users include client.
        want = sorted(f"//{p}/..." if p in ("tests", "tools") else f"//{p}" for p in users_of(pkg))
        got = sorted(groups.get(name, {}).get("packages", []))
        if got != want:
            problems.append(f"BUILD: package_group {name} should list {want}, found {got}")


def main(argv):
    root = argv[1] if len(argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    problems = []
    check_includes(root, problems)
    check_build_files(root, problems)
    check_package_groups(root, problems)
    for p in problems:
        print(p)
    if problems:
        print(f"{len(problems)} layering problem(s); the layers are in tools/check_layers.py and "
              f"docs/ARCHITECTURE.md")
        return 1
    print(f"layers ok: {len(DEPS)} layered packages, every include and BUILD label points down")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
