"""One gloo process of tests/torch_adapter_test.py (run with a Python that has torch).

  save OUT: builds the state dict below on a mesh of the given shape from seed 1 and saves it
            with torch.distributed.checkpoint.save (FileSystemWriter).
  load OUT: builds the same state dict on its own mesh from seed 2 (other values) and loads it
            three ways: dcp.load from the files (the reference), shardcast.torch.load, and
            dcp.load through shardcast.torch.StorageReader; every local tensor must equal the
            reference bit for bit and every non-tensor value must equal it, and no tensor may
            still hold its seed-2 values.
Rank, world size and the rendezvous come from RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT; the
mesh from --mesh (e.g. 2 or 2x2); shardcastd's address from SHARDCAST_ADDR. Prints "ok" at the end.
"""
import argparse
import sys

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.tensor import DTensor, Replicate, Shard, distribute_tensor

# key -> (global shape, dtype, placements on a 1-D mesh, placements on a 2-D mesh); None: a plain tensor.
TENSORS = {
    "emb": ((16, 8), torch.float32, [Shard(0)], [Shard(0), Shard(1)]),
    "proj": ((8, 12), torch.bfloat16, [Shard(1)], [Replicate(), Shard(1)]),
    "norm": ((8,), torch.float32, [Replicate()], [Replicate(), Replicate()]),
    "uneven": ((7, 5), torch.float16, [Shard(0)], [Shard(1), Shard(0)]),
    "stacked": ((3, 6, 4), torch.float32, [Shard(2)], [Shard(0), Shard(2)]),
    "plain": ((5, 3), torch.float16, None, None),
    "tview": ((4, 3), torch.int32, None, None),   # loaded into a transposed (non-contiguous) view
    "cast": ((4, 6), torch.bfloat16, [Shard(1)], [Shard(0), Replicate()]),  # loaded into float32
    "scalar": ((), torch.float64, None, None),
}


def random_tensor(shape, dtype, gen):
    return torch.randn(shape, generator=gen, dtype=torch.float32).to(dtype)


def build(mesh, seed):
    """The state dict: DTensors and plain tensors nested under "model", non-tensor values under
    "extra" and at the top (all randomized from `seed`; seed 1 is the saved one)."""
    gen = torch.Generator().manual_seed(seed)
    model = {}
    for key, (shape, dtype, p1, p2) in TENSORS.items():
        if key == "tview" and seed != 1:
            t = torch.randint(-1000, 1000, shape[::-1], generator=gen, dtype=dtype).t()
        elif key == "tview":
            t = torch.randint(-1000, 1000, shape, generator=gen, dtype=dtype)
        else:
            t = random_tensor(shape, dtype if key != "cast" or seed == 1 else torch.float32, gen)
        placements = p1 if mesh.ndim == 1 else p2
        model[key] = t if placements is None else distribute_tensor(t, mesh, placements)
    values = torch.randint(0, 1 << 30, (3,), generator=gen).tolist()
    return {"model": model, "extra": {"step": values[0], "names": ["a", str(values[1])]}, "lr": values[2] / 7.0}


def local(t):
    return t.to_local() if isinstance(t, DTensor) else t


def bits(t):
    t = local(t).contiguous()
    return t.view(torch.uint8) if t.dim() > 0 else t.reshape(1).view(torch.uint8)


def compare(name, got, ref, before):
    """Problems of `got` against the reference `ref` (and `before`, the seed-2 values)."""
    problems = []
    for key in ref["model"]:
        g, r, b = got["model"][key], ref["model"][key], before["model"][key]
        if type(g) is not type(r) or (isinstance(g, DTensor) and g.placements != r.placements):
            problems.append("%s: model.%s changed type or placements" % (name, key))
        elif not torch.equal(bits(g), bits(r)):
            problems.append("%s: model.%s differs from dcp.load" % (name, key))
        elif local(r).numel() > 0 and torch.equal(bits(b), bits(r)):
            problems.append("%s: model.%s: seed 2 equals the checkpoint (the test proves nothing)" % (name, key))
    for path in (("extra", "step"), ("extra", "names"), ("lr",)):
        g, r = got, ref
        for p in path:
            g, r = g[p], r[p]
        if g != r:
            problems.append("%s: %s is %r, dcp.load gives %r" % (name, ".".join(path), g, r))
    return problems


def check_refusals(mesh, client):
    """A state dict with three problems: all named in one error, and nothing received."""
    import shardcast.torch
    from torch.distributed.tensor import Partial
    bad = build(mesh, seed=3)
    emb_before = local(bad["model"]["emb"]).clone()
    bad["model"]["plain"] = torch.zeros(5, 4, dtype=torch.float16)            # shape differs
    bad["model"]["missing"] = torch.zeros(2)                                  # not in the checkpoint
    bad["model"]["norm"] = DTensor.from_local(torch.zeros(8), mesh, [Partial()] * mesh.ndim)  # refused
    try:
        shardcast.torch.load(bad, client)
    except shardcast.ShardcastError as e:
        message = str(e)
    else:
        return ["refusals: shardcast.torch.load accepted a bad state dict"]
    problems = ["refusals: %r not in: %s" % (w, message) for w in
                ("'model.plain' has shape [5, 4]", "'model.missing' is not in the checkpoint", "Partial")
                if w not in message]
    if not torch.equal(local(bad["model"]["emb"]), emb_before):
        problems.append("refusals: model.emb was written although the load was refused")
    return problems


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["save", "load"])
    ap.add_argument("ckpt")
    ap.add_argument("--mesh", default="2")
    args = ap.parse_args()
    dist.init_process_group("gloo")
    mesh = init_device_mesh("cpu", tuple(int(n) for n in args.mesh.split("x")))
    if args.mode == "save":
        dcp.save(build(mesh, seed=1), storage_writer=dcp.FileSystemWriter(args.ckpt))
    else:
        import shardcast.torch
        before, ref, via_load, via_reader = (build(mesh, seed=2) for _ in range(4))  # the same values, 4 copies
        dcp.load(ref, storage_reader=dcp.FileSystemReader(args.ckpt))
        ptrs = [{k: local(v).data_ptr() for k, v in sd["model"].items()} for sd in (via_load, via_reader)]
        with shardcast.Client() as client:
            shardcast.torch.load(via_load, client)
            dcp.load(via_reader, storage_reader=shardcast.torch.StorageReader(client))
            problems = check_refusals(mesh, client)
        problems += compare("shardcast.torch.load", via_load, ref, before)
        problems += compare("StorageReader", via_reader, ref, before)
        for name, sd, before_ptrs in (("shardcast.torch.load", via_load, ptrs[0]), ("StorageReader", via_reader, ptrs[1])):
            problems += ["%s: model.%s was not loaded in place" % (name, k) for k, v in sd["model"].items()
                         if local(v).data_ptr() != before_ptrs[k]]
        if problems:
            print("rank %d:\n  %s" % (dist.get_rank(), "\n  ".join(problems)), file=sys.stderr)
            sys.exit(1)
    dist.barrier()
    dist.destroy_process_group()
    print("ok")


if __name__ == "__main__":
    main()
