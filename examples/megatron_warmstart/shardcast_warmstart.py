"""Warm-start a Megatron vision encoder from a shardcast sidecar: what the `--load-vision-from PATH`
flag of Megatron's hetero MIMO training loop does, but served by shardcastd.

The one call, for a Megatron-Core model (it has `sharded_state_dict()`), after the model and the
optimizer exist:

    from shardcast_warmstart import warm_start_vision
    warm_start_vision(model, optimizer, iteration=iteration, is_encoder_rank=is_encoder)

It is `shardcast.megatron.load(model, client, key_map={MODULE_PREFIX: CHECKPOINT_PREFIX})`: each
rank asks for exactly the boxes its own sharded state dict names (TP, PP, stacked layers, SwiGLU
halves as Megatron saved them), so there are no layout rules to get right.

Semantics (as --load-vision-from):
  * only on encoder ranks, and only when no full checkpoint was resumed (iteration == 0);
  * the checkpoint's `model.vision_model.` keys feed the encoder's module path
    (`vision_submodule.encoders.radio_encoder.radio_model.` by default); the rest of the model (the
    language model) is left as it is (listed in the report's "not_loaded");
  * strict: a key the checkpoint lacks, another global shape or dtype, or a box outside a tensor
    refuses the load before any byte moves, listing every problem;
  * afterwards the optimizer's fp32 main params are rebuilt from the loaded weights
    (Megatron's `optimizer.reload_model_params()`).

For models that are not Megatron-Core modules (no `sharded_state_dict()`; e.g. the toy encoder of
run_toy.sh), `warm_start_vision_encoder` below is the regex route: a TP layout (`layout`, `rules`)
and a rename, with `prepare_vision_warm_start` to cut shards and form NCCL communicators early.
"""
import os
import time

import shardcast

CHECKPOINT_PREFIX = "model.vision_model."
MODULE_PREFIX = "vision_submodule.encoders.radio_encoder.radio_model."


def warm_start_vision(model, optimizer, iteration, is_encoder_rank, client=None, checkpoint_prefix=CHECKPOINT_PREFIX,
                      module_prefix=MODULE_PREFIX, log=print):
    """--load-vision-from through shardcast.megatron (see the module docstring). `model`: the
    Megatron-Core model (or its list of virtual pipeline chunks); `client`: a shardcast.Client
    (None: from $SHARDCAST_ADDR). Returns the load report, or None where nothing is loaded."""
    if not is_encoder_rank:
        return None
    if iteration and iteration > 0:
        log("shardcast: a checkpoint was resumed (iteration %d): not warm-starting the encoder" % iteration)
        return None
    import shardcast.megatron
    t0 = time.perf_counter()
    report = shardcast.megatron.load(model, client, key_map={module_prefix: checkpoint_prefix})
    if report["shards"] == 0:
        raise RuntimeError("no tensor of this model is under %r: is module_prefix right?" % module_prefix)
    if optimizer is not None and hasattr(optimizer, "reload_model_params"):
        optimizer.reload_model_params()  # rebuild fp32 main params from the loaded weights
    log("shardcast: warm-started %d encoder boxes (%.1f MB) in %.1f ms over %s" % (
        report["shards"], report["bytes"] / 1e6, (time.perf_counter() - t0) * 1e3, "+".join(report["transports"])))
    return report


# ---- the regex route, for models without Megatron's sharded_state_dict ----------------------------

def prepare_vision_warm_start(tp_size, tp_rank, device, address=None, checkpoint_prefix=CHECKPOINT_PREFIX,
                              module_prefix=MODULE_PREFIX, layout="megatron", rules=(), timeout=120.0):
    """Optional, first thing on an encoder rank: connects and starts, on a thread, what the warm
    start will need (the sidecar cuts this rank's shards; NCCL communicators are formed), while the
    script builds its model. Pass the returned client to warm_start_vision_encoder."""
    client = shardcast.Client(address or os.environ.get("SHARDCAST_ADDR"), timeout=timeout)
    client.warm_up(tp_size, tp_rank, device, layout=layout, rules=rules, prefix=checkpoint_prefix,
                   rename={checkpoint_prefix: module_prefix}, background=True)
    return client


def warm_start_vision_encoder(model, optimizer, iteration, is_encoder_rank, tp_size, tp_rank, address=None,
                              checkpoint_prefix=CHECKPOINT_PREFIX, module_prefix=MODULE_PREFIX, layout="megatron",
                              rules=(), timeout=120.0, log=print, client=None):
    """The regex route: the encoder's named_parameters() filled by a TP layout request (strict)."""
    if not is_encoder_rank:
        return None
    if iteration and iteration > 0:
        log("shardcast: a checkpoint was resumed (iteration %d): not warm-starting the encoder" % iteration)
        if client is not None:
            client.close()
        return None
    # The encoder's own parameters, by their full names in this model.
    params = {name: p for name, p in model.named_parameters() if name.startswith(module_prefix)}
    if not params:
        raise RuntimeError("no parameter of this model starts with %r: is module_prefix right?" % module_prefix)
    t0 = time.perf_counter()
    if client is None:
        client = shardcast.Client(address or os.environ.get("SHARDCAST_ADDR"), timeout=timeout)
    with client:
        report = client.load_into({n: p.data for n, p in params.items()}, tp_size, tp_rank, layout=layout,
                                  rules=rules, prefix=checkpoint_prefix, rename={checkpoint_prefix: module_prefix},
                                  strict=True)
    if optimizer is not None and hasattr(optimizer, "reload_model_params"):
        optimizer.reload_model_params()  # rebuild fp32 main params from the loaded weights
    log("shardcast: warm-started %d encoder tensors (%.1f MB) in %.1f ms over %s" % (
        report["shards"], report["bytes"] / 1e6, (time.perf_counter() - t0) * 1e3, "+".join(report["transports"])))
    return report
