#!/usr/bin/env python3
"""Generate a synthetic PyTorch Distributed Checkpoint (DCP) without PyTorch.

The output mirrors, byte for byte where practical, what PyTorch 2.11 on
CPython 3.12 writes with `torch.distributed.checkpoint.save` through
`FileSystemWriter(single_file_per_rank=True, thread_count=1)` from W ranks:

  OUT/.metadata          pickle protocol 4 of torch.distributed.checkpoint
                         .metadata.Metadata (TensorStorageMetadata,
                         TensorProperties, ChunkStorageMetadata,
                         BytesStorageMetadata, MetadataIndex, StorageMeta,
                         filesystem._StorageInfo, torch.Size, torch.<dtype>,
                         torch.serialization._get_layout, pathlib.PosixPath),
                         planner_data {key: (key,)}, version "1.0.0".
  OUT/__{r}_0.distcp     for every writer rank r: the rank's items back to
                         back, bytes items first, then tensor chunks (stable
                         sort by the size of their whole tensor, as 2.11
                         does); every item is a complete torch.save ZIP
                         ("archive/data.pkl" protocol 2 with _rebuild_tensor_v2
                         and a legacy typed storage, .format_version,
                         .storage_alignment, byteorder, data/0, version,
                         .data/serialization_id; 64-byte aligned data through
                         "FB" extra padding, data descriptors, central
                         directory, zip64 end record + locator + end record).
  OUT.expected.json      ground truth NEXT TO the checkpoint directory (never
                         inside it): per tensor dtype, shape, sha256 of the
                         full tensor (C order, little endian) and its chunks
                         (offsets, sizes, file, blob offset/length, offset of
                         the raw data in the file); plus the bytes entries.

The model is a Megatron-style vision encoder under `model.vision_model.`:
embedder.{weight,bias}, position_embeddings, class_token, per layer i
decoder.layers.{i}.self_attention.linear_qkv.{layer_norm_weight,
layer_norm_bias,weight,bias}, .linear_proj.{weight,bias},
mlp.linear_fc1.{layer_norm_weight,layer_norm_bias,weight,bias},
mlp.linear_fc2.{weight,bias}, decoder.final_layernorm.{weight,bias} (float32),
input_conditioner.norm_mean (float32, 3x1x1) / norm_std (float16, 3x1x1),
summary_idxs (0-dim int64), and one bytes item (BytesStorageMetadata)
decoder.layers.0.self_attention.linear_qkv._extra_state (a torch.save of an
io.BytesIO, as Transformer Engine extra state is).

Sharding over --writers W (tensor parallel, Megatron conventions):
  column parallel  linear_qkv / linear_fc1 weight and bias: W chunks on dim 0
  row parallel     linear_proj / linear_fc2 weight: W chunks on dim 1
  everything else  stored once, by the writer PyTorch's dedup_save_plans
                   (smallest planned size) would pick.
With --stacked the per-layer parameters use Megatron torch_dist stacked keys
`model.vision_model.decoder.layers.<param>` of shape (L, ...): one chunk of
size (1, ...) per layer and tensor-parallel part; the bytes item is then
`...linear_qkv._extra_state/shard_0_L` holding a one-element list.

Values: deterministic from --seed; every tensor (and, with --stacked, every
layer slice) has its own random stream named after the per-layer key, so the
same seed gives the same tensors for any --writers and with or without
--stacked (a stacked tensor's layer i equals the per-layer tensor i).
Floating point values are finite and normal: |x| in [2^-15, 2) (float16:
[2^-7, 2)).

Fidelity: with equal tensor values, save_id and checkpoint path, the files are
byte-identical to what torch 2.11 (CPython 3.12) writes for the same state dict
of DTensors (Shard(0) / Shard(1) / Replicate over a 1-D mesh of W ranks): this
was checked for W = 1, 2 and 4, against the shared fixtures and against fresh
torch saves. What differs from a real save: save_id is a UUID4 derived from
--seed, and .data/serialization_id follows from the data as torch computes it.
--stacked follows Megatron's layout (chunks of (1, ...) per layer) but was not
compared with a Megatron-written file.

Examples:
  gen_synthetic_dcp.py /tmp/ck_tiny --preset tiny
  gen_synthetic_dcp.py /tmp/ck_vith --preset vit-h --writers 2
  gen_synthetic_dcp.py /tmp/ck_st --preset tiny --writers 4 --stacked \\
      --with-llm-decoy 1

Only the Python standard library is used; tensors are streamed to the files
one at a time (peak memory is about two copies of the largest tensor).
"""
import argparse
import hashlib
import json
import math
import os
import pickle
import random
import struct
import sys
import time
import types
import uuid
import zlib
from pathlib import PurePosixPath

GENERATOR_VERSION = 1

# --------------------------------------------------------------------------------------------
# dtypes
# --------------------------------------------------------------------------------------------

# High byte of a little-endian element holds sign + top exponent bits. The translate tables
# force a normal, finite exponent: bf16/f32 exponent in [112, 127] (|x| in [2^-15, 2)),
# f16 exponent in [8, 15] (|x| in [2^-7, 2)).
_BF16_F32_HI = bytes(((x & 0x87) | 0x38) for x in range(256))
_F16_HI = bytes(((x & 0x9F) | 0x20) for x in range(256))

DTYPES = {
    # name: (itemsize, legacy storage class used by torch.save, index of high byte, table)
    "bfloat16": (2, "BFloat16Storage", 1, _BF16_F32_HI),
    "float16": (2, "HalfStorage", 1, _F16_HI),
    "float32": (4, "FloatStorage", 3, _BF16_F32_HI),
    "int64": (8, "LongStorage", None, None),
}


def itemsize(dtype):
    return DTYPES[dtype][0]


def prod(shape):
    p = 1
    for s in shape:
        p *= s
    return p


def contiguous_strides(shape):
    strides, acc = [], 1
    for s in reversed(shape):
        strides.append(acc)
        acc *= s
    return tuple(reversed(strides))


def gen_values(seed, name, dtype, numel):
    """Deterministic tensor bytes (C order, little endian) for the logical tensor `name`."""
    rng = random.Random(f"shardcast-synthetic/{seed}/{name}")
    if dtype == "int64":
        return bytearray(b"".join(rng.randrange(0, 1 << 20).to_bytes(8, "little") for _ in range(numel)))
    size, _, hi, table = DTYPES[dtype]
    n = numel * size
    piece = 64 << 20                           # Random.randbytes needs n * 8 < 2**31
    buf = bytearray(rng.randbytes(min(n, piece)))
    while len(buf) < n:
        buf += rng.randbytes(min(n - len(buf), piece))
    buf[hi::size] = buf[hi::size].translate(table)
    return buf


# --------------------------------------------------------------------------------------------
# torch.save ZIP container (caffe2::serialize::PyTorchStreamWriter / miniz, PyTorch 2.7+)
# --------------------------------------------------------------------------------------------

ALIGN = 64
ARCHIVE_PREFIX = "archive/"
_U64 = (1 << 64) - 1


def _std_hash(data):
    """libstdc++ std::hash<std::string> (64-bit _Hash_bytes, seed 0xc70f6907)."""
    mul = (0xC6A4A793 << 32) + 0x5BD1E995
    n = len(data)
    aligned = n & ~7
    h = (0xC70F6907 ^ (n * mul)) & _U64

    def shift_mix(v):
        return v ^ (v >> 47)

    for i in range(0, aligned, 8):
        d = (shift_mix((int.from_bytes(data[i:i + 8], "little") * mul) & _U64) * mul) & _U64
        h = ((h ^ d) * mul) & _U64
    if n & 7:
        h = ((h ^ int.from_bytes(data[aligned:], "little")) * mul) & _U64
    h = (shift_mix(h) * mul) & _U64
    return shift_mix(h)


def _hash_combine(seed, value):
    """c10::hash_combine on 64-bit size_t."""
    return (seed ^ ((value + 0x9E3779B9 + ((seed << 6) & _U64) + (seed >> 2)) & _U64)) & _U64


def serialization_id(names, crcs):
    """`.data/serialization_id` as PyTorchStreamWriter computes it: 20 digits of the combined
    hash of the record names (iterated from an unordered_set, which for these small sets is
    the reverse insertion order) + 20 digits of the combined CRC32 of the records' data."""
    name_hash = 0
    for name in reversed(names):
        name_hash = _hash_combine(name_hash, _std_hash(name.encode()))
    crc_hash = 0
    for c in crcs:
        crc_hash = _hash_combine(crc_hash, c)
    return f"{name_hash:020d}{crc_hash:020d}".encode()


SERIALIZATION_ID_NAME = ".data/serialization_id"
SERIALIZATION_ID_LEN = 40


def _zip_entry_layout(pos, name_len):
    """(extra_len, data_start) of an entry whose local header starts at `pos` (< 4 GiB)."""
    start = pos + 30 + name_len + 4
    pad = (-start) % ALIGN
    return 4 + pad, start + pad


def zip_length(records):
    """Length of the torch.save ZIP for records [(name, size)] (serialization id included)."""
    pos = 0
    names = [n for n, _ in records] + [SERIALIZATION_ID_NAME]
    sizes = [s for _, s in records] + [SERIALIZATION_ID_LEN]
    cd = 0
    for name, size in zip(names, sizes):
        fname_len = len(ARCHIVE_PREFIX + name)
        _, data_start = _zip_entry_layout(pos, fname_len)
        pos = data_start + size + 16
        cd += 46 + fname_len
    return pos + cd + 56 + 20 + 22


def zip_parts(records):
    """torch.save ZIP for records [(name, bytes-like)] as a list of buffers (no big copies).
    Every size and offset must stay below 4 GiB (the generator never writes bigger chunks)."""
    parts, central = [], []
    pos = 0
    names, crcs = [], []
    records = list(records)
    for idx in range(len(records) + 1):
        if idx < len(records):
            name, data = records[idx]
            crc = zlib.crc32(data)
            names.append(name)
            crcs.append(crc)
        else:
            name, data = SERIALIZATION_ID_NAME, serialization_id(names, crcs)
            crc = zlib.crc32(data)
        size = len(data)
        if size >= 0xFFFFFFFF or pos >= 0xFFFFFFFF:
            raise ValueError("ZIP entries >= 4 GiB are not supported by this generator")
        fname = (ARCHIVE_PREFIX + name).encode()
        extra_len, data_start = _zip_entry_layout(pos, len(fname))
        pad = extra_len - 4
        header = struct.pack("<IHHHHHIIIHH", 0x04034B50, 0, 0x0808, 0, 0, 0, 0, 0, 0, len(fname), extra_len)
        parts.append(header + fname + b"FB" + struct.pack("<H", pad) + b"Z" * pad)
        parts.append(data)
        parts.append(struct.pack("<IIII", 0x08074B50, crc, size, size))
        central.append(struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 0, 0, 0x0808, 0, 0, 0, crc, size, size,
                                   len(fname), 0, 0, 0, 0, 0, pos) + fname)
        pos = data_start + size + 16
    cd_offset = pos
    cd = b"".join(central)
    n = len(central)
    zip64_eocd_offset = cd_offset + len(cd)
    tail = (struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 0x031E, 45, 0, 0, n, n, len(cd), cd_offset)
            + struct.pack("<IIQI", 0x07064B50, 0, zip64_eocd_offset, 1)
            + struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, n, n, len(cd), cd_offset, 0))
    parts.append(cd + tail)
    return parts


def tensor_records(pkl, data):
    return [("data.pkl", pkl), (".format_version", b"1"), (".storage_alignment", b"64"),
            ("byteorder", b"little"), ("data/0", data), ("version", b"3\n")]


def bytes_records(pkl):
    return [("data.pkl", pkl), (".format_version", b"1"), (".storage_alignment", b"64"),
            ("byteorder", b"little"), ("version", b"3\n")]


# --------------------------------------------------------------------------------------------
# data.pkl (pickle protocol 2, as torch.save writes it)
# --------------------------------------------------------------------------------------------

class _Proto2:
    def __init__(self):
        self.b = bytearray(b"\x80\x02")
        self.memo = 0

    def put(self):
        self.b += (b"q" + bytes([self.memo])) if self.memo < 256 else (b"r" + struct.pack("<I", self.memo))
        self.memo += 1

    def glob(self, module, name):
        self.b += b"c" + f"{module}\n{name}\n".encode()
        self.put()

    def str(self, s):
        e = s.encode("utf-8", "surrogatepass")
        self.b += b"X" + struct.pack("<I", len(e)) + e
        self.put()

    def int(self, v):
        if 0 <= v < 256:
            self.b += b"K" + bytes([v])
        elif 0 <= v < 65536:
            self.b += b"M" + struct.pack("<H", v)
        elif -(1 << 31) <= v < (1 << 31):
            self.b += b"J" + struct.pack("<i", v)
        else:
            n = (v.bit_length() >> 3) + 1
            enc = v.to_bytes(n, "little", signed=True)
            if v < 0 and n > 1 and enc[-1] == 0xFF and (enc[-2] & 0x80):
                enc = enc[:-1]
            self.b += b"\x8a" + bytes([len(enc)]) + enc

    def tuple(self, vals):
        if not vals:
            self.b += b")"
            return
        if len(vals) <= 3:
            for v in vals:
                self.int(v)
            self.b += {1: b"\x85", 2: b"\x86", 3: b"\x87"}[len(vals)]
        else:
            self.b += b"("
            for v in vals:
                self.int(v)
            self.b += b"t"
        self.put()


def tensor_pkl(dtype, sizes):
    """data.pkl of torch.save(<contiguous CPU tensor of `sizes`>)."""
    p = _Proto2()
    p.glob("torch._utils", "_rebuild_tensor_v2")
    p.b += b"(("
    p.str("storage")
    p.glob("torch", DTYPES[dtype][1])
    p.str("0")
    p.str("cpu")
    p.int(prod(sizes))
    p.b += b"t"
    p.put()
    p.b += b"Q"
    p.int(0)                                   # storage_offset
    p.tuple(tuple(sizes))
    p.tuple(contiguous_strides(sizes))
    p.b += b"\x89"                             # requires_grad False
    p.glob("collections", "OrderedDict")
    p.b += b")R"
    p.put()
    p.b += b"t"
    p.put()
    p.b += b"R"
    p.put()
    p.b += b"."
    return bytes(p.b)


def bytesio_pkl(payload, as_list):
    """data.pkl of torch.save(io.BytesIO(payload)) (or of [io.BytesIO(payload)])."""
    p = _Proto2()
    if as_list:
        p.b += b"]"
        p.put()
    p.glob("_io", "BytesIO")
    p.b += b")\x81"
    p.put()
    p.glob("_codecs", "encode")
    p.str(payload.decode("latin1"))
    p.str("latin1")
    p.b += b"\x86"
    p.put()
    p.b += b"R"
    p.put()
    p.int(0)                                   # stream position
    p.b += b"}"
    p.put()
    p.b += b"\x87"
    p.put()
    p.b += b"b"
    if as_list:
        p.b += b"a"
    p.b += b"."
    return bytes(p.b)


# --------------------------------------------------------------------------------------------
# .metadata: stand-ins for the torch classes, pickled by the C pickler (protocol 4) while fake
# modules are registered under the torch module names.
# --------------------------------------------------------------------------------------------

def _fresh(s):
    """An equal but distinct str object (the pickle memo works on object identity)."""
    return s.encode("utf-8").decode("utf-8")


_MD_MOD = "torch.distributed.checkpoint.metadata"
_FS_MOD = "torch.distributed.checkpoint.filesystem"
_SIZE_MOD = _fresh("torch")       # torch.Size.__module__
_DTYPE_MOD = _fresh("torch")      # module name pickle finds for dtypes (a distinct object)


class Metadata:
    __module__ = _MD_MOD
    __qualname__ = "Metadata"


class TensorStorageMetadata:
    __module__ = _MD_MOD
    __qualname__ = "TensorStorageMetadata"


class ChunkStorageMetadata:
    __module__ = _MD_MOD
    __qualname__ = "ChunkStorageMetadata"


class BytesStorageMetadata:
    __module__ = _MD_MOD
    __qualname__ = "BytesStorageMetadata"


class MetadataIndex:
    __module__ = _MD_MOD
    __qualname__ = "MetadataIndex"


class StorageMeta:
    __module__ = _MD_MOD
    __qualname__ = "StorageMeta"


class TensorProperties:
    __module__ = _MD_MOD
    __qualname__ = "TensorProperties"

    def __init__(self, dtype):
        self.dtype = dtype

    def __getstate__(self):
        # (dtype, layout, requires_grad, memory_format, pin_memory)
        return (self.dtype, STRIDED, False, TORCH_CONTIGUOUS_FORMAT, False)


class _MEM_FORMAT_ENCODING:
    __module__ = _MD_MOD
    __qualname__ = "_MEM_FORMAT_ENCODING"

    def __init__(self, value):
        self.value = value

    def __reduce__(self):                      # Enum pickling on CPython 3.12: Cls(value)
        return (_MEM_FORMAT_ENCODING, (self.value,))


TORCH_CONTIGUOUS_FORMAT = _MEM_FORMAT_ENCODING(0)


class _StorageInfo:
    __module__ = _FS_MOD
    __qualname__ = "_StorageInfo"


class Size(tuple):
    __module__ = _SIZE_MOD
    __qualname__ = "Size"

    def __reduce__(self):
        return (Size, (tuple(self),))


class _DType:
    def __init__(self, name):
        self.__module__ = _DTYPE_MOD
        self.name = name

    def __reduce__(self):
        return self.name


def _get_layout(name):
    raise NotImplementedError


_get_layout.__module__ = "torch.serialization"
_get_layout.__qualname__ = "_get_layout"


class _Layout:
    def __reduce__(self):
        return (_get_layout, ("torch.strided",))


STRIDED = _Layout()


class PosixPath:
    __module__ = "pathlib"
    __qualname__ = "PosixPath"

    def __init__(self, parts):
        self.parts = tuple(parts)

    def __reduce__(self):                      # CPython <= 3.12: PosixPath(*parts)
        return (PosixPath, self.parts)


TORCH_DTYPES = {name: _DType(name) for name in DTYPES}


def _new(cls, **attrs):
    obj = cls.__new__(cls)
    for k, v in attrs.items():                 # attribute order = pickled dict order
        setattr(obj, k, v)
    return obj


class _FakeModules:
    """Registers the stand-in classes under torch's module names while pickling."""

    def __enter__(self):
        mods = {
            "torch": dict(Size=Size, **TORCH_DTYPES),
            "torch.distributed": {},
            "torch.distributed.checkpoint": {},
            _MD_MOD: dict(Metadata=Metadata, TensorStorageMetadata=TensorStorageMetadata,
                          ChunkStorageMetadata=ChunkStorageMetadata,
                          BytesStorageMetadata=BytesStorageMetadata, MetadataIndex=MetadataIndex,
                          StorageMeta=StorageMeta, TensorProperties=TensorProperties,
                          _MEM_FORMAT_ENCODING=_MEM_FORMAT_ENCODING),
            _FS_MOD: dict(_StorageInfo=_StorageInfo),
            "torch.serialization": dict(_get_layout=_get_layout),
            "pathlib": dict(PosixPath=PosixPath),
        }
        self.saved = {name: sys.modules.get(name) for name in mods}
        for name, attrs in mods.items():
            m = types.ModuleType(name)
            for k, v in attrs.items():
                setattr(m, k, v)
            sys.modules[name] = m
        return self

    def __exit__(self, *exc):
        for name, old in self.saved.items():
            if old is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = old
        return False


def dumps_metadata(md):
    with _FakeModules():
        return pickle.dumps(md, protocol=4)


# --------------------------------------------------------------------------------------------
# Model description
# --------------------------------------------------------------------------------------------

class TensorSpec:
    """A logical tensor of the state dict.

    rule: 'col' (W chunks on dim 0), 'row' (W chunks on dim 1), 'rep' (stored once), or 'glu'
    (a gated fc1 [gate; up] as Megatron's apply_swiglu_sharded_factory saves it: 2W chunks on dim
    0, writer r holding parts r and W + r).
    stacked: the global shape has a leading layer axis; chunks are per layer (size 1 on it),
    layer i's values are those of the per-layer tensor named layer_names[i]."""

    def __init__(self, fqn, dtype, shape, rule, stacked=False, layer_names=None, block=None,
                 group="vision", value_name=None):
        self.fqn, self.dtype, self.shape, self.rule = fqn, dtype, tuple(shape), rule
        self.stacked, self.layer_names, self.block, self.group = stacked, layer_names, block, group
        self.value_name = value_name or fqn

    @property
    def nbytes(self):
        return prod(self.shape) * itemsize(self.dtype)


class BytesSpec:
    def __init__(self, fqn, payload, as_list=False, group="vision"):
        self.fqn, self.payload, self.as_list, self.group = fqn, payload, as_list, group


PRESETS = {
    # layers, hidden, ffn, heads, patch, image, dtype
    "vit-h": dict(layers=32, hidden=1280, ffn=5120, heads=16, patch=14, image=224, dtype="bfloat16"),
    "tiny": dict(layers=2, hidden=64, ffn=256, heads=4, patch=8, image=32, dtype="bfloat16"),
}

LAYER_PARAMS = [
    # (name, shape(H, F), rule)
    ("self_attention.linear_qkv.layer_norm_weight", lambda H, F: (H,), "rep"),
    ("self_attention.linear_qkv.layer_norm_bias", lambda H, F: (H,), "rep"),
    ("self_attention.linear_qkv.weight", lambda H, F: (3 * H, H), "col"),
    ("self_attention.linear_qkv.bias", lambda H, F: (3 * H,), "col"),
    ("self_attention.linear_proj.weight", lambda H, F: (H, H), "row"),
    ("self_attention.linear_proj.bias", lambda H, F: (H,), "rep"),
    ("mlp.linear_fc1.layer_norm_weight", lambda H, F: (H,), "rep"),
    ("mlp.linear_fc1.layer_norm_bias", lambda H, F: (H,), "rep"),
    ("mlp.linear_fc1.weight", lambda H, F: (F, H), "col"),
    ("mlp.linear_fc1.bias", lambda H, F: (F,), "col"),
    ("mlp.linear_fc2.weight", lambda H, F: (H, F), "row"),
    ("mlp.linear_fc2.bias", lambda H, F: (H,), "rep"),
]

EXTRA_STATE_PAYLOAD = b"fp8-extra-state-placeholder"


def layered_specs(prefix, params, layers, H, F, dtype, stacked, block, group):
    specs = []
    if stacked:
        for name, shp, rule in params:
            specs.append(TensorSpec(f"{prefix}decoder.layers.{name}", dtype, (layers,) + shp(H, F), rule,
                                    stacked=True, block=block, group=group,
                                    layer_names=[f"{prefix}decoder.layers.{i}.{name}" for i in range(layers)]))
    else:
        for i in range(layers):
            for name, shp, rule in params:
                specs.append(TensorSpec(f"{prefix}decoder.layers.{i}.{name}", dtype, shp(H, F), rule, group=group))
    return specs


def decoy_specs(size_mb, H, W, dtype, stacked, ffn, glu=False):
    """model.language_model.* tensors totalling about size_mb MiB."""
    es = itemsize(dtype)
    budget = int(size_mb * (1 << 20))
    if budget <= 0:
        return []
    p = "model.language_model."
    q = 64 * W // math.gcd(64, W)             # lcm(64, W): same shapes for every power-of-2 W <= 64
    cap = 512 << 20                                   # keep every tensor (and chunk) far below 4 GiB
    vocab = max(q, (budget // 8) // (H * es) // q * q)
    vocab = min(vocab, max(q, cap // (H * es) // q * q))
    specs = [TensorSpec(p + "embedding.word_embeddings.weight", dtype, (vocab, H), "col", group="decoy")]
    rest = budget - vocab * H * es
    per_layer_unit = 3 * H * es                       # fc1 (2f, H) + fc2 (H, f) per unit of f
    f_full = max(q, ffn // q * q)
    n_layers = min(32, max(1, round(rest / (per_layer_unit * f_full))))
    while True:
        f = max(q, (rest // (per_layer_unit * n_layers)) // q * q)
        if 2 * f * H * es <= cap:
            break
        n_layers *= 2
    params = [("mlp.linear_fc1.weight", lambda H_, F_: (2 * F_, H_), "glu" if glu else "col"),
              ("mlp.linear_fc2.weight", lambda H_, F_: (H_, F_), "row")]
    specs += layered_specs(p, params, n_layers, H, f, dtype, stacked, block="decoy", group="decoy")
    return specs


def build_model(a):
    H, F, L, W = a.hidden, a.ffn, a.layers, a.writers
    dt = a.dtype
    v = "model.vision_model."
    specs = [
        TensorSpec(v + "embedder.weight", dt, (H, 3 * a.patch * a.patch), "rep"),
        TensorSpec(v + "embedder.bias", dt, (H,), "rep"),
        TensorSpec(v + "position_embeddings", dt, (1, (a.image // a.patch) ** 2 + 1, H), "rep"),
        TensorSpec(v + "class_token", dt, (1, 1, H), "rep"),
    ]
    specs += layered_specs(v, LAYER_PARAMS, L, H, F, dt, a.stacked, block="vision", group="vision")
    specs += [
        TensorSpec(v + "decoder.final_layernorm.weight", "float32", (H,), "rep"),
        TensorSpec(v + "decoder.final_layernorm.bias", "float32", (H,), "rep"),
        TensorSpec(v + "input_conditioner.norm_mean", "float32", (3, 1, 1), "rep"),
        TensorSpec(v + "input_conditioner.norm_std", "float16", (3, 1, 1), "rep"),
        TensorSpec(v + "summary_idxs", "int64", (), "rep"),
    ]
    if a.with_llm_decoy:
        specs += decoy_specs(a.with_llm_decoy, H, W, dt, a.stacked, F, a.glu_decoy)
    if a.stacked:
        extra = BytesSpec(f"{v}decoder.layers.self_attention.linear_qkv._extra_state/shard_0_{L}",
                          EXTRA_STATE_PAYLOAD, as_list=True)
    else:
        extra = BytesSpec(f"{v}decoder.layers.0.self_attention.linear_qkv._extra_state", EXTRA_STATE_PAYLOAD)
    return specs + [extra]


# --------------------------------------------------------------------------------------------
# Planning: chunks, dedup (torch.distributed.checkpoint._dedup_save_plans), file layout
# --------------------------------------------------------------------------------------------

class Item:
    """One write item (tensor chunk or bytes entry) = one blob in a .distcp file."""

    def __init__(self, spec, offsets=None, sizes=None, candidates=(), layer=None, part=None):
        self.spec, self.offsets, self.sizes = spec, offsets, sizes
        self.candidates, self.layer, self.part = list(candidates), layer, part
        self.writer = None
        self.index = None          # position in TensorStorageMetadata.chunks
        self.file = None
        self.offset = None
        self.length = None
        self.data_offset = None
        self.pkl = None

    @property
    def is_bytes(self):
        return isinstance(self.spec, BytesSpec)

    @property
    def chunk_nbytes(self):
        return prod(self.sizes) * itemsize(self.spec.dtype)

    @property
    def planned_size(self):
        # WriteItem.tensor_storage_size(): numel of the *global* tensor times itemsize; None -> 1
        if self.is_bytes:
            return 1
        return prod(self.spec.shape) * itemsize(self.spec.dtype) or 1


def split_dim(spec):
    base = 1 if spec.stacked else 0
    return {"col": base, "glu": base, "row": base + 1}.get(spec.rule)


def num_parts(spec, W):
    """How many chunks the split dim is stored in: W, or 2W for a GLU fc1."""
    return 2 * W if spec.rule == "glu" else W


def spec_items(spec, W, layer=None):
    """Items of one tensor (or of one layer of a stacked tensor), all parts."""
    nd = len(spec.shape)
    full_off = [0] * nd
    full_size = list(spec.shape)
    if spec.stacked:
        full_off[0], full_size[0] = layer, 1
    d = split_dim(spec)
    parts = num_parts(spec, W)
    if d is None or parts == 1:
        return [Item(spec, tuple(full_off), tuple(full_size), range(W), layer, None)]
    items = []
    n = spec.shape[d] // parts
    for p in range(parts):
        off, size = list(full_off), list(full_size)
        off[d], size[d] = p * n, n
        items.append(Item(spec, tuple(off), tuple(size), [p % W], layer, p))
    return items


def plan(entries, W):
    """Global item order (state-dict order; stacked blocks layer-major, as Megatron builds
    them), then PyTorch's dedup + global plan."""
    order = []
    by_key = {}                # (fqn, layer) -> items of that tensor / layer
    i = 0
    while i < len(entries):
        e = entries[i]
        if isinstance(e, BytesSpec):
            it = Item(e, candidates=range(W))
            order.append(it)
            i += 1
            continue
        if e.stacked:
            j = i
            while j < len(entries) and isinstance(entries[j], TensorSpec) and entries[j].stacked \
                    and entries[j].block == e.block:
                j += 1
            block = entries[i:j]
            for layer in range(e.shape[0]):
                for s in block:
                    items = spec_items(s, W, layer)
                    by_key[(s.fqn, layer)] = items
                    order += items
            i = j
            continue
        items = spec_items(e, W)
        by_key[(e.fqn, None)] = items
        order += items
        i += 1

    # _dedup_save_plans.dedup_save_plans(all_plans, save_to_lowest_rank=False)
    plans = [[it for it in order if r in it.candidates] for r in range(W)]
    first_seen = []
    seen = set()
    for p in plans:
        for it in p:
            if id(it) not in seen:
                seen.add(id(it))
                first_seen.append(it)
    plan_size = [0] * W
    for it in first_seen:
        sel = min(sorted(it.candidates), key=lambda r: plan_size[r])
        plan_size[sel] += it.planned_size
        it.writer = sel
    plans = [[it for it in p if it.writer == r] for r, p in enumerate(plans)]

    # create_default_global_save_plan: metadata order + index hints
    sdm_order, chunks, first_rank = [], {}, {}
    for r, p in enumerate(plans):
        for it in p:
            fqn = it.spec.fqn
            if fqn not in chunks:
                chunks[fqn] = []
                first_rank[fqn] = r
                sdm_order.append(it.spec)
            if not it.is_bytes:
                it.index = len(chunks[fqn])
                chunks[fqn].append(it)

    # FileSystemWriter: bytes items first, then tensors in a stable sort by size. PyTorch 2.11
    # (as observed in real files) orders by the size of the whole tensor (the same number
    # WriteItem.tensor_storage_size() gives), not of the chunk.
    files = []
    for r, p in enumerate(plans):
        name = f"__{r}_0.distcp"
        layout = [it for it in p if it.is_bytes] + sorted((it for it in p if not it.is_bytes),
                                                          key=lambda it: it.planned_size)
        pos = 0
        for it in layout:
            if it.is_bytes:
                it.pkl = bytesio_pkl(it.spec.payload, it.spec.as_list)
                it.length = zip_length([(n, len(d)) for n, d in bytes_records(it.pkl)])
            else:
                it.pkl = tensor_pkl(it.spec.dtype, it.sizes)
                recs = [(n, len(d)) for n, d in tensor_records(it.pkl, b"")]
                recs[4] = ("data/0", it.chunk_nbytes)
                it.length = zip_length(recs)
            it.file, it.offset = name, pos
            pos += it.length
        files.append((name, layout, pos))
    return dict(entries=list(entries), order=order, by_key=by_key, plans=plans, sdm_order=sdm_order,
                chunks=chunks, first_rank=first_rank, files=files)


# --------------------------------------------------------------------------------------------
# Metadata object graph (mirrors object sharing of a PyTorch 2.11 save, see module notes)
# --------------------------------------------------------------------------------------------

def build_metadata(pl, W, checkpoint_dir, save_id):
    """Metadata object graph. String identity (which decides pickle memo hits) follows what
    a real save produces: with one rank every reference to a key is the same str object; with
    several ranks the coordinator sees per-rank unpickled copies (state_dict_metadata key from
    the first rank whose plan holds the item, planner_data key from the last rank and value
    from rank 0, storage_data fqn from the writing rank's gathered write results)."""
    specs = pl["sdm_order"]
    fqns = [s.fqn for s in specs]
    if W == 1:
        plan_str = [{f: f for f in fqns}]
        result_str = plan_str
    else:
        plan_str = [{f: _fresh(f) for f in fqns} for _ in range(W)]
        result_str = [{f: _fresh(f) for f in fqns} for _ in range(W)]

    sdm = {}
    for spec in specs:
        key = plan_str[pl["first_rank"][spec.fqn]][spec.fqn]
        if isinstance(spec, BytesSpec):
            sdm[key] = _new(BytesStorageMetadata)
        else:
            sdm[key] = _new(
                TensorStorageMetadata,
                properties=TensorProperties(TORCH_DTYPES[spec.dtype]),
                size=Size(spec.shape),
                chunks=[_new(ChunkStorageMetadata, offsets=Size(it.offsets), sizes=Size(it.sizes))
                        for it in pl["chunks"][spec.fqn]])
    planner_data = {}                          # state-dict order
    for spec in pl["entries"]:
        planner_data[plan_str[W - 1][spec.fqn]] = (plan_str[0][spec.fqn],)
    storage_data = {}
    for name, layout, _ in pl["files"]:
        rel = _fresh(name)
        r = int(name[2:name.index("_", 2)])
        for it in layout:
            if it.is_bytes:
                idx = _new(MetadataIndex, fqn=result_str[r][it.spec.fqn], index=None)
            else:
                idx = _new(MetadataIndex, fqn=result_str[r][it.spec.fqn], index=it.index,
                           offset=Size(it.offsets))
            storage_data[idx] = _new(_StorageInfo, relative_path=rel, offset=it.offset, length=it.length)
    parts = PurePosixPath(checkpoint_dir).parts
    storage_meta = _new(StorageMeta, checkpoint_id=PosixPath(parts), save_id=save_id, load_id=None, modules=[])
    return _new(Metadata, state_dict_metadata=sdm, planner_data=planner_data, storage_data=storage_data,
                storage_meta=storage_meta, version="1.0.0")


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------

def chunk_view(buf, lshape, d, W, r, es):
    """Bytes of part r (of W) along dim d of a C-ordered tensor `buf` of shape lshape."""
    mv = memoryview(buf)
    if d is None or W == 1:
        return mv
    inner = prod(lshape[d + 1:]) * es
    n = lshape[d] // W
    if d == 0:
        return mv[r * n * inner:(r + 1) * n * inner]
    outer = prod(lshape[:d])
    row = lshape[d] * inner
    lo, hi = r * n * inner, (r + 1) * n * inner
    return b"".join(mv[o * row + lo:o * row + hi] for o in range(outer))


def write_blob(fh, it, parts):
    fh.seek(it.offset)
    written = 0
    for p in parts:
        fh.write(p)
        written += len(p)
    if written != it.length:
        raise AssertionError(f"blob size mismatch for {it.spec.fqn}: {written} != {it.length}")


def data_offset_of(it):
    """Absolute file offset of the raw data/0 bytes of a tensor blob."""
    pos = 0
    for name, size in [(n, len(d)) for n, d in tensor_records(it.pkl, b"")][:4]:
        _, start = _zip_entry_layout(pos, len(ARCHIVE_PREFIX + name))
        pos = start + size + 16
    _, start = _zip_entry_layout(pos, len(ARCHIVE_PREFIX + "data/0"))
    return it.offset + start


def generate(entries, W, out_dir, seed, value_fn=None):
    """Write all .distcp files; returns (plan, per-tensor results, bytes results)."""
    value_fn = value_fn or (lambda name, dtype, shape: gen_values(seed, name, dtype, prod(shape)))
    pl = plan(entries, W)
    handles = {}
    try:
        for name, _, size in pl["files"]:
            fh = open(os.path.join(out_dir, name), "wb")
            fh.truncate(size)
            handles[name] = fh
        results = {}
        bytes_results = {}
        for e in entries:
            if isinstance(e, BytesSpec):
                (it,) = [x for x in pl["order"] if x.spec is e]
                parts = zip_parts(bytes_records(it.pkl))
                write_blob(handles[it.file], it, parts)
                bytes_results[e.fqn] = it
                continue
            es = itemsize(e.dtype)
            h = hashlib.sha256()
            d = split_dim(e)
            layers = range(e.shape[0]) if e.stacked else [None]
            lshape = e.shape[1:] if e.stacked else e.shape
            for layer in layers:
                vname = e.layer_names[layer] if e.stacked else e.value_name
                buf = value_fn(vname, e.dtype, lshape)
                if len(buf) != prod(lshape) * es:
                    raise AssertionError(f"value size mismatch for {vname}")
                h.update(buf)
                dd = None if d is None else (d - 1 if e.stacked else d)
                for it in pl["by_key"][(e.fqn, layer)]:
                    data = chunk_view(buf, lshape, dd, num_parts(e, W), it.part if it.part is not None else 0, es)
                    write_blob(handles[it.file], it, zip_parts(tensor_records(it.pkl, data)))
                    it.data_offset = data_offset_of(it)
                del buf
            results[e.fqn] = h.hexdigest()
        for name, _, size in pl["files"]:
            fh = handles[name]
            fh.seek(0, os.SEEK_END)
            if fh.tell() != size:
                raise AssertionError(f"{name}: size {fh.tell()} != planned {size}")
    finally:
        for fh in handles.values():
            fh.close()
    return pl, results, bytes_results


def expected_doc(entries, pl, sha, bytes_items, args_doc):
    tensors = {}
    for e in entries:
        if isinstance(e, BytesSpec):
            continue
        tensors[e.fqn] = {
            "dtype": e.dtype,
            "shape": list(e.shape),
            "sha256": sha[e.fqn],
            "rule": e.rule,
            "stacked": e.stacked,
            "group": e.group,
            "chunks": [{"offsets": list(it.offsets), "sizes": list(it.sizes), "file": it.file,
                        "offset": it.offset, "length": it.length, "data_offset": it.data_offset,
                        "writer": it.writer}
                       for it in pl["chunks"][e.fqn]],
        }
    bytes_doc = {}
    for fqn, it in bytes_items.items():
        bytes_doc[fqn] = {
            "python_type": "list[io.BytesIO]" if it.spec.as_list else "io.BytesIO",
            "payload_hex": it.spec.payload.hex(),
            "payload_sha256": hashlib.sha256(it.spec.payload).hexdigest(),
            "file": it.file, "offset": it.offset, "length": it.length, "writer": it.writer,
        }
    doc = dict(args_doc)
    doc.update(tensors=tensors, bytes_entries=list(bytes_items), bytes=bytes_doc)
    return doc


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------

def human(n):
    for unit in ("B", "KB", "MB"):
        if n < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.2f} GB"


def parse_args(argv=None):
    ap = argparse.ArgumentParser(
        prog="gen_synthetic_dcp.py",
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", metavar="OUT", help="checkpoint directory to create")
    ap.add_argument("--preset", choices=sorted(PRESETS), default="tiny",
                    help="vit-h: 32 layers, hidden 1280, ffn 5120, 16 heads, patch 14, image 224, bf16 "
                         "(about 1.26 GB); tiny: 2 layers, hidden 64, ffn 256, 4 heads, patch 8, image 32, "
                         "bf16 (about 300 KB). Default: tiny. The options below override the preset.")
    ap.add_argument("--layers", type=int, help="number of transformer layers L")
    ap.add_argument("--hidden", type=int, help="hidden size H")
    ap.add_argument("--ffn", type=int, help="MLP size F")
    ap.add_argument("--heads", type=int, help="attention heads (must divide H; --writers must divide it)")
    ap.add_argument("--patch", type=int, help="patch size (embedder.weight is H x 3*patch*patch)")
    ap.add_argument("--image-size", dest="image", type=int,
                    help="image size (position_embeddings is 1 x ((image/patch)^2 + 1) x H)")
    ap.add_argument("--dtype", choices=["bfloat16", "float32", "float16"],
                    help="dtype of the weights (final_layernorm and input_conditioner.norm_mean are "
                         "always float32, norm_std float16, summary_idxs int64)")
    ap.add_argument("--writers", type=int, default=2,
                    help="number of writer ranks W = tensor-parallel size; writer r writes __r_0.distcp "
                         "(default 2)")
    ap.add_argument("--stacked", action="store_true",
                    help="Megatron torch_dist style stacked keys model.vision_model.decoder.layers.<param> "
                         "with a leading layer axis (one (1, ...) chunk per layer and TP part)")
    ap.add_argument("--with-llm-decoy", type=float, default=0, metavar="SIZE_MB",
                    help="add model.language_model.* tensors totalling about SIZE_MB MiB")
    ap.add_argument("--glu-decoy", action="store_true",
                    help="store the decoy's fc1 as a GLU [gate; up] (2W dim-0 chunks, as Megatron-Core saves "
                         "SwiGLU); needs --with-llm-decoy")
    ap.add_argument("--seed", type=int, default=1234, help="value seed (default 1234)")
    ap.add_argument("--expected", metavar="FILE",
                    help="where to write the ground truth JSON (default: OUT.expected.json next to OUT)")
    ap.add_argument("--force", action="store_true",
                    help="reuse an existing OUT directory (removes its .metadata and *.distcp first)")
    a = ap.parse_args(argv)
    for k, v in PRESETS[a.preset].items():
        if getattr(a, k) is None:
            setattr(a, k, v)
    H, F, W = a.hidden, a.ffn, a.writers
    err = []
    if W < 1:
        err.append("--writers must be >= 1")
    if min(a.layers, H, F, a.heads, a.patch, a.image) < 1:
        err.append("sizes must be positive")
    elif H % a.heads:
        err.append(f"--heads {a.heads} must divide --hidden {H}")
    elif W >= 1 and (a.heads % W or H % W or F % W):
        err.append(f"--writers {W} must divide --heads {a.heads}, --hidden {H} and --ffn {F}")
    if a.with_llm_decoy < 0:
        err.append("--with-llm-decoy must be >= 0")
    if err:
        ap.error("; ".join(err))
    return a


def main(argv=None):
    a = parse_args(argv)
    t0 = time.time()
    out = os.path.abspath(a.out.rstrip("/") or a.out)
    expected_path = a.expected or out + ".expected.json"
    if os.path.abspath(expected_path).startswith(out + os.sep):
        sys.exit("--expected must not point inside the checkpoint directory")
    if os.path.isdir(out) and os.listdir(out):
        if not a.force:
            sys.exit(f"{out} exists and is not empty (use --force to overwrite its DCP files)")
        for n in os.listdir(out):
            if n in (".metadata", ".metadata.tmp") or (n.startswith("__") and n.endswith(".distcp")):
                os.remove(os.path.join(out, n))
    os.makedirs(out, exist_ok=True)

    entries = build_model(a)
    pl, sha, bytes_items = generate(entries, a.writers, out, a.seed)

    rng = random.Random(f"shardcast-synthetic/{a.seed}/save_id")
    save_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    md = build_metadata(pl, a.writers, out, save_id)
    blob = dumps_metadata(md)
    tmp = os.path.join(out, ".metadata.tmp")
    with open(tmp, "wb") as f:
        f.write(blob)
    os.replace(tmp, os.path.join(out, ".metadata"))

    args_doc = {
        "generator": f"shardcast tools/gen_synthetic_dcp.py v{GENERATOR_VERSION}",
        "emulates": "torch 2.11 dcp.save, FileSystemWriter(single_file_per_rank=True), CPython 3.12",
        "preset": a.preset, "layers": a.layers, "hidden": a.hidden, "ffn": a.ffn, "heads": a.heads,
        "patch": a.patch, "image_size": a.image, "dtype": a.dtype, "writers": a.writers,
        "stacked": a.stacked, "llm_decoy_mb": a.with_llm_decoy, "seed": a.seed,
        "checkpoint": out, "files": [n for n, _, _ in pl["files"]],
    }
    doc = expected_doc(entries, pl, sha, bytes_items, args_doc)
    with open(expected_path, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")

    total = sum(size for _, _, size in pl["files"])
    n_tensors = len(sha)
    tensor_bytes = sum(e.nbytes for e in entries if isinstance(e, TensorSpec))
    decoy_bytes = sum(e.nbytes for e in entries if isinstance(e, TensorSpec) and e.group == "decoy")
    dt = time.time() - t0
    print(f"gen_synthetic_dcp: {out}: {n_tensors} tensors ({human(tensor_bytes)} of tensor data"
          f"{', %s of it model.language_model decoy' % human(decoy_bytes) if decoy_bytes else ''}), "
          f"{len(bytes_items)} bytes entry, {len(pl['files'])} .distcp files ({human(total)}) + .metadata "
          f"({human(len(blob))}), writers={a.writers} stacked={a.stacked}, {dt:.2f} s; expected: {expected_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
