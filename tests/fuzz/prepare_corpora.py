#!/usr/bin/env python3
"""Builds the seed corpora of the fuzz targets (stdlib only; `zstd` CLI optional).

    prepare_corpora.py FIXTURES_DIR METADATA_CORPUS RECORD_CORPUS

METADATA_CORPUS gets
  - the `.metadata` of every checkpoint under FIXTURES_DIR/dcp-multiversion and dcp-torch2.11;
  - hand-made pickles: builtin values at protocols 2-5 (memo, frames, sets, long ints, floats,
    bytes, a self-referential list) and small DCP Metadata documents pickled with protocol 2
    (text GLOBAL opcodes, which the real files, protocols 4-5, do not use) and 4.
RECORD_CORPUS gets
  - every torch.save record cut out of the `.distcp` files: the (offset, length) of each comes
    from the `.metadata` (parsed with tools/dcp_reference/refreader.py); zstd-transformed records
    are decompressed with the `zstd` CLI when it is installed. Where the reference reader fails,
    the file is scanned for `PK\\x03\\x04` ... `PK\\x05\\x06` + 18 bytes (+ comment) instead;
  - hand-made records: big-endian, non-contiguous, broadcast (stride 0), _rebuild_tensor_v3,
    _rebuild_parameter, 0-dim, a non-`archive/` prefix, zip64 extra fields in the central
    directory, an archive comment.
Files are named by the SHA-1 of their content (as libFuzzer does), so reruns do not duplicate.
"""
import hashlib
import io
import os
import pickle
import shutil
import struct
import subprocess
import sys
import types
import zlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, List, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
CHECKPOINT_SETS = ("dcp-multiversion", "dcp-torch2.11")


def save(corpus, blob, counter):
    name = hashlib.sha1(blob).hexdigest()
    path = os.path.join(corpus, name)
    if not os.path.exists(path):
        with open(path, "wb") as f:
            f.write(blob)
        counter[0] += 1


def find_checkpoints(fixtures):
    for top in CHECKPOINT_SETS:
        root = os.path.join(fixtures, top)
        for dirpath, _, files in os.walk(root):
            if ".metadata" in files:
                yield dirpath


def scan_records(blob):
    """Records found by scanning: from a local header to the end of the EOCD that closes it."""
    out, pos = [], 0
    while True:
        start = blob.find(b"PK\x03\x04", pos)
        if start < 0:
            return out
        eocd = blob.find(b"PK\x05\x06", start)
        if eocd < 0 or eocd + 22 > len(blob):
            return out
        comment = struct.unpack("<H", blob[eocd + 20:eocd + 22])[0]
        end = eocd + 22 + comment
        out.append(blob[start:end])
        pos = end


def zstd_decompress(blob):
    if shutil.which("zstd") is None:
        return None
    r = subprocess.run(["zstd", "-dc", "-q"], input=blob, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    return r.stdout if r.returncode == 0 else None


def real_seeds(fixtures, md_corpus, rec_corpus, n_md, n_rec):
    sys.path.insert(0, os.path.join(fixtures, "..", "tools", "dcp_reference"))
    try:
        import refreader  # noqa: E402
    except Exception as e:  # pragma: no cover
        print(f"  (refreader unavailable: {e}; scanning for records)")
        refreader = None
    for ckpt in find_checkpoints(fixtures):
        with open(os.path.join(ckpt, ".metadata"), "rb") as f:
            save(md_corpus, f.read(), n_md)
        items = None
        if refreader is not None:
            try:
                items = list(refreader.parse_metadata(os.path.join(ckpt, ".metadata"))["storage"].values())
            except Exception as e:
                print(f"  {ckpt}: reference reader failed ({e}); scanning for records")
        if items is not None:
            for rel, off, length, transforms in items:
                with open(os.path.join(ckpt, rel), "rb") as f:
                    f.seek(off)
                    blob = f.read(length)
                if transforms:
                    blob = zstd_decompress(blob)
                    if blob is None:
                        continue
                save(rec_corpus, blob, n_rec)
        else:
            for name in sorted(os.listdir(ckpt)):
                if name.endswith(".distcp"):
                    with open(os.path.join(ckpt, name), "rb") as f:
                        for rec in scan_records(f.read()):
                            save(rec_corpus, rec, n_rec)


# ---------------------------------------------------------------------------------------------
# Hand-made seeds. A fake `torch` package makes the stdlib pickler emit the same globals as
# PyTorch does (the pickler only checks that `module.name` resolves to the object it saves).

def fake_module(name):
    mod = sys.modules.get(name)
    if mod is None:
        mod = types.ModuleType(name)
        sys.modules[name] = mod
        parent, _, leaf = name.rpartition(".")
        if parent:
            setattr(fake_module(parent), leaf, mod)
    return mod


def put(module, obj, name=None):
    name = name or obj.__name__
    obj.__module__ = module
    obj.__qualname__ = name
    setattr(fake_module(module), name, obj)
    return obj


class _DType:
    def __init__(self, name):
        self.name = name
        self.__module__ = "torch"

    def __reduce__(self):
        return self.name  # saved as the global torch.<name>


torch = fake_module("torch")
for _d in ("float32", "bfloat16", "float64", "int16", "float8_e4m3fn", "complex128"):
    setattr(torch, _d, _DType(_d))


class Size(tuple):
    def __reduce__(self):
        return (Size, (tuple(self),))


put("torch", Size)
M = "torch.distributed.checkpoint.metadata"


@dataclass
class ChunkStorageMetadata:
    offsets: Any
    sizes: Any


@dataclass
class TensorProperties:
    dtype: Any
    requires_grad: bool = False


@dataclass
class TensorStorageMetadata:
    properties: Any
    size: Any
    chunks: List[Any]


@dataclass
class BytesStorageMetadata:
    pass


@dataclass(frozen=True)
class MetadataIndex:
    fqn: str
    offset: Any = None
    index: Optional[int] = None


@dataclass
class Metadata:
    state_dict_metadata: Any
    planner_data: Any = None
    storage_data: Any = None
    version: Optional[str] = None


@dataclass
class _StorageInfo:
    relative_path: str
    offset: int
    length: int
    transform_descriptors: Any = None


for _c in (ChunkStorageMetadata, TensorProperties, TensorStorageMetadata, BytesStorageMetadata, MetadataIndex,
           Metadata):
    put(M, _c)
put("torch.distributed.checkpoint.filesystem", _StorageInfo)
put("megatron.core.dist_checkpointing.strategies.torch", type("MCoreMetadata", (Metadata,), {}), "MCoreMetadata")


def tensor_md(dtype, shape, chunks):
    return TensorStorageMetadata(TensorProperties(getattr(torch, dtype)), Size(shape),
                                 [ChunkStorageMetadata(Size(o), Size(s)) for o, s in chunks])


def metadata_docs():
    sdm = {
        "w": tensor_md("bfloat16", (8, 4), [((0, 0), (4, 4)), ((4, 0), (4, 4))]),
        "scalar": tensor_md("float64", (), [((), ())]),
        "empty": tensor_md("float32", (0, 3), [((0, 0), (0, 3))]),
        "step": BytesStorageMetadata(),
    }
    sd = {
        MetadataIndex("w", Size((0, 0))): _StorageInfo("__0_0.distcp", 0, 100),
        MetadataIndex("w", Size((4, 0))): _StorageInfo("__1_0.distcp", 0, 100, ["stream.zstd/1"]),
        MetadataIndex("scalar", Size(())): _StorageInfo("__0_0.distcp", 100, 50),
        MetadataIndex("empty", Size((0, 0))): _StorageInfo("sub/__0_0.distcp", 150, 50),
        MetadataIndex("step"): _StorageInfo("__0_0.distcp", 200, 10),
    }
    md = Metadata(sdm, None, sd, "1.0.0")
    mcore = sys.modules["megatron.core.dist_checkpointing.strategies.torch"].MCoreMetadata(
        {"w": sdm["w"]}, None, {k: v for k, v in sd.items() if k.fqn == "w"})
    for proto in (2, 4):
        yield pickle.dumps(md, protocol=proto)
        yield pickle.dumps(mcore, protocol=proto)


def builtin_pickles():
    selfref = []
    selfref.append(selfref)
    shared = ("shared", 1)
    values = [
        None, True, 0, -1, 255, 65535, -2**31, 2**31, -2**63, 2**64 - 1, 2**100, 1.5, float("-inf"), "x" * 300,
        "snowman \u2603", b"\x00\xff" * 40, (), (1,), (1, 2), (1, 2, 3), (1, 2, 3, 4), [1, [2, [3, [4]]]],
        {"a": 1, "b": [shared, shared], "c": {"d": None}}, {1, 2, 3}, frozenset({"x", "y"}), selfref,
        OrderedDict(a=1), [b"x" * 300, "y" * 700],
    ]
    for proto in (2, 3, 4, 5):
        yield pickle.dumps(values, protocol=proto)
        for v in values[:6] + values[-6:]:
            yield pickle.dumps(v, protocol=proto)


# ---- torch.save records ----------------------------------------------------------------------

def _rebuild_tensor_v2(*a):
    raise NotImplementedError


def _rebuild_tensor_v3(*a):
    raise NotImplementedError


def _rebuild_parameter(*a):
    raise NotImplementedError


for _f in (_rebuild_tensor_v2, _rebuild_tensor_v3, _rebuild_parameter):
    put("torch._utils", _f)


class _StorageBase:
    pass


STORAGE = {name: put("torch", type(name, (_StorageBase,), {}))
           for name in ("FloatStorage", "ShortStorage", "DoubleStorage", "ComplexDoubleStorage")}
UntypedStorage = put("torch.storage", type("UntypedStorage", (_StorageBase,), {}))


class Storage:
    def __init__(self, cls, key, numel):
        self.cls, self.key, self.numel = cls, key, numel


class Tensor:
    def __init__(self, storage, offset, size, stride, v3_dtype=None):
        self.args = (storage, offset, tuple(size), tuple(stride), False, OrderedDict())
        if v3_dtype is not None:
            self.args += (getattr(torch, v3_dtype),)  # (..., backward_hooks, dtype)
        self.fn = _rebuild_tensor_v3 if v3_dtype else _rebuild_tensor_v2

    def __reduce_ex__(self, proto):
        return (self.fn, self.args)


class Parameter:
    def __init__(self, t):
        self.t = t

    def __reduce_ex__(self, proto):
        return (_rebuild_parameter, (self.t, True, OrderedDict()))


class _Pickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            return ("storage", obj.cls, obj.key, "cpu", obj.numel)
        return None


def data_pkl(obj):
    buf = io.BytesIO()
    _Pickler(buf, protocol=2).dump(obj)
    return buf.getvalue()


def make_zip(entries, zip64_cd=False, comment=b"", align=64):
    """A STORED ZIP as torch.save writes it: data aligned by an 'FB' extra, zip64 end records."""
    out, cd = bytearray(), bytearray()
    for name, data in entries:
        name = name.encode()
        lho = len(out)
        pad = (-(lho + 30 + len(name) + 4)) % align
        extra = b"FB" + struct.pack("<H", pad) + b"Z" * pad
        crc = zlib.crc32(data)
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 0, 0x0808, 0, 0, 0, 0, len(data), len(data), len(name),
                           len(extra)) + name + extra + data
        size32, lho32, cd_extra = len(data), lho, b""
        if zip64_cd:
            size32, lho32 = 0xFFFFFFFF, 0xFFFFFFFF
            cd_extra = struct.pack("<HHQQQ", 1, 24, len(data), len(data), lho)
        cd += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 0x031E, 0x2D, 0, 0, 0, 0, crc, size32, size32, len(name),
                          len(cd_extra), 0, 0, 0, 0, lho32) + name + cd_extra
    cd_off = len(out)
    out += cd
    z64 = len(out)
    out += struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 0x031E, 0x2D, 0, 0, len(entries), len(entries), len(cd), cd_off)
    out += struct.pack("<IIQI", 0x07064B50, 0, z64, 1)
    out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(entries), len(entries), len(cd), cd_off, len(comment))
    return bytes(out + comment)


def record(obj, payload, key="0", byteorder="little", prefix="archive/", **zip_kw):
    entries = [(prefix + "data.pkl", data_pkl(obj))]
    if byteorder is not None:
        entries.append((prefix + "byteorder", byteorder.encode()))
    entries += [(prefix + "data/" + key, payload), (prefix + "version", b"3\n")]
    return make_zip(entries, **zip_kw)


def records():
    f32 = STORAGE["FloatStorage"]
    yield record(Tensor(Storage(f32, "0", 6), 0, (2, 3), (3, 1)), struct.pack("<6f", *range(6)))
    yield record(Tensor(Storage(STORAGE["ShortStorage"], "0", 6), 0, (3, 2), (1, 3)), struct.pack(">6h", *range(6)),
                 byteorder="big")
    yield record(Tensor(Storage(UntypedStorage, "7", 8), 2, (2, 3), (3, 1), v3_dtype="float8_e4m3fn"),
                 bytes(range(8)), key="7")
    yield record(Parameter(Tensor(Storage(f32, "0", 4), 1, (3,), (1,))), struct.pack("<4f", 1, 2, 3, 4))
    yield record(Tensor(Storage(f32, "0", 1), 0, (4, 1000), (0, 0)), struct.pack("<f", 2.5))
    yield record(Tensor(Storage(STORAGE["DoubleStorage"], "0", 1), 0, (), ()), struct.pack("<d", 3.0), byteorder=None)
    yield record(Tensor(Storage(STORAGE["ComplexDoubleStorage"], "0", 2), 0, (2,), (1,)), bytes(32),
                 prefix="some_name/", zip64_cd=True)
    yield record(Tensor(Storage(f32, "0", 12), 1, (1, 2, 3), (100, 6, 2)), bytes(48), comment=b"hello")
    yield record(Tensor(Storage(f32, "0", 0), 0, (0, 5), (5, 1)), b"")


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    fixtures, md_corpus, rec_corpus = sys.argv[1:]
    os.makedirs(md_corpus, exist_ok=True)
    os.makedirs(rec_corpus, exist_ok=True)
    n_md, n_rec = [0], [0]
    real_seeds(fixtures, md_corpus, rec_corpus, n_md, n_rec)
    print(f"  fixtures: {n_md[0]} new .metadata seeds, {n_rec[0]} new record seeds")
    n_md, n_rec = [0], [0]
    for blob in list(metadata_docs()) + list(builtin_pickles()):
        save(md_corpus, blob, n_md)
    for blob in records():
        save(rec_corpus, blob, n_rec)
    print(f"  hand-made: {n_md[0]} new metadata seeds, {n_rec[0]} new record seeds")


if __name__ == "__main__":
    main()
