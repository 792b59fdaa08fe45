"""A toy ViT encoder with Megatron-Core parameter names and tensor-parallel (TP) slicing, for the
runnable warm-start example and the GPU checks. Needs PyTorch.

  * `full_state_dict(cfg)` builds the unsharded weights as a Megatron hetero MIMO checkpoint holds
    them (`model.vision_model.*`, plus an LLM part the encoder ranks never read);
  * `save_megatron_checkpoint(path, ...)` writes it with PyTorch's own `dcp.save` in Megatron's
    directory layout (iter_0000100/ and latest_checkpointed_iteration.txt);
  * `megatron_slice(name, t, tp, rank)` is PyTorch slicing by Megatron's TP rules, written
    independently of shardcast (the reference the received shards are compared with), and
    `same_bits(a, b)` the byte-for-byte comparison;
  * `ToyViT(cfg, tp, group)` is the TP-sharded encoder (column/row parallel linears, fused QKV,
    layer norms fused into the linears as Transformer Engine names them); it computes in fp32 so
    that a TP 2 forward can be compared closely with a TP 1 forward;
  * `MixedPrecisionOptimizer` keeps fp32 main params, as Megatron's optimizers do, and rebuilds
    them from the model with `reload_model_params()`.
"""
import math
import os

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

CONFIGS = {
    # hidden, heads, ffn, layers, patch_dim, patches
    "tiny": dict(hidden=256, heads=8, ffn=1024, layers=4, patch_dim=192, patches=64),
    "small": dict(hidden=768, heads=12, ffn=3072, layers=12, patch_dim=768, patches=196),
    "large": dict(hidden=1024, heads=16, ffn=4096, layers=24, patch_dim=768, patches=256),
}

COLUMN = ("linear_qkv.weight", "linear_qkv.bias", "linear_fc1.weight", "linear_fc1.bias", "embedder.weight",
          "embedder.bias")
ROW = ("linear_proj.weight", "linear_fc2.weight")


def megatron_slice(name, t, tp, rank):
    """This TP rank's part of a full tensor, by Megatron's rules, with PyTorch slicing."""
    if name.endswith(COLUMN):
        return t.chunk(tp, 0)[rank]
    if name.endswith(ROW):
        return t.chunk(tp, 1)[rank]
    return t  # layer norms, biases of row-parallel linears, position embeddings: replicated


def same_bits(a, b):
    """Same shape, dtype and bytes (NaN payloads and signed zeros included), wherever each lives."""
    return a.shape == b.shape and a.dtype == b.dtype and torch.equal(
        a.reshape(-1).view(torch.uint8), b.to(a.device).reshape(-1).view(torch.uint8))


def encoder_shapes(cfg):
    """Full (TP 1) shapes of the encoder's tensors, by Megatron name."""
    h, f, p = cfg["hidden"], cfg["ffn"], cfg["patch_dim"]
    shapes = {"embedder.weight": (h, p), "embedder.bias": (h,), "position_embeddings": (1, cfg["patches"], h),
              "decoder.final_layernorm.weight": (h,), "decoder.final_layernorm.bias": (h,)}
    for i in range(cfg["layers"]):
        l = "decoder.layers.%d." % i
        shapes.update({
            l + "self_attention.linear_qkv.layer_norm_weight": (h,),
            l + "self_attention.linear_qkv.layer_norm_bias": (h,),
            l + "self_attention.linear_qkv.weight": (3 * h, h),
            l + "self_attention.linear_qkv.bias": (3 * h,),
            l + "self_attention.linear_proj.weight": (h, h),
            l + "self_attention.linear_proj.bias": (h,),
            l + "mlp.linear_fc1.layer_norm_weight": (h,),
            l + "mlp.linear_fc1.layer_norm_bias": (h,),
            l + "mlp.linear_fc1.weight": (f, h),
            l + "mlp.linear_fc1.bias": (f,),
            l + "mlp.linear_fc2.weight": (h, f),
            l + "mlp.linear_fc2.bias": (h,),
        })
    return shapes


def full_state_dict(cfg, seed=1234, dtype=torch.bfloat16, llm_mb=8):
    """The checkpoint's tensors: the encoder under model.vision_model., and an LLM part."""
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for name, shape in encoder_shapes(cfg).items():
        if "layer_norm_weight" in name or name.endswith("final_layernorm.weight"):
            t = 1.0 + 0.1 * torch.randn(shape, generator=g)
        else:
            t = torch.randn(shape, generator=g) / math.sqrt(shape[-1])
        sd["model.vision_model." + name] = t.to(dtype)
    n = max(1, llm_mb * (1 << 20) // 2 // 4096)
    sd["model.language_model.embedding.word_embeddings.weight"] = torch.randn((n, 4096), generator=g).to(dtype)
    return sd


def save_megatron_checkpoint(path, cfg, iteration=100, seed=1234, llm_mb=8):
    """dcp.save of full_state_dict in Megatron's layout; returns the iteration folder."""
    import torch.distributed.checkpoint as dcp
    it_dir = os.path.join(path, "iter_%07d" % iteration)
    os.makedirs(it_dir, exist_ok=True)
    dcp.save(full_state_dict(cfg, seed=seed, llm_mb=llm_mb), storage_writer=dcp.FileSystemWriter(it_dir),
             no_dist=True)
    with open(os.path.join(path, "latest_checkpointed_iteration.txt"), "w") as f:
        f.write("%d\n" % iteration)
    return it_dir


def load_full_with_pytorch(path_or_iter_dir, prefix="model.vision_model."):
    """PyTorch's own way: dcp.load every tensor under `prefix` into CPU memory."""
    import torch.distributed.checkpoint as dcp
    d = path_or_iter_dir
    tracker = os.path.join(d, "latest_checkpointed_iteration.txt")
    if os.path.exists(tracker):
        d = os.path.join(d, "iter_%07d" % int(open(tracker).read().strip()))
    md = dcp.FileSystemReader(d).read_metadata()
    sd = {k: torch.empty(v.size, dtype=v.properties.dtype) for k, v in md.state_dict_metadata.items()
          if hasattr(v, "size") and k.startswith(prefix)}
    dcp.load(sd, storage_reader=dcp.FileSystemReader(d), no_dist=True)
    return sd


class _ReduceFromTP(torch.autograd.Function):
    """Sum of the TP ranks' partial outputs (row-parallel); the gradient passes through."""

    @staticmethod
    def forward(ctx, x, group):
        x = x.clone()
        dist.all_reduce(x, group=group)
        return x

    @staticmethod
    def backward(ctx, g):
        return g, None


class _CopyToTP(torch.autograd.Function):
    """A replicated input of a column-parallel layer; its gradient is summed over the TP ranks."""

    @staticmethod
    def forward(ctx, x, group):
        ctx.group = group
        return x

    @staticmethod
    def backward(ctx, g):
        g = g.clone()
        dist.all_reduce(g, group=ctx.group)
        return g, None


class _GatherFromTP(torch.autograd.Function):
    """Concatenates the TP ranks' column-parallel outputs on the last dim."""

    @staticmethod
    def forward(ctx, x, group, tp):
        ctx.group, ctx.tp = group, tp
        parts = [torch.empty_like(x) for _ in range(tp)]
        dist.all_gather(parts, x.contiguous(), group=group)
        return torch.cat(parts, dim=-1)

    @staticmethod
    def backward(ctx, g):
        return g.chunk(ctx.tp, dim=-1)[dist.get_rank(ctx.group)].contiguous(), None, None


class _Group:
    def __init__(self, tp, group):
        self.tp, self.group = tp, group

    def reduce(self, x):
        return _ReduceFromTP.apply(x, self.group) if self.tp > 1 else x

    def copy(self, x):
        return _CopyToTP.apply(x, self.group) if self.tp > 1 else x

    def gather_last(self, x):
        return _GatherFromTP.apply(x, self.group, self.tp) if self.tp > 1 else x


def _param(shape, dtype, device):
    return nn.Parameter(torch.empty(shape, dtype=dtype, device=device))


class _Linear(nn.Module):
    """A Megatron linear: `weight` (and `bias`), optionally with a fused pre-layer-norm
    (`layer_norm_weight`/`layer_norm_bias`, as Transformer Engine names them)."""

    def __init__(self, out_f, in_f, dtype, device, bias=True, norm=None):
        super().__init__()
        self.weight = _param((out_f, in_f), dtype, device)
        if bias:
            self.bias = _param((out_f,), dtype, device)
        if norm:
            self.layer_norm_weight = _param((norm,), dtype, device)
            self.layer_norm_bias = _param((norm,), dtype, device)

    def forward(self, x, add_bias=True):
        if hasattr(self, "layer_norm_weight"):
            x = F.layer_norm(x, x.shape[-1:], self.layer_norm_weight.float(), self.layer_norm_bias.float())
        y = x @ self.weight.float().t()
        if add_bias and hasattr(self, "bias"):
            y = y + self.bias.float()
        return y


class _Empty(nn.Module):
    pass


class ToyViT(nn.Module):
    """The encoder at TP `tp`: column-parallel embedder/QKV/fc1, row-parallel proj/fc2."""

    def __init__(self, cfg, tp=1, group=None, dtype=torch.bfloat16, device="cuda"):
        super().__init__()
        h, f, self.heads = cfg["hidden"], cfg["ffn"], cfg["heads"]
        assert h % tp == 0 and f % tp == 0 and self.heads % tp == 0
        self.cfg, self.comm = cfg, _Group(tp, group)
        self.embedder = _Linear(h // tp, cfg["patch_dim"], dtype, device)
        self.position_embeddings = _param((1, cfg["patches"], h), dtype, device)
        self.decoder = _Empty()
        self.decoder.layers = nn.ModuleList()
        for _ in range(cfg["layers"]):
            layer = _Empty()
            layer.self_attention = _Empty()
            layer.self_attention.linear_qkv = _Linear(3 * h // tp, h, dtype, device, norm=h)
            layer.self_attention.linear_proj = _Linear(h, h // tp, dtype, device)
            layer.mlp = _Empty()
            layer.mlp.linear_fc1 = _Linear(f // tp, h, dtype, device, norm=h)
            layer.mlp.linear_fc2 = _Linear(h, f // tp, dtype, device)
            self.decoder.layers.append(layer)
        self.decoder.final_layernorm = _Empty()
        self.decoder.final_layernorm.weight = _param((h,), dtype, device)
        self.decoder.final_layernorm.bias = _param((h,), dtype, device)
        self.local_heads = self.heads // tp

    def forward(self, patches):
        x = self.comm.gather_last(self.embedder(patches.float())) + self.position_embeddings.float()
        b, s, h = x.shape
        hd = h // self.heads
        for layer in self.decoder.layers:
            a = layer.self_attention
            qkv = a.linear_qkv(self.comm.copy(x)).view(b, s, self.local_heads, 3, hd)  # per head [q; k; v]
            q, k, v = (qkv[:, :, :, j].transpose(1, 2) for j in range(3))
            o = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, s, self.local_heads * hd)
            x = x + self.comm.reduce(a.linear_proj(o, add_bias=False)) + a.linear_proj.bias.float()
            m = layer.mlp
            y = F.gelu(m.linear_fc1(self.comm.copy(x)))
            x = x + self.comm.reduce(m.linear_fc2(y, add_bias=False)) + m.linear_fc2.bias.float()
        n = self.decoder.final_layernorm
        return F.layer_norm(x, (h,), n.weight.float(), n.bias.float())


class MixedPrecisionOptimizer:
    """bf16 model params with fp32 main params (Megatron's Float16OptimizerWithFloat16Params in
    miniature): step() updates the mains and copies them back; reload_model_params() rebuilds the
    mains from the model's current weights (what a warm start must call)."""

    def __init__(self, params, lr=1e-3):
        self.params = [p for p in params if p.requires_grad]
        self.main = [p.detach().float().clone() for p in self.params]
        self.inner = torch.optim.AdamW(self.main, lr=lr)

    def reload_model_params(self):
        with torch.no_grad():
            for p, m in zip(self.params, self.main):
                m.copy_(p.float())

    def step(self):
        for p, m in zip(self.params, self.main):
            m.grad = None if p.grad is None else p.grad.float()
        self.inner.step()
        with torch.no_grad():
            for p, m in zip(self.params, self.main):
                p.copy_(m)

    def zero_grad(self):
        for p in self.params:
            p.grad = None
