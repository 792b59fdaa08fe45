#!/usr/bin/env python3
"""Check synthetic DCP checkpoints (tools/gen_synthetic_dcp.py) against real PyTorch.

Needs PyTorch 2.x (no GPU, no network, no process group). For a checkpoint CKPT and its
ground truth EXPECTED (default CKPT.expected.json) it:

  * reads the metadata with FileSystemReader(CKPT).read_metadata() and checks every key's
    dtype, shape and chunk list against EXPECTED;
  * builds a state dict of empty tensors of the saved dtype/shape (plus a placeholder for
    every bytes entry) and fills it with torch.distributed.checkpoint.load(...,
    storage_reader=FileSystemReader(CKPT)), i.e. PyTorch's own resharding reader;
  * compares the sha256 of every loaded tensor's bytes (C order) with EXPECTED, and the
    loaded bytes entries (io.BytesIO / [io.BytesIO]) with their payload;
  * additionally torch.load()s every tensor blob on its own (weights_only=True) and checks
    that it equals the matching region of the loaded tensor and is a contiguous tensor of the
    chunk's size.

Prints "N passed, M failed" (one check per tensor / bytes entry) and exits 1 on any failure.

  check_synthetic_with_torch.py CKPT [EXPECTED]
  check_synthetic_with_torch.py --generate [--include-vit-h] [--keep DIR]

--generate runs gen_synthetic_dcp.py (next to this file) into a temporary directory for a set
of variants (--preset tiny with --writers 1, 2 and 4, each flat and --stacked, with an LLM
decoy, float32 and float16 variants, 3 layers / 4 writers stacked) and checks them all, so a
single command proves the generator against PyTorch.
"""
import argparse
import ctypes
import hashlib
import inspect
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
GENERATOR = os.path.join(HERE, "gen_synthetic_dcp.py")

VARIANTS = [
    ("tiny_w1", ["--preset", "tiny", "--writers", "1"]),
    ("tiny_w2", ["--preset", "tiny", "--writers", "2"]),
    ("tiny_w4", ["--preset", "tiny", "--writers", "4"]),
    ("tiny_w1_stacked", ["--preset", "tiny", "--writers", "1", "--stacked"]),
    ("tiny_w2_stacked", ["--preset", "tiny", "--writers", "2", "--stacked"]),
    ("tiny_w4_stacked", ["--preset", "tiny", "--writers", "4", "--stacked"]),
    ("tiny_w2_decoy", ["--preset", "tiny", "--writers", "2", "--with-llm-decoy", "2"]),
    ("tiny_w4_stacked_decoy_L3", ["--preset", "tiny", "--writers", "4", "--stacked", "--layers", "3",
                                  "--with-llm-decoy", "1", "--seed", "7"]),
    ("tiny_w2_float32", ["--preset", "tiny", "--writers", "2", "--dtype", "float32"]),
    ("tiny_w2_float16_stacked", ["--preset", "tiny", "--writers", "2", "--dtype", "float16", "--stacked"]),
]
VIT_H_VARIANT = ("vit_h_w2", ["--preset", "vit-h", "--writers", "2"])


def tensor_sha256(t):
    """sha256 of a tensor's elements in C order (native = little-endian byte order)."""
    import torch
    c = t.detach().to("cpu").contiguous()
    n = c.numel() * c.element_size()
    h = hashlib.sha256()
    if n:
        if c.dtype == torch.bool:
            c = c.view(torch.uint8)
        buf = (ctypes.c_ubyte * n).from_address(c.data_ptr())
        h.update(memoryview(buf))
    return h.hexdigest()


def dtype_name(dt):
    return str(dt).replace("torch.", "")


def dcp_load(state_dict, ckpt):
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint import FileSystemReader

    reader = FileSystemReader(ckpt)
    load = getattr(dcp, "load", None)
    if load is not None:
        params = inspect.signature(load).parameters
        if "no_dist" in params:                       # torch 2.2: no_dist had to be explicit
            load(state_dict, storage_reader=reader, no_dist=True)
        else:
            load(state_dict, storage_reader=reader)
    else:                                             # torch 2.0 / 2.1
        dcp.load_state_dict(state_dict, storage_reader=reader, no_dist=True)


def check_checkpoint(ckpt, expected_path, verbose=False):
    import torch
    from torch.distributed.checkpoint import FileSystemReader
    from torch.distributed.checkpoint.metadata import BytesStorageMetadata, TensorStorageMetadata

    t0 = time.time()
    with open(expected_path) as f:
        ex = json.load(f)
    failures = []
    global_failures = [0]                             # failures not tied to one .metadata key
    passed = 0

    def fail(key, msg, global_=False):
        failures.append((key, msg))
        global_failures[0] += global_
        print(f"  FAIL {key}: {msg}")
        return False

    md = FileSystemReader(ckpt).read_metadata()
    sdm = md.state_dict_metadata
    exp_t = ex["tensors"]
    exp_b = set(ex.get("bytes_entries", []))
    for key in sorted(set(sdm) - set(exp_t) - exp_b):
        fail(key, "in .metadata but not in expected.json")
    for key in sorted((set(exp_t) | exp_b) - set(sdm)):
        fail(key, "in expected.json but not in .metadata", global_=True)

    # ---- metadata-level checks and the state dict to load into
    state_dict = {}
    meta_ok = {}
    for key, m in sdm.items():
        if isinstance(m, BytesStorageMetadata):
            state_dict[key] = io.BytesIO()
            meta_ok[key] = key in exp_b or fail(key, "bytes entry not expected")
            continue
        if not isinstance(m, TensorStorageMetadata):
            fail(key, f"unexpected metadata type {type(m).__name__}")
            continue
        e = exp_t.get(key)
        dtype = m.properties.dtype
        state_dict[key] = torch.empty(tuple(m.size), dtype=dtype)
        if e is None:
            meta_ok[key] = False
            continue
        ok = True
        if dtype_name(dtype) != e["dtype"]:
            fail(key, f"dtype {dtype_name(dtype)} != expected {e['dtype']}")
            ok = False
        if list(m.size) != e["shape"]:
            fail(key, f"shape {list(m.size)} != expected {e['shape']}")
            ok = False
        got_chunks = [(list(c.offsets), list(c.sizes)) for c in m.chunks]
        exp_chunks = [(c["offsets"], c["sizes"]) for c in e["chunks"]]
        if got_chunks != exp_chunks:
            fail(key, f"chunks {got_chunks} != expected {exp_chunks}")
            ok = False
        meta_ok[key] = ok
    if getattr(md, "planner_data", None) is not None:
        bad = [k for k, v in md.planner_data.items() if tuple(v) != (k,)]
        if bad or set(md.planner_data) != set(sdm):
            fail("<planner_data>", f"not {{key: (key,)}} for all keys (e.g. {bad[:3]})", global_=True)
    if getattr(md, "version", "1.0.0") != "1.0.0":
        fail("<version>", f"version {md.version!r}", global_=True)

    # ---- the real thing: dcp.load into empty tensors
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dcp_load(state_dict, ckpt)

    for key, m in sdm.items():
        if isinstance(m, BytesStorageMetadata):
            info = ex.get("bytes", {}).get(key)
            obj = state_dict[key]
            if info is None:
                ok = meta_ok.get(key, False)
            else:
                payload = bytes.fromhex(info["payload_hex"])
                if info["python_type"].startswith("list"):
                    good = isinstance(obj, list) and len(obj) == 1 and isinstance(obj[0], io.BytesIO) \
                        and obj[0].getvalue() == payload
                else:
                    good = isinstance(obj, io.BytesIO) and obj.getvalue() == payload
                if not good:
                    fail(key, f"loaded bytes entry {obj!r} != expected {info['python_type']} "
                              f"of {payload!r}")
                ok = good and meta_ok.get(key, False)
            passed += ok
            continue
        e = exp_t.get(key)
        if e is None:
            continue
        t = state_dict[key]
        ok = meta_ok.get(key, False)
        sha = tensor_sha256(t)
        if sha != e["sha256"]:
            fail(key, f"sha256 {sha} != expected {e['sha256']}")
            ok = False
        if t.dtype.is_floating_point and not bool(torch.isfinite(t.float()).all()):
            fail(key, "contains inf/nan")
            ok = False
        # every blob alone, through torch.load(weights_only=True)
        for c in e["chunks"]:
            with open(os.path.join(ckpt, c["file"]), "rb") as f:
                f.seek(c["offset"])
                blob = f.read(c["length"])
            try:
                try:
                    chunk = torch.load(io.BytesIO(blob), weights_only=True)
                except TypeError:                     # very old torch without weights_only
                    chunk = torch.load(io.BytesIO(blob))
            except Exception as exc:                  # noqa: BLE001
                fail(key, f"torch.load of blob {c['file']}@{c['offset']} failed: {exc}")
                ok = False
                continue
            region = t[tuple(slice(o, o + s) for o, s in zip(c["offsets"], c["sizes"]))]
            if list(chunk.shape) != c["sizes"] or chunk.dtype != t.dtype or not chunk.is_contiguous():
                fail(key, f"blob {c['file']}@{c['offset']}: {chunk.dtype} {list(chunk.shape)} "
                          f"stride {chunk.stride()} (expected contiguous {c['sizes']})")
                ok = False
            elif tensor_sha256(chunk) != tensor_sha256(region):
                fail(key, f"blob {c['file']}@{c['offset']} differs from the loaded region")
                ok = False
        if ok and verbose:
            print(f"  ok   {key} {e['dtype']} {e['shape']} ({len(e['chunks'])} chunks)")
        passed += ok
    n_failed = len(sdm) - passed + global_failures[0]
    print(f"{ckpt}: {passed} passed, {n_failed} failed ({len(exp_t)} tensors, {len(exp_b)} bytes "
          f"entries; torch {torch.__version__}; {time.time() - t0:.1f} s)")
    return passed, n_failed


def generate_variants(workdir, include_vit_h):
    out = []
    variants = VARIANTS + ([VIT_H_VARIANT] if include_vit_h else [])
    for name, args in variants:
        ckpt = os.path.join(workdir, name)
        cmd = [sys.executable, GENERATOR, ckpt] + args
        print("$", " ".join(cmd[1:]))
        subprocess.run(cmd, check=True)
        out.append((ckpt, ckpt + ".expected.json"))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 epilog=__doc__.split("\n\n", 1)[1],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("ckpt", nargs="?", help="checkpoint directory")
    ap.add_argument("expected", nargs="?", help="expected.json (default CKPT.expected.json)")
    ap.add_argument("--generate", action="store_true",
                    help="generate the standard variants with gen_synthetic_dcp.py first and check them")
    ap.add_argument("--include-vit-h", action="store_true",
                    help="with --generate: also the 1.26 GB --preset vit-h checkpoint")
    ap.add_argument("--keep", metavar="DIR", help="with --generate: write into DIR and keep it")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every passing tensor")
    a = ap.parse_args()
    if not a.generate and not a.ckpt:
        ap.error("give CKPT or --generate")

    try:
        import torch  # noqa: F401
    except ImportError:
        print("check_synthetic_with_torch.py needs PyTorch (import torch failed)", file=sys.stderr)
        return 2

    targets = []
    tmp = None
    if a.ckpt:
        ckpt = os.path.abspath(a.ckpt.rstrip("/"))
        targets.append((ckpt, a.expected or ckpt + ".expected.json"))
    if a.generate:
        if a.keep:
            os.makedirs(a.keep, exist_ok=True)
            workdir = a.keep
        else:
            tmp = workdir = tempfile.mkdtemp(prefix="synthetic_dcp_")
        try:
            targets += generate_variants(workdir, a.include_vit_h)
        except subprocess.CalledProcessError as exc:
            print(f"generator failed: {exc}")
            if tmp:
                shutil.rmtree(tmp, ignore_errors=True)
            return 1
    total_pass = total_fail = 0
    try:
        for ckpt, expected in targets:
            try:
                p, f = check_checkpoint(ckpt, expected, verbose=a.verbose)
            except Exception as exc:                  # noqa: BLE001
                import traceback
                traceback.print_exc()
                print(f"{ckpt}: 0 passed, 1 failed (exception: {exc})")
                p, f = 0, 1
            total_pass += p
            total_fail += f
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    if len(targets) > 1:
        print(f"TOTAL: {total_pass} passed, {total_fail} failed over {len(targets)} checkpoints")
    return 1 if total_fail else 0


if __name__ == "__main__":
    sys.exit(main())
