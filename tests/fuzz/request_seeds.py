#!/usr/bin/env python3
"""Seeds for request_fuzzer: serialized ShardRequest protobufs (proto/shardcast/v1), written by a
small hand encoder (no protobuf package needed): ordinary requests, every rule kind, layout text,
and the hostile requests of issue 9 (vocab 2^60, split:2^32, huge qkv heads, tp_size 2^31,
layout paths, too many rules, a long or heavy pattern).

    request_seeds.py OUT_DIR
"""
import hashlib
import os
import sys


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field(num, value):
    if isinstance(value, bool):
        return varint(num << 3) + varint(int(value))
    if isinstance(value, int):
        return varint(num << 3) + varint(value)
    data = value.encode() if isinstance(value, str) else value
    return varint((num << 3) | 2) + varint(len(data)) + data


def request(tp_size=1, tp_rank=0, layout=None, rules=(), prefix=None, renames=(), unstack=False, dtype=None,
            layout_text=None):
    out = field(1, tp_size) + field(2, tp_rank)
    if layout is not None:
        out += field(3, layout)
    for r in rules:
        out += field(4, r)
    if prefix is not None:
        out += field(5, prefix)
    for r in renames:
        out += field(6, r)
    if unstack:
        out += field(7, True)
    if dtype is not None:
        out += field(8, dtype)
    if layout_text is not None:
        out += field(9, layout_text)
    return out


FIXTURE_LAYOUT = (
    ".*language_model.*mlp\\.linear_fc1\\.weight     sections:0:2\n"
    ".*(linear_qkv|linear_fc1)\\.(weight|bias)      split:0\n"
    ".*embedder\\.(weight|bias)                     split:0\n"
    ".*word_embeddings\\.weight                     split:0\n"
    ".*(linear_proj|linear_fc2)\\.weight            split:1\n")

SEEDS = [
    request(),
    request(2, 1),
    request(4, 3, layout="megatron"),
    request(2, 0, layout="replicate"),
    request(2, 1, layout_text=FIXTURE_LAYOUT),
    request(4, 2, layout_text=FIXTURE_LAYOUT, unstack=True, dtype="bf16"),
    request(2, 0, rules=[".*linear_fc1\\.weight=sections:0:2", ".*qkv.*=qkv:4:2", ".*word.*=vocab:0:128@stacked"]),
    request(2, 1, rules=[".*=sections:0:4,4", ".*proj.*=split:1@stacked", "x=opaque", "y=replicate"]),
    request(2, 1, prefix="model.vision_model.", renames=["model.vision_model.=vision."]),
    request(8, 7, dtype="fp32", rules=[".*=split:0"]),
    # issue 9
    request(2, 0, rules=[".*word_embeddings\\.weight=vocab:0:1152921504606846976"]),
    request(2, 0, rules=[".*=split:4294967296"]),
    request(2, 0, rules=[".*qkv.*=qkv:4294967296:4294967296"]),
    request(2 ** 31, 0),
    request(2 ** 32 - 1, 2 ** 32 - 2),
    request(1, 0, layout="/etc/passwd"),
    request(1, 0, layout="/dev/zero"),
    request(1, 0, rules=["x%d=split:0" % i for i in range(65)]),
    request(1, 0, rules=["a" * 1050 + "=split:0"]),
    request(1, 0, layout_text="".join("[\\p{L}\\p{N}]{20}[\\p{Greek}]{10}.*%d split:0\n" % i for i in range(20))),
]


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    for s in SEEDS:
        with open(os.path.join(out, "seed-" + hashlib.sha1(s).hexdigest()[:16]), "wb") as f:
            f.write(s)
    print("   corpus_request: %d seeds" % len(SEEDS))


if __name__ == "__main__":
    main()
