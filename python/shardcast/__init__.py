"""shardcast: receive tensor-parallel shards of a checkpoint from a running shardcastd.

    import shardcast
    client = shardcast.Client("node1:7070", token_file="/job/shardcast.token")
    print(client.status()["state"])
    arrays = client.fetch(tp_size=2, tp_rank=0, prefix="model.vision_model.")   # host, NumPy
    report = client.load_into(tensors, tp_size=2, tp_rank=0)                     # your buffers

The package is a thin ctypes binding over the C ABI of the C++ client (libshardcast_client.so):
no compiled extension to build against a particular Python, and no PyTorch needed to import it.
PyTorch tensors are used when given (CUDA tensors receive over NCCL, CPU tensors over the stream).
"""
import os as _os
import re as _re

from ._client import Client, LayoutWarning, RawBytesWarning, ShardcastError, load_module, torch_nccl_library

__all__ = ["Client", "LayoutWarning", "RawBytesWarning", "ShardcastError", "load_module", "torch_nccl_library"]


def _find_version():
    """The version from its one source, common/version.h: read from the source tree (or Bazel's
    runfiles, which have the same layout) when the package sits there, else from _version.py,
    which tools/build_wheel.sh writes from the header into the wheel; "unknown" if neither is there."""
    header = _os.path.join(_os.path.dirname(_os.path.abspath(__file__)), "..", "..", "common", "version.h")
    try:
        with open(header) as f:
            match = _re.search(r'kVersion\[\] = "([^"]+)"', f.read())
        if match:
            return match.group(1)
    except OSError:
        pass
    try:
        from ._version import __version__ as version
        return version
    except ImportError:
        return "unknown"


__version__ = _find_version()
