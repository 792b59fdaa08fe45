"""Tiny real Megatron-Core models on the CPU for the megatron tests: process groups over gloo, a GPT
(GQA with 2 query groups, SwiGLU, RMSNorm, untied embeddings, unpadded vocab 1000, local spec) and
Megatron's own RADIOViTModel (local spec), every value randomized. Runs in the venv that
tools/setup_megatron.sh makes (Python 3.12, megatron-core 0.19.2, torch)."""
import os
import socket

import torch
import torch.distributed as dist

MODELS = ("gpt", "radio")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def import_megatron():
    """Imports what the workers use, so that forked workers need not (seconds per process)."""
    import megatron.core.dist_checkpointing  # noqa: F401
    import megatron.core.models.gpt  # noqa: F401
    import megatron.core.models.vision.radio  # noqa: F401


def allow_save_without_cuda():
    """Workaround, test code only: megatron-core 0.19.2's torch_dist save touches CUDA although
    every tensor is on the CPU and the group is gloo: strategies/filesystem_async.py
    (preload_tensors) calls torch.cuda.synchronize(), and strategies/state_dict_saver.py
    (save_state_dict_async_finalize) broadcasts its failure flag from a tensor made on
    `device=torch.cuda.current_device()`. Without a CUDA device both raise ("Found no NVIDIA
    driver"). Here, only when no CUDA device exists, synchronize becomes a no-op and
    current_device names the CPU (where a gloo broadcast belongs anyway)."""
    if not torch.cuda.is_available():
        torch.cuda.synchronize = lambda device=None: None
        torch.cuda.current_device = lambda: "cpu"


def init_parallel(rank, world, port, tp, pp, vpp=None):
    """gloo process group of `world` processes on this host and Megatron's TP/PP groups."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    from megatron.core import parallel_state as ps
    ps.initialize_model_parallel(tp, pp, virtual_pipeline_model_parallel_size=vpp)


def shutdown():
    from megatron.core import parallel_state as ps
    ps.destroy_model_parallel()
    dist.destroy_process_group()


def _gpt_config(hidden, layers, dtype=torch.float32):
    from megatron.core.transformer import TransformerConfig
    return TransformerConfig(
        num_layers=layers, hidden_size=hidden, num_attention_heads=4, num_query_groups=2,
        ffn_hidden_size=2 * hidden, gated_linear_unit=True, activation_func=torch.nn.functional.silu,
        normalization="RMSNorm", add_bias_linear=False, use_cpu_initialization=True,
        params_dtype=dtype, pipeline_dtype=dtype, bf16=dtype == torch.bfloat16,
        tensor_model_parallel_size=_tp(), pipeline_model_parallel_size=_pp(),
        virtual_pipeline_model_parallel_size=_vpp())


def _tp():
    from megatron.core import parallel_state as ps
    return ps.get_tensor_model_parallel_world_size()


def _vpp():
    from megatron.core import parallel_state as ps
    return ps.get_virtual_pipeline_model_parallel_world_size()


def _pp():
    from megatron.core import parallel_state as ps
    return ps.get_pipeline_model_parallel_world_size()


def _extra_state_class():
    from megatron.core.transformer.module import MegatronModule

    class ExtraState(MegatronModule):
        """A non-tensor `_extra_state` (as Transformer Engine layers keep FP8 metadata), so that a
        ShardedObject carries a value the tests can check (the local spec's layers hold None)."""

        def __init__(self, config):
            super().__init__(config)
            self.value = None

        def get_extra_state(self):
            return self.value

        def set_extra_state(self, state):
            self.value = state
    return ExtraState


def build_gpt(hidden=32, layers=4, vocab=1000, pre_process=None, post_process=None, vp_stage=None,
              dtype=torch.float32):
    """One GPT stage of the current PP rank (or of `vp_stage` with virtual pipelining)."""
    from megatron.core import parallel_state as ps
    from megatron.core.models.gpt import GPTModel
    from megatron.core.models.gpt.gpt_layer_specs import get_gpt_layer_local_spec
    if pre_process is None:
        pre_process = ps.is_pipeline_first_stage(ignore_virtual=vp_stage is None, vp_stage=vp_stage)
    if post_process is None:
        post_process = ps.is_pipeline_last_stage(ignore_virtual=vp_stage is None, vp_stage=vp_stage)
    config = _gpt_config(hidden, layers, dtype)
    model = GPTModel(config, get_gpt_layer_local_spec(normalization="RMSNorm"), vocab_size=vocab,
                     max_sequence_length=64, pre_process=pre_process, post_process=post_process,
                     share_embeddings_and_output_weights=False, position_embedding_type="rope", vp_stage=vp_stage)
    if pre_process:  # one stage only: a replicated ShardedObject has one main replica per TP/DP rank
        model.extra = _extra_state_class()(config)
    return model


def build_radio(hidden=32, layers=2):
    """Megatron's RADIOViTModel (class token, position embeddings, patch embedder, ViT blocks with
    biases and LayerNorm); not pipelined."""
    from megatron.core.models.vision.radio import RADIOViTModel
    from megatron.core.models.vision.vit_layer_specs import get_vit_layer_with_local_spec
    from megatron.core.transformer import TransformerConfig
    cfg = TransformerConfig(num_layers=layers, hidden_size=hidden, num_attention_heads=4, ffn_hidden_size=2 * hidden,
                            add_bias_linear=True, use_cpu_initialization=True, params_dtype=torch.float32,
                            tensor_model_parallel_size=_tp())
    return RADIOViTModel(cfg, get_vit_layer_with_local_spec(), img_h=32, img_w=32, patch_dim=16, max_img_h=64,
                         max_img_w=64, class_token_len=2)


MIMO_VISION = "vision_submodule.encoders.radio_encoder.radio_model."


def build_mimo_like(hidden=32):
    """A model shaped like a hetero MIMO model for the --load-vision-from warm start: RADIO at
    `vision_submodule.encoders.radio_encoder.radio_model.` and a language-model parameter beside it
    (MegatronModule containers, so each part keeps its own sharded_state_dict)."""
    from megatron.core.transformer.module import MegatronModule
    radio = build_radio(hidden)

    def node():
        return MegatronModule(radio.config)
    root = node()
    root.vision_submodule = node()
    root.vision_submodule.encoders = node()
    root.vision_submodule.encoders.radio_encoder = node()
    root.vision_submodule.encoders.radio_encoder.radio_model = radio
    root.language_model = node()
    root.language_model.weight = torch.nn.Parameter(torch.zeros(8, hidden))
    return root


def build(name, **kw):
    """One model; with virtual pipelining (GPT), the list of this rank's chunks, as Megatron-LM
    keeps them."""
    if name == "gpt" and _vpp():
        return [build_gpt(vp_stage=i, **kw) for i in range(_vpp())]
    return {"gpt": build_gpt, "radio": build_radio}[name](**kw)


def sharded_state_dict(model):
    """Megatron-LM's checkpoint state dict of a model or of its virtual pipeline chunks
    ({"model0": ..., "model1": ...})."""
    if isinstance(model, list):
        return {"model%d" % i: m.sharded_state_dict() for i, m in enumerate(model)}
    return model.sharded_state_dict()


def load_state_dict(model, state_dict):
    if isinstance(model, list):
        for i, m in enumerate(model):
            m.load_state_dict(state_dict["model%d" % i])
    else:
        model.load_state_dict(state_dict)


def randomize(modules, seed):
    """Every parameter and floating buffer random (normal), different per rank and seed: zero
    biases and unit norms would hide a wrong slice."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in modules if isinstance(modules, list) else [modules]:
            for m in module.modules():
                if hasattr(m, "set_extra_state") and type(m).__name__ == "ExtraState":
                    m.set_extra_state({"seed": seed, "amax": torch.randn(3, generator=gen).tolist()})
            for t in list(module.parameters()) + [b for b in module.buffers() if b.is_floating_point()]:
                t.copy_(torch.randn(t.shape, generator=gen, dtype=torch.float32).to(t.dtype))


def extra_states(modules):
    """{qualified module name: value} of the test's ExtraState modules."""
    mods = modules if isinstance(modules, list) else [modules]
    return {"%d.%s" % (i, n): m.value for i, module in enumerate(mods) for n, m in module.named_modules()
            if type(m).__name__ == "ExtraState"}


def tensors(modules):
    """{qualified name: tensor} of every parameter and floating buffer (a list: chunk index prefix)."""
    mods = modules if isinstance(modules, list) else [modules]
    out = {}
    for i, module in enumerate(mods):
        prefix = "%d." % i if len(mods) > 1 else ""
        for name, t in list(module.named_parameters()) + list(module.named_buffers()):
            if t.is_floating_point():
                out[prefix + name] = t.detach()
    return out
