#!/usr/bin/env python3
"""Writes minimal reproducers of the bugs the fuzzing campaign reported (stdlib only).

    make_regressions.py OUT_DIR

Each file is a hand-assembled input for one of the fuzz targets; run it with
    tests/fuzz/build/metadata_fuzzer OUT_DIR/metadata-*
    tests/fuzz/build/record_fuzzer   OUT_DIR/record-*
A run that prints no sanitizer report / timeout means the bug is fixed. See README.md
("Findings") for what each one shows.
"""
import os
import struct
import sys

MOD = b"torch.distributed.checkpoint.metadata"


def s(text):  # SHORT_BINSTRING (the unpickler reads it as a str)
    text = text.encode() if isinstance(text, str) else text
    return b"U" + bytes([len(text)]) + text


def long8(v):  # LONG1 with 8 bytes
    return b"\x8a\x08" + struct.pack("<q", v)


def obj(cls, state_items):
    """NEWOBJ of MOD.cls (module string memoized at index 0) + BUILD with a dict state."""
    return b"h\x00" + s(cls) + b"\x93)\x81}(" + b"".join(state_items) + b"ub"


def metadata(sdm_items, sd_items):
    return (b"\x80\x02" + s(MOD) + b"q\x00" + b"\x8c\x08Metadata\x93)\x81}(" + s("state_dict_metadata") + b"}(" +
            b"".join(sdm_items) + b"u" + s("storage_data") + b"}(" + b"".join(sd_items) + b"uub.")


def storage_entry(fqn, offsets):
    key = obj("MetadataIndex", [s("fqn"), s(fqn), s("offset"), offsets])
    info = (b"c" + b"torch.distributed.checkpoint.filesystem\n_StorageInfo\n)\x81}(" + s("relative_path") + s("a") +
            s("offset") + b"K\x00" + s("length") + b"K\x01" + b"ub")
    return key + info


def tensor(dtype, size, chunk, copies):
    """A TensorStorageMetadata whose chunk list holds the same chunk object `copies` times (memo 1)."""
    props = obj("TensorProperties", [s("dtype"), b"ctorch\n" + dtype + b"\n"])
    refs = b"h\x01" * (copies - 1)
    return obj("TensorStorageMetadata", [s("properties"), props, s("size"), size, s("chunks"),
                                         b"](" + chunk + b"q\x01" + refs + b"e"])


def metadata_covered_overflow():
    """ValidateChunks: `covered += n` overflows int64 (two chunks of 2^62 elements)."""
    big = long8(1 << 62) + b"\x85"
    chunk = obj("ChunkStorageMetadata", [s("offsets"), b"K\x00\x85", s("sizes"), big])
    return metadata([s("t"), tensor(b"float8_e4m3fn", big, chunk, 2)], [storage_entry("t", b"K\x00\x85")])


def metadata_quadratic(copies=30000):
    """ValidateChunks: O(n^2) overlap sweep over n empty chunks of a [1, 0] tensor (memo refs: 2 bytes each)."""
    chunk = obj("ChunkStorageMetadata", [s("offsets"), b"K\x00K\x00\x86", s("sizes"), b"K\x01K\x00\x86"])
    return metadata([s("e"), tensor(b"float32", b"K\x01K\x00\x86", chunk, copies)],
                    [storage_entry("e", b"K\x00K\x00\x86")])


def stored_zip(files):
    out, cd = b"", b""
    for name, data in files:
        name = name.encode()
        cd += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 0, 0, 0, 0, len(data), len(data), len(name),
                          0, 0, 0, 0, 0, len(out)) + name
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 0, 0, 0, 0, len(data), len(data), len(name), 0)
        out += name + data
    return out + cd + struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(files), len(files), len(cd), len(out), 0)


def float_record(size_ops, stride_ops):
    """A float32 tensor record over 4 elements with the given size and stride tuples (pickle ops)."""
    pkl = (b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\n((" + s("storage") + b"ctorch\nFloatStorage\n" + s("0") +
           s("cpu") + b"K\x04tQK\x00(" + size_ops + b"t(" + stride_ops + b"tNNtR.")
    return stored_zip([("data.pkl", pkl), ("data/0", bytes(16))])


def record_huge_stride():
    """Size (2, 1, 2), stride (1, 2^63-1, 2): the size-1 dim's stride is never bounded, so
    CopyRegion's odometer computes src_elem + (2^63-1) and overflows (region_copy.cc:104)."""
    return float_record(b"K\x02K\x01K\x02", b"K\x01" + long8((1 << 63) - 1) + b"K\x02")


def record_huge_last_stride():
    """Size (2, 1), stride (1, 2^62): CopyRegion computes the byte step 2^62 * 4 (region_copy.cc:96)."""
    return float_record(b"K\x02K\x01", b"K\x01" + long8(1 << 62))


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    for name, blob in [("metadata-covered-overflow", metadata_covered_overflow()),
                       ("metadata-quadratic-chunks", metadata_quadratic()),
                       ("record-huge-stride", record_huge_stride()),
                       ("record-huge-last-stride", record_huge_last_stride())]:
        with open(os.path.join(out, name), "wb") as f:
            f.write(blob)
        print(f"  {name}: {len(blob)} bytes")


if __name__ == "__main__":
    main()
