"""PyTorch Distributed Checkpoint (DCP) loading through a running shardcastd.

Two ways in, both receiving in place, both asking the service for exactly the boxes each rank
needs (`Client.load_boxes`) and for the non-tensor values (`Client.read_bytes`):

    import shardcast.torch
    shardcast.torch.load(state_dict)                       # like torch.distributed.checkpoint.load
    torch.distributed.checkpoint.load(state_dict, storage_reader=shardcast.torch.StorageReader(client))

`load(state_dict, client=None)` has `torch.distributed.checkpoint.load`'s semantics without its
collectives: nested dicts and lists are flattened as DCP flattens them ("a.b.c"); a plain tensor
is loaded whole; a DTensor receives its local shard, computed by torch's own helper from its mesh
and placements (Shard and Replicate, on any mesh, in any combination; _StridedShard and Partial
are refused: redistribute first, or load a plain tensor; so is the older ShardedTensor); a
destination of another dtype than the stored one, or a non-contiguous one, receives through a
temporary and is copied (cast) in place, as DCP's copy_ does; any other value is replaced by the
checkpoint's bytes entry as DCP's default planner does (`torch.load(..., weights_only=False)` of
the bytes: trust the checkpoint as you would for dcp.load). Every problem (missing key, shape
mismatch, a refused placement) is raised together, before any byte moves. Boxes go in requests
within the limits of README "Request limits" (box_batches: 16384 boxes, 3 MiB); more are sent in
several.

`StorageReader(client)` is a `torch.distributed.checkpoint.StorageReader`: its metadata comes from
the service's index (one chunk per tensor covering it whole: DCP's planner then asks for boxes of
it), and `read_data` turns each ReadItem into a box or a bytes entry, committing through the
planner as torch's FileSystemReader does.

Importing this module needs torch; `import shardcast` does not.
"""
import io

try:
    import torch
except ImportError as e:  # `import shardcast` works without torch; this module cannot
    raise ImportError("shardcast.torch needs PyTorch (import torch failed: %s); the rest of shardcast does not" % e) from e
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint._nested_dict import flatten_state_dict
from torch.distributed.checkpoint._traverse import set_element
from torch.distributed.checkpoint.metadata import (BytesStorageMetadata, ChunkStorageMetadata, Metadata,
                                                   TensorProperties, TensorStorageMetadata)
from torch.distributed.checkpoint.planner import LoadItemType
from torch.futures import Future

from ._client import Client, ShardcastError, box_batches

__all__ = ["StorageReader", "load"]

_MAX_LISTED = 20        # problems named in one error


def _dtensor_types():
    """(DTensor, Shard, Replicate) from torch.distributed.tensor (2.5+) or its older home."""
    try:
        from torch.distributed.tensor import DTensor, Replicate, Shard
    except ImportError:  # torch < 2.5
        from torch.distributed._tensor import DTensor, Replicate, Shard
    return DTensor, Shard, Replicate


def _local_shape_and_offset(dt):
    """The DTensor's local shape and global offset, by torch's own helper; raises ValueError
    naming a placement that is not plain Shard or Replicate."""
    DTensor, Shard, Replicate = _dtensor_types()
    for p in dt.placements:
        if type(p) not in (Shard, Replicate):  # _StridedShard subclasses Shard: refused by exact type
            raise ValueError("placement %r is not supported (only Shard and Replicate): redistribute the DTensor "
                             "or load its full_tensor()" % (p,))
    from torch.distributed.tensor._utils import compute_local_shape_and_global_offset
    shape, offset = compute_local_shape_and_global_offset(dt.shape, dt.device_mesh, dt.placements)
    return list(shape), list(offset)


def _raise_problems(problems, code=3):
    listed = problems[:_MAX_LISTED]
    more = "; and %d more" % (len(problems) - _MAX_LISTED) if len(problems) > _MAX_LISTED else ""
    raise ShardcastError(code, "cannot load the state dict (%d problem%s): %s%s" % (
        len(problems), "" if len(problems) == 1 else "s", "; ".join(listed), more))


class _Receive:
    """Boxes to receive in place: each into its destination tensor, or into a contiguous tensor of
    the stored dtype that is copied into the destination afterwards (a non-contiguous view, another
    dtype: the copy casts, as DCP's copy_ does)."""

    def __init__(self):
        self.boxes, self.copies = [], []

    def add(self, key, stored_dtype, offsets, sizes, dst):
        direct = dst.is_contiguous() and dst.dtype == stored_dtype
        target = dst if direct else torch.empty(tuple(sizes), dtype=stored_dtype, device=dst.device)
        if not direct:
            self.copies.append((dst, target))
        self.boxes.append({"name": str(len(self.boxes)), "key": key, "offsets": [int(o) for o in offsets],
                           "sizes": [int(s) for s in sizes], "tensor": target})

    def run(self, client):
        """Receives every box; returns load_boxes' report (summed over batches)."""
        total = {}
        for batch in box_batches(self.boxes):
            report = client.load_boxes(batch)
            for k, v in (report or {}).items():
                if k not in total:
                    total[k] = v
                elif isinstance(v, list):
                    total[k] = total[k] + v
                elif isinstance(v, (int, float)):
                    total[k] += v
        with torch.no_grad():
            for dst, tmp in self.copies:
                dst.copy_(tmp.view(dst.shape))
        return total


def _plan_value(key, value, stored, receive, problems):
    """Adds one flattened tensor value's box to `receive`, or a problem."""
    DTensor = _dtensor_types()[0]
    if stored is None:
        problems.append("'%s' is a tensor in the state dict but a bytes entry in the checkpoint" % key)
        return
    dtype = getattr(torch, stored["dtype"])
    if list(value.shape) != list(stored["shape"]):
        problems.append("'%s' has shape %s in the state dict but %s in the checkpoint" % (
            key, list(value.shape), stored["shape"]))
        return
    if type(value).__name__ == "ShardedTensor":  # torch.distributed._shard's predecessor of DTensor
        problems.append("'%s' is a ShardedTensor, which is not supported: use a DTensor (or a plain tensor)" % key)
        return
    if isinstance(value, DTensor):
        try:
            sizes, offsets = _local_shape_and_offset(value)
        except ValueError as e:
            problems.append("'%s': %s" % (key, e))
            return
        local = value.to_local()
        if local.numel() > 0:
            receive.add(key, dtype, offsets, sizes, local.detach())
    else:
        if value.numel() > 0:
            receive.add(key, dtype, [0] * value.dim(), list(value.shape), value.detach())


def load(state_dict, client=None):
    """Loads `state_dict` in place from the checkpoint shardcastd serves, as
    `torch.distributed.checkpoint.load(state_dict, ...)` would (see the module's doc). `client`:
    a shardcast.Client (default: one to $SHARDCAST_ADDR). Returns load_boxes' report (bytes,
    shards, ...; None when there was no tensor) after every tensor and value is in place."""
    own = client is None
    client = client or Client()
    try:
        return _load(state_dict, client)
    finally:
        if own:
            client.close()


def _load(state_dict, client):
    index = client.index()
    tensors = {t["key"]: t for t in index["tensors"]}
    byte_keys = {b["key"] for b in index["bytes"]}
    flat, mappings = flatten_state_dict(state_dict)
    receive, problems, values = _Receive(), [], []
    for key, value in flat.items():
        if key not in tensors and key not in byte_keys:
            problems.append("'%s' is not in the checkpoint (the service serves %d tensors and %d bytes entries "
                            "under prefix '%s')" % (key, len(tensors), len(byte_keys), index["prefix"]))
        elif isinstance(value, torch.Tensor):
            _plan_value(key, value, tensors.get(key), receive, problems)
        elif key in byte_keys:
            values.append(key)
        else:
            problems.append("'%s' is a %s in the state dict but a tensor in the checkpoint" % (
                key, type(value).__name__))
    if problems:
        _raise_problems(problems, code=5 if any("not in the checkpoint" in p for p in problems) else 3)
    report = None
    if receive.boxes:
        report = receive.run(client)
    if values:
        data = client.read_bytes(values)
        for key in values:
            set_element(state_dict, mappings[key], torch.load(io.BytesIO(data[key]), weights_only=False))
    return report


class StorageReader(dcp.StorageReader):
    """A torch.distributed.checkpoint StorageReader over shardcastd:

        dcp.load(state_dict, storage_reader=shardcast.torch.StorageReader(client))

    `client`: a shardcast.Client (default: one to $SHARDCAST_ADDR, opened on first use)."""

    def __init__(self, client=None):
        super().__init__()
        self._client = client
        self._metadata = None

    def _get_client(self):
        if self._client is None:
            self._client = Client()
        return self._client

    # -- StorageReader interface ------------------------------------------------------------
    def reset(self, checkpoint_id=None):
        self._metadata = None

    @classmethod
    def validate_checkpoint_id(cls, checkpoint_id):
        return False  # the service names the checkpoint; a checkpoint_id cannot select one

    def read_metadata(self, *args, **kwargs):
        """The service's index as DCP Metadata: one chunk per tensor, covering it whole."""
        index = self._get_client().index()
        md = {}
        for t in index["tensors"]:
            shape = torch.Size(t["shape"])
            md[t["key"]] = TensorStorageMetadata(
                properties=TensorProperties(dtype=getattr(torch, t["dtype"])), size=shape,
                chunks=[ChunkStorageMetadata(offsets=torch.Size([0] * len(shape)), sizes=shape)])
        for b in index["bytes"]:
            md[b["key"]] = BytesStorageMetadata()
        return Metadata(state_dict_metadata=md)

    def set_up_storage_reader(self, metadata, is_coordinator, *args, **kwargs):
        self._metadata = metadata

    def prepare_local_plan(self, plan):
        return plan

    def prepare_global_plan(self, plans):
        return plans

    def read_data(self, plan, planner):
        """Every tensor ReadItem as one box (received in place, then committed), every bytes
        ReadItem from the service's bytes entries, as FileSystemReader commits them."""
        receive, resolved, byte_items = _Receive(), [], []
        for req in plan.items:
            if req.type == LoadItemType.BYTE_IO:
                byte_items.append(req)
                continue
            key = req.storage_index.fqn
            stored = self._metadata.state_dict_metadata[key]
            chunk = req.storage_index.offset or torch.Size([0] * len(stored.size))
            offsets = [int(c) + int(o) for c, o in zip(chunk, req.storage_offsets)]
            target = planner.resolve_tensor(req).detach()
            if list(target.shape) != [int(n) for n in req.lengths]:
                raise ShardcastError(3, "'%s': the planner's destination has shape %s but the read item %s" % (
                    key, list(target.shape), list(req.lengths)))
            if target.numel() > 0:
                receive.add(key, stored.properties.dtype, offsets, list(req.lengths), target)
            resolved.append((req, target))
        if receive.boxes:
            receive.run(self._get_client())
        for req, target in resolved:
            planner.commit_tensor(req, target)
        if byte_items:
            data = self._get_client().read_bytes(sorted({r.storage_index.fqn for r in byte_items}))
            for req in byte_items:
                planner.load_bytes(req, io.BytesIO(data[req.storage_index.fqn]))
        fut = Future()
        fut.set_result(None)
        return fut
