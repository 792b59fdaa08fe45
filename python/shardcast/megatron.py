"""shardcast.megatron: load Megatron-Core models through shardcastd from the model's own sharding
metadata, with no layout rules to write.

    import shardcast.megatron
    report = shardcast.megatron.load(model)            # client from $SHARDCAST_ADDR

`model.sharded_state_dict()` already says, for every local tensor, its checkpoint key, global shape
and offset, local shape, the stacked-layer axes (`prepend_axis_num`) and the GLU factory. This
module turns each `ShardedTensor` into a box request ({key, offsets, sizes, destination}) and lets
the service fill the model's parameters and buffers in place, so TP, PP, virtual pipelining and
their combinations load as `dist_checkpointing.load` loads them (SwiGLU's `[gate_all; up_all]`
included). `ShardedObject`s (`_extra_state`, e.g. Transformer Engine's FP8 metadata) come from the
checkpoint's bytes entries (Client.read_bytes) and are set through the modules' load_state_dict.
Before any byte moves, the plan is checked against the service's index (keys, global shapes,
dtypes, bytes entries) and every problem is listed in one ShardcastError.

    dist_checkpointing.load(sd, ckpt_dir, sharded_strategy=ShardcastLoadStrategy(client))

is the same through Megatron's own entry point.

Warm start of the vision encoder in a hetero MIMO model (`--load-vision-from`): the RADIO
checkpoint was saved under `model.vision_model.`, the MIMO model holds it under
`vision_submodule.encoders.radio_encoder.radio_model.`:

    shardcast.megatron.load(mimo_model, client, key_map={
        "vision_submodule.encoders.radio_encoder.radio_model.": "model.vision_model."})

A key_map also selects: only keys under one of its prefixes are requested, the rest of the model
(the language model here) is left as it is and listed in the report's "not_loaded".

Importing this module imports torch and megatron.core; `import shardcast` does not import it.
"""
import dataclasses
import io
import math
import time

import torch
from megatron.core.dist_checkpointing import ShardedObject, ShardedTensor
from megatron.core.dist_checkpointing.mapping import ShardedTensorFactory, apply_factories
from megatron.core.dist_checkpointing.strategies.torch import TorchDistLoadShardedStrategy

from ._client import Client, ShardcastError, box_batches

__all__ = ["BoxPlan", "ShardcastLoadStrategy", "boxes_for", "load"]

_INVALID_ARGUMENT = 3
_CASTS = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}
_STORED_CASTABLE = ("float32", "bfloat16", "float16")


@dataclasses.dataclass
class BoxPlan:
    """What a sharded state dict asks for.

    boxes: box requests as Client.load_boxes takes them (name, key, offsets, sizes, tensor).
    global_shapes: {box name: the model's global shape of its key} (checked against the checkpoint).
    shape_mismatch_ok: names whose ShardedTensor allows a different stored shape (padded vocab).
    objects: {name: bytes entry key} of the ShardedObjects (`_extra_state`): DCP bytes entries
        under Megatron's unique key "<key>/shard_<offsets>_<shape>" (key after key_map).
    unmapped: [(name, key)] of ShardedTensors under no key_map prefix (not requested).
    problems: what cannot be a box (flattened_range, non-contiguous data, ...).
    """
    boxes: list = dataclasses.field(default_factory=list)
    global_shapes: dict = dataclasses.field(default_factory=dict)
    shape_mismatch_ok: set = dataclasses.field(default_factory=set)
    objects: dict = dataclasses.field(default_factory=dict)
    unmapped: list = dataclasses.field(default_factory=list)
    problems: list = dataclasses.field(default_factory=list)


def model_sharded_state_dict(model):
    """The model's sharded state dict as Megatron checkpoints it: one module gives its own; a list
    of modules (virtual pipeline chunks) gives {"model0": ..., "model1": ...}, Megatron-LM's
    convention. Factories (SwiGLU) are applied, as dist_checkpointing.load does."""
    if isinstance(model, (list, tuple)):
        sd = {"model%d" % i: m.sharded_state_dict() for i, m in enumerate(model)} if len(model) > 1 \
            else model[0].sharded_state_dict()
    else:
        sd = model.sharded_state_dict()
    apply_factories(sd)
    return sd


def boxes_for(model, key_map=None):
    """The BoxPlan of a model (a module, or a list of virtual pipeline chunks)."""
    return plan_state_dict(model_sharded_state_dict(model), key_map)


def plan_state_dict(sharded_state_dict, key_map=None):
    """The BoxPlan of a sharded state dict whose factories are applied."""
    plan = BoxPlan()
    for path, value in _walk(sharded_state_dict):
        if isinstance(value, ShardedObject):
            key = _map_key(value.key, key_map)
            if key is None:
                plan.unmapped.append((path, value.key))
            else:
                plan.objects[path] = ShardedObject(key, None, value.global_shape, value.global_offset).unique_key
        elif isinstance(value, ShardedTensorFactory):
            plan.problems.append("%s: a ShardedTensorFactory (apply_factories first)" % path)
        elif isinstance(value, ShardedTensor):
            key = _map_key(value.key, key_map)
            if key is None:
                plan.unmapped.append((path, value.key))
            else:
                _add_box(plan, path, key, value)
    return plan


def _add_box(plan, name, key, sh):
    """One ShardedTensor as one box: prepended (stacked-layer) axes are 1 wide at their offset."""
    data = sh.data
    if getattr(sh, "flattened_range", None) is not None:
        plan.problems.append("%s: flattened_range is set (a flattened optimizer shard is not a box)" % name)
        return
    if data is None:
        plan.problems.append("%s: the ShardedTensor has no data to receive into" % name)
        return
    if not data.is_contiguous():
        plan.problems.append("%s: its data is not contiguous (stride %s); shardcast receives into contiguous "
                             "memory only" % (name, list(data.stride())))
        return
    sizes = [1] * sh.prepend_axis_num + list(sh.local_shape)
    if len(sizes) != len(sh.global_offset) or math.prod(sizes) != data.numel():
        plan.problems.append("%s: local shape %s with %d prepended axes does not match offsets %s / data %s" % (
            name, list(sh.local_shape), sh.prepend_axis_num, list(sh.global_offset), list(data.shape)))
        return
    plan.boxes.append({"name": name, "key": key, "offsets": [int(o) for o in sh.global_offset], "sizes": sizes,
                       "tensor": data})
    plan.global_shapes[name] = [int(s) for s in sh.global_shape]
    if getattr(sh, "allow_shape_mismatch", False):
        plan.shape_mismatch_ok.add(name)


def _map_key(key, key_map):
    """The checkpoint key of a model key: the longest matching prefix replaced; None when a
    key_map is given and no prefix matches."""
    if not key_map:
        return key
    best = max((p for p in key_map if key.startswith(p)), key=len, default=None)
    return None if best is None else key_map[best] + key[len(best):]


def _walk(tree, path=""):
    """(path, leaf) of a nested dict/list; paths join keys with '/' and list indices with '#'."""
    if isinstance(tree, dict):
        for k, v in tree.items():
            yield from _walk(v, "%s/%s" % (path, k) if path else str(k))
    elif isinstance(tree, (list, tuple)):
        for i, v in enumerate(tree):
            yield from _walk(v, "%s#%d" % (path, i))
    else:
        yield path, tree


def check_against_checkpoint(client, plan, ask_service=False, missing_objects=None):
    """Every disagreement between the plan and the served checkpoint (its index: no byte moves), as
    lines: tensor keys and ShardedObject bytes entries it lacks, global shapes that differ, dtypes
    that cannot be cast, then what the service itself refuses (box_manifest: a box outside its
    tensor, a bad cast). Sets each box's "dtype" where the destination's differs from the stored
    one (bf16 / fp16 / fp32 casts). Given a list as `missing_objects`, absent ShardedObjects are
    appended to it instead of listed. The service's checks are asked for when a problem was found
    here or `ask_service` says one was found elsewhere; otherwise the receive's own manifest makes
    them (refusing before any byte moves), saving a round trip."""
    index = client.index()
    stored = {t["key"]: t for t in index["tensors"]}
    stored_bytes = {b["key"] for b in index["bytes"]}
    absent = [name for name, key in plan.objects.items() if key not in stored_bytes]
    problems = []
    if missing_objects is None:
        problems += ["%s: bytes entry %s (a ShardedObject) is not in the checkpoint" % (n, plan.objects[n])
                     for n in absent]
    else:  # lenient: the caller reports them
        missing_objects.extend(absent)
    for box in plan.boxes:
        problems += _box_problems(plan, box, stored.get(box["key"]))
    served = [b for b in plan.boxes if b["key"] in stored]
    if served and (problems or ask_service):
        try:
            client.box_manifest(served)
        except ShardcastError as e:
            problems.append("shardcastd: " + e.message)
    return problems


def _box_problems(plan, box, stored):
    """What is wrong with one box against its stored tensor ({key, dtype, shape} or None); sets
    the box's cast."""
    name, key, dst = box["name"], box["key"], box["tensor"]
    if stored is None:
        return ["%s: key %s is not in the checkpoint" % (name, key)]
    problems = []
    want, have = plan.global_shapes[name], list(stored["shape"])
    # allow_shape_mismatch (a padded vocab): only the first unstacked dimension may differ.
    lead = len(box["sizes"]) - dst.dim() if name in plan.shape_mismatch_ok else None
    if want != have and (lead is None or len(want) != len(have) or want[lead + 1:] != have[lead + 1:]):
        problems.append("%s: the model's global shape of %s is %s, the checkpoint's is %s" % (name, key, want, have))
    stored_dtype, dst_dtype = stored["dtype"], str(dst.dtype).replace("torch.", "")
    if dst_dtype != stored_dtype:
        if dst.dtype in _CASTS and stored_dtype in _STORED_CASTABLE:
            box["dtype"] = _CASTS[dst.dtype]
        else:
            problems.append("%s: the model holds %s, the checkpoint stores %s %s (no cast between them)" % (
                name, dst_dtype, key, stored_dtype))
    return problems


def _refuse(problems):
    raise ShardcastError(_INVALID_ARGUMENT, "refusing to load (nothing was transferred), %d problem(s):\n  %s" % (
        len(problems), "\n  ".join(problems)))


def load_plan(client, plan, strict=True):
    """Receives a BoxPlan's boxes in place and reads its ShardedObjects' bytes entries; refuses
    before any byte moves, listing every problem (with strict=False, ShardedObjects the checkpoint
    lacks are reported in "not_loaded" instead). Returns (report, {name: object value})."""
    problems = list(plan.problems)
    missing_objects = None if strict else []
    if plan.boxes or plan.objects:
        problems += check_against_checkpoint(client, plan, bool(problems), missing_objects)
    missing_objects = missing_objects or []
    if problems:
        _refuse(problems)
    start = time.monotonic()
    report = _receive_boxes(client, plan.boxes)
    wanted = {n: k for n, k in plan.objects.items() if n not in missing_objects}
    values = _read_objects(client, wanted)
    report["objects"] = len(values)
    report["seconds"] = time.monotonic() - start
    report["not_loaded"] = [
        {"name": n, "key": plan.objects[n], "reason": "bytes entry not in the checkpoint"} for n in missing_objects] + [
        {"name": n, "key": k, "reason": "not under any key_map prefix"} for n, k in plan.unmapped]
    return report, values


def _receive_boxes(client, boxes):
    """load_boxes in requests within the request limits (box_batches), every batch checked first; the summed report."""
    batches = box_batches(boxes)
    if len(batches) > 1:  # every batch checked by the service before the first one moves a byte
        for batch in batches:
            client.box_manifest(batch)
    report = {"bytes": 0, "shards": 0, "crc_checked": 0, "transports": []}
    with torch.no_grad():
        for batch in batches:
            r = client.load_boxes(batch, strict=True)
            for k in ("bytes", "shards", "crc_checked"):
                report[k] += r[k]
            report["transports"] += [t for t in r["transports"] if t not in report["transports"]]
    return report


def _read_objects(client, objects):
    """{name: value} of ShardedObjects from their bytes entries. Megatron saves each as
    torch.save([data]) and loads it through DCP's load_bytes, i.e. torch.load(weights_only=False):
    the checkpoint is trusted here exactly as dist_checkpointing.load trusts it."""
    if not objects:
        return {}
    payloads = client.read_bytes(sorted(set(objects.values())))
    values = {}
    for name, key in objects.items():
        loaded = torch.load(io.BytesIO(payloads[key]), weights_only=False)
        values[name] = loaded[0] if isinstance(loaded, list) and len(loaded) == 1 else loaded
    return values


def _apply_objects(model, values):
    """Sets ShardedObject values (`_extra_state`) on their modules by state-dict key, as
    model.load_state_dict(dist_checkpointing.load(...)) would; VPP names are "model<i>/<key>"."""
    chunks = model if isinstance(model, (list, tuple)) else [model]
    per_chunk = [{} for _ in chunks]
    for name, value in values.items():
        i, key = (0, name) if len(chunks) == 1 else (int(name.split("/", 1)[0][5:]), name.split("/", 1)[1])
        per_chunk[i][key] = value
    for chunk, sd in zip(chunks, per_chunk):
        if sd:
            unexpected = chunk.load_state_dict(sd, strict=False).unexpected_keys
            if unexpected:
                raise ShardcastError(_INVALID_ARGUMENT, "ShardedObjects with no module to take them: %s" % unexpected)


def load(model, client=None, *, key_map=None, strict=True):
    """Loads a Megatron-Core model (a module, or a list of virtual pipeline chunks) in place from the
    checkpoint shardcastd serves, each rank exactly the boxes its sharded state dict names.

    client: a shardcast.Client (None: one from $SHARDCAST_ADDR / $SHARDCAST_TOKEN_FILE).
    key_map: {model key prefix: checkpoint key prefix}; only keys under its prefixes are loaded.
    strict: a ShardedObject (`_extra_state`) whose bytes entry the checkpoint lacks is an error;
        with strict=False it is left as it is and reported in "not_loaded". ShardedObjects are
        read from the checkpoint's bytes entries (torch.load, trusted as dist_checkpointing.load
        trusts them) and set through the module's load_state_dict (set_extra_state).
    Before any byte moves, a model that disagrees with the checkpoint (a key it lacks, another
    global shape, a dtype that cannot be cast, a box outside the tensor) is refused with a
    ShardcastError listing every problem.
    Returns {"bytes", "shards", "crc_checked", "objects", "seconds", "transports", "not_loaded":
    [{name, key, reason}]}."""
    plan = boxes_for(model, key_map)
    if client is None:
        with Client() as own:
            report, values = load_plan(own, plan, strict)
    else:
        report, values = load_plan(client, plan, strict)
    _apply_objects(model, values)
    return report


class ShardcastLoadStrategy(TorchDistLoadShardedStrategy):
    """A Megatron load strategy that fills ShardedTensors through shardcastd:

        dist_checkpointing.load(sd, ckpt_dir, sharded_strategy=ShardcastLoadStrategy(client))

    Tensors and ShardedObjects come from the service (tensors bit-exact and in place, objects from
    the bytes entries; every problem listed before any byte moves). What Megatron reads itself
    still comes from ckpt_dir: metadata.json and the common state (dist_checkpointing.load reads
    them before calling the strategy), and the checkpoint metadata behind
    load_tensors_metadata / load_sharded_metadata (inherited from TorchDistLoadShardedStrategy)."""

    def __init__(self, client, key_map=None, **kwargs):
        super().__init__(**kwargs)
        self.client = client
        self.key_map = key_map
        self.last_report = None

    def load(self, sharded_state_dict, checkpoint_dir, async_strategy="mcore"):
        plan = plan_state_dict(sharded_state_dict, self.key_map)
        self.last_report, values = load_plan(self.client, plan, strict=True)
        paths = iter(path for path, _ in _walk(sharded_state_dict))
        return _replace_leaves(sharded_state_dict, lambda v: _loaded_value(v, values, next(paths)))


def _loaded_value(leaf, values, path):
    """What dist_checkpointing's strategies return for a leaf: a ShardedTensor's (filled) data, a
    ShardedObject's value."""
    if isinstance(leaf, ShardedTensor):
        return leaf.data
    if isinstance(leaf, ShardedObject):
        return values[path]
    return leaf


def _replace_leaves(tree, fn):
    if isinstance(tree, dict):
        return {k: _replace_leaves(v, fn) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return [_replace_leaves(v, fn) for v in tree]
    return fn(tree)
