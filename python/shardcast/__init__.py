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
from ._client import Client, LayoutWarning, ShardcastError, load_module, torch_nccl_library

__all__ = ["Client", "LayoutWarning", "ShardcastError", "load_module", "torch_nccl_library"]
__version__ = "0.1.0"
