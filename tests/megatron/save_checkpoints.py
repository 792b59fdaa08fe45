"""Writes real Megatron-Core torch_dist checkpoints with Megatron's own `dist_checkpointing.save`,
on the CPU over gloo: the tiny GPT and RADIOViTModel of models.py, every value randomized, saved
at TP 1, TP 2 and PP 2 (GPT only: RADIO is not pipelined) into OUT/<model>_tp<T>_pp<P>/, by one
gloo world of 2 processes.

    python save_checkpoints.py OUT      (the venv of tools/setup_megatron.sh)

"""
import os
import sys

import torch.multiprocessing as mp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import models  # noqa: E402

# (model, tp, pp): the saved layouts.
# (model, tp, pp[, key prefix]): RADIO is also saved under "model.vision_model.", as a MIMO/VLM
# checkpoint holds it (the --load-vision-from warm start's source).
LAYOUTS = [("gpt", 1, 1), ("gpt", 2, 1), ("gpt", 1, 2), ("radio", 1, 1), ("radio", 2, 1),
           ("radio", 2, 1, "model.vision_model.")]
WORLD = 2


def name(model, tp, pp, prefix=""):
    return "%s%s_tp%d_pp%d" % (model, "_vision" if prefix else "", tp, pp)


def _save_all(rank, port, layouts, out):
    """One rank of the 2-process gloo world: every layout in turn (TP 1 runs as DP 2, whose second
    replica Megatron does not write)."""
    import torch.distributed as dist
    from megatron.core import dist_checkpointing
    from megatron.core import parallel_state as ps
    models.allow_save_without_cuda()
    import os as _os
    _os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    for model, tp, pp, *prefix in layouts:
        ps.initialize_model_parallel(tp, pp)
        module = models.build(model)
        models.randomize(module, seed=1000 * (tp + 10 * pp) + rank)
        dist_checkpointing.save(module.sharded_state_dict(prefix="".join(prefix)),
                                os.path.join(out, name(model, tp, pp, *prefix)))
        ps.destroy_model_parallel()
    dist.destroy_process_group()


def save_all(out, layouts=LAYOUTS):
    """Saves every layout under `out`; returns {name: folder}. Megatron is imported here once and
    the two workers are forked (importing megatron.core costs seconds per process)."""
    models.import_megatron()
    folders = {name(*layout): os.path.join(out, name(*layout)) for layout in layouts}
    for folder in folders.values():
        os.makedirs(folder, exist_ok=True)
    mp.start_processes(_save_all, args=(models.free_port(), layouts, out), nprocs=WORLD, start_method="fork")
    return folders


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: save_checkpoints.py OUT")
    for n, f in save_all(sys.argv[1]).items():
        print(n, f)
