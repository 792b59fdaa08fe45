"""shardcast.megatron: load Megatron-Core models through shardcastd from the model's own sharding
metadata, with no layout rules to write.

    import shardcast.megatron
    report = shardcast.megatron.load(model)            # client from $SHARDCAST_ADDR

`model.sharded_state_dict()` already says, for every local tensor, its checkpoint key, global shape
and offset, local shape, the stacked-layer axes (`prepend_axis_num`) and the GLU factory. This
module turns each `ShardedTensor` into a box request ({key, offsets, sizes, destination}) and lets
the service fill the model's parameters and buffers in place, so TP, PP, virtual pipelining and
their combinations load as `dist_checkpointing.load` loads them (SwiGLU's `[gate_all; up_all]`
included).

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
import math
import os
import time

import torch
from megatron.core.dist_checkpointing import ShardedObject, ShardedTensor
from megatron.core.dist_checkpointing.dict_utils import extract_matching_values, merge
from megatron.core.dist_checkpointing.mapping import ShardedTensorFactory, apply_factories
from megatron.core.dist_checkpointing.strategies.torch import TorchDistLoadShardedStrategy

from ._client import Client, ShardcastError

__all__ = ["BoxPlan", "ShardcastLoadStrategy", "boxes_for", "load"]

_INVALID_ARGUMENT = 3
_CASTS = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}
_STORED_CASTABLE = ("float32", "bfloat16", "float16")
_MAX_BOXES = 16384  # a request's limit (README "Request limits"); larger plans go in batches


@dataclasses.dataclass
class BoxPlan:
    """What a sharded state dict asks for.

    boxes: box requests as Client.load_boxes takes them (name, key, offsets, sizes, tensor).
    global_shapes: {box name: the model's global shape of its key} (checked against the checkpoint).
    shape_mismatch_ok: names whose ShardedTensor allows a different stored shape (padded vocab).
    objects: [(name, key, has_data)] of the ShardedObjects (`_extra_state`): bytes entries, which
        shardcastd does not serve; has_data says whether the model holds a value to restore.
    unmapped: [(name, key)] of ShardedTensors under no key_map prefix (not requested).
    problems: what cannot be a box (flattened_range, non-contiguous data, ...).
    """
    boxes: list = dataclasses.field(default_factory=list)
    global_shapes: dict = dataclasses.field(default_factory=dict)
    shape_mismatch_ok: set = dataclasses.field(default_factory=set)
    objects: list = dataclasses.field(default_factory=list)
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
            plan.objects.append((path, value.key, value.data is not None))
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


def check_against_checkpoint(client, plan, ask_service=False):
    """Every disagreement between the plan and the served checkpoint, as lines: keys the checkpoint
    lacks, global shapes that differ, dtypes that cannot be cast, and then what the service refuses
    (box_manifest: a box outside its tensor, a bad cast). Sets each box's "dtype" where the
    destination's differs from the stored one (bf16 / fp16 / fp32 casts). The service is asked
    when a problem was found here or `ask_service` says one was found elsewhere; otherwise the
    receive's own manifest makes the same checks (refusing before any byte moves), saving a round
    trip."""
    # The stored keys, dtypes and global shapes: a whole-tensor manifest (whole tensors alias the
    # service's copies; no byte moves), narrowed to the keys' common prefix.
    prefix = os.path.commonprefix([b["key"] for b in plan.boxes])
    try:
        stored = {s["key"]: s for s in client.manifest(1, 0, layout="replicate", prefix=prefix or None)}
    except ShardcastError as e:
        if e.code != "NOT_FOUND":  # NOT_FOUND: no stored key has that prefix (each is listed below)
            raise
        stored = {}
    problems = []
    for box in plan.boxes:
        name, key, dst = box["name"], box["key"], box["tensor"]
        s = stored.get(key)
        if s is None:
            problems.append("%s: key %s is not in the checkpoint" % (name, key))
            continue
        want, have = plan.global_shapes[name], list(s["shape"])
        # allow_shape_mismatch (a padded vocab): only the first unstacked dimension may differ.
        lead = len(box["sizes"]) - dst.dim() if name in plan.shape_mismatch_ok else None
        if want != have and (lead is None or len(want) != len(have) or want[lead + 1:] != have[lead + 1:]):
            problems.append("%s: the model's global shape of %s is %s, the checkpoint's is %s" % (
                name, key, want, have))
        stored_dtype = s["dtype"]
        dst_dtype = str(dst.dtype).replace("torch.", "")
        if dst_dtype != stored_dtype:
            if dst.dtype in _CASTS and stored_dtype in _STORED_CASTABLE:
                box["dtype"] = _CASTS[dst.dtype]
            else:
                problems.append("%s: the model holds %s, the checkpoint stores %s %s (no cast between them)" % (
                    name, dst_dtype, key, stored_dtype))
    served = [b for b in plan.boxes if b["key"] in stored]
    if served and (problems or ask_service):
        try:
            client.box_manifest(served)  # the service's own checks (a box outside its tensor, casts)
        except ShardcastError as e:
            problems.append("shardcastd: " + e.message)
    return problems


def _refuse(problems):
    raise ShardcastError(_INVALID_ARGUMENT, "refusing to load (nothing was transferred), %d problem(s):\n  %s" % (
        len(problems), "\n  ".join(problems)))


def load_plan(client, plan, strict=True):
    """Receives a BoxPlan's boxes in place; refuses before any byte moves, listing every problem.
    Returns the report (see load)."""
    problems = list(plan.problems)
    if strict:
        problems += ["%s: ShardedObject %s holds a value, but shardcastd does not serve bytes entries "
                     "(pass strict=False to leave it as it is)" % (name, key)
                     for name, key, has_data in plan.objects if has_data]
    if plan.boxes:
        problems += check_against_checkpoint(client, plan, ask_service=bool(problems))
    if problems:
        _refuse(problems)
    batches = [plan.boxes[i:i + _MAX_BOXES] for i in range(0, len(plan.boxes), _MAX_BOXES)]
    if len(batches) > 1:  # every batch checked by the service before the first one moves a byte
        for batch in batches:
            client.box_manifest(batch)
    start = time.monotonic()
    report = {"bytes": 0, "shards": 0, "crc_checked": 0, "transports": []}
    with torch.no_grad():
        for batch in batches:
            r = client.load_boxes(batch, strict=True)
            for k in ("bytes", "shards", "crc_checked"):
                report[k] += r[k]
            report["transports"] += [t for t in r["transports"] if t not in report["transports"]]
    report["seconds"] = time.monotonic() - start
    report["not_loaded"] = [
        {"name": n, "key": k, "reason": "ShardedObject: bytes entries are not served by shardcastd" +
         ("" if has else " (the model holds no value for it)")} for n, k, has in plan.objects] + [
        {"name": n, "key": k, "reason": "not under any key_map prefix"} for n, k in plan.unmapped]
    return report


def load(model, client=None, *, key_map=None, strict=True):
    """Loads a Megatron-Core model (a module, or a list of virtual pipeline chunks) in place from the
    checkpoint shardcastd serves, each rank exactly the boxes its sharded state dict names.

    client: a shardcast.Client (None: one from $SHARDCAST_ADDR / $SHARDCAST_TOKEN_FILE).
    key_map: {model key prefix: checkpoint key prefix}; only keys under its prefixes are loaded.
    strict: refuse when a ShardedObject (`_extra_state`) holds a value: shardcastd serves tensors
        only; with strict=False such objects are left as they are. Objects the model holds no
        value for (the local spec's linear layers) never block.
    Before any byte moves, a model that disagrees with the checkpoint (a key it lacks, another
    global shape, a dtype that cannot be cast, a box outside the tensor) is refused with a
    ShardcastError listing every problem.
    Returns {"bytes", "shards", "crc_checked", "seconds", "transports", "not_loaded": [{name, key,
    reason}]}."""
    plan = boxes_for(model, key_map)
    if client is None:
        with Client() as own:
            return load_plan(own, plan, strict)
    return load_plan(client, plan, strict)


class ShardcastLoadStrategy(TorchDistLoadShardedStrategy):
    """A Megatron load strategy that fills ShardedTensors through shardcastd:

        dist_checkpointing.load(sd, ckpt_dir, sharded_strategy=ShardcastLoadStrategy(client))

    Tensors come from the service (bit-exact, in place, every problem listed before any byte
    moves). What Megatron reads itself still comes from ckpt_dir: metadata.json, the common state,
    the checkpoint metadata behind load_tensors_metadata / load_sharded_metadata, and the
    ShardedObjects (bytes entries, which shardcastd does not serve yet), read by the
    TorchDistLoadShardedStrategy this class extends."""

    def __init__(self, client, key_map=None, **kwargs):
        super().__init__(**kwargs)
        self.client = client
        self.key_map = key_map
        self.last_report = None

    def load(self, sharded_state_dict, checkpoint_dir, async_strategy="mcore"):
        tensors, rest = extract_matching_values(sharded_state_dict, lambda v: isinstance(v, ShardedTensor))
        plan = plan_state_dict(tensors, self.key_map)
        self.last_report = load_plan(self.client, plan, strict=False)
        loaded = _replace_leaves(tensors, lambda sh: sh.data)
        objects, _ = extract_matching_values(rest, lambda v: isinstance(v, ShardedObject))
        if objects:
            merge(loaded, super().load(objects, checkpoint_dir, async_strategy))
        return loaded


def _replace_leaves(tree, fn):
    if isinstance(tree, dict):
        return {k: _replace_leaves(v, fn) for k, v in tree.items()}
    if isinstance(tree, list):
        return [_replace_leaves(v, fn) for v in tree]
    return fn(tree)
