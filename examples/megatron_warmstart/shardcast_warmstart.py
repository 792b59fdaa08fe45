"""Warm-start a Megatron vision encoder from a shardcast sidecar: what the `--load-vision-from PATH`
flag of Megatron's hetero MIMO training loop does, but served by shardcastd.

Call it from the training script after the model and optimizer exist:

    from shardcast_warmstart import prepare_vision_warm_start, warm_start_vision_encoder
    client = prepare_vision_warm_start(tp_size, tp_rank, torch.cuda.current_device())  # optional, early
    ... build the model and the optimizer ...
    warm_start_vision_encoder(model, optimizer, iteration=iteration, is_encoder_rank=is_encoder,
                              tp_size=mpu.get_tensor_model_parallel_world_size(),
                              tp_rank=mpu.get_tensor_model_parallel_rank(), client=client)

prepare_vision_warm_start lets the sidecar cut this rank's shards and forms the NCCL
communicators on a thread while the model is built, so that the warm start itself only moves bytes.

Semantics (as --load-vision-from):
  * only on encoder ranks, and only when no full checkpoint was resumed (iteration == 0);
  * the checkpoint's `model.vision_model.` keys are renamed to the encoder's module path
    (`vision_submodule.encoders.radio_encoder.radio_model.` by default);
  * strict: every encoder parameter must come from the checkpoint and every served tensor must
    land somewhere, else nothing is loaded and the error lists the names;
  * afterwards the optimizer's fp32 main params are rebuilt from the loaded weights
    (Megatron's `optimizer.reload_model_params()`).
Run on GPUs by run_toy.sh (a toy encoder with Megatron names, 2 GPUs; see README.md there).
"""
import os
import time

import shardcast

CHECKPOINT_PREFIX = "model.vision_model."
MODULE_PREFIX = "vision_submodule.encoders.radio_encoder.radio_model."


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
