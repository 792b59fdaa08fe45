"""Real megatron-core 0.19.2 through shardcast.megatron, on the CPU over gloo (runs in the venv of
tools/setup_megatron.sh, named by $SHARDCAST_MEGATRON_PYTHON; tests/megatron_test.sh starts it).

A tiny GPT (GQA with 2 query groups, SwiGLU, RMSNorm, untied embeddings, vocab 1000) and
RADIOViTModel, every value random, are saved by Megatron's dist_checkpointing.save at TP 1, TP 2
and PP 2 (GPT; RADIO at TP 1 and 2). Each is loaded at TP 1, 2, 4, PP 2 and TP 2 x PP 2 with 2
virtual pipeline chunks per rank (a list of modules; RADIO: TP 1, 2, 4)
into a freshly randomized model, and every parameter and buffer must equal, bit for bit, what
dist_checkpointing.load puts into another fresh model, and so must the ShardedObjects (the GPT
carries an `_extra_state` with a value on its first stage):
  - ReferenceBoxes: the boxes of shardcast.megatron.boxes_for filled by a stdlib DCP reader
    (../shared/tools/dcp_reference), without the service: checks the boxes themselves;
  - ServiceLoad: shardcast.megatron.load against `mpirun -np 2 shardcastd --device cpu`;
  - StrategyLoad: dist_checkpointing.load(..., sharded_strategy=ShardcastLoadStrategy(client));
  - MimoWarmStart: the --load-vision-from call (key_map) into a MIMO-shaped model;
  - Refusals: models that disagree with the checkpoint (other hidden size, a key the checkpoint
    lacks) are refused before any byte moves, every problem listed, and the model is untouched.
Each load is one gloo world of TP x PP processes forked from this one."""
import json
import os
import sys
import tempfile
import traceback
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "megatron"))
import junit_unittest  # noqa: E402
from testenv import fixtures_dir, runfile  # noqa: E402
import service_test  # noqa: E402  (its Service launcher)

PKG_DIR = os.path.dirname(os.path.dirname(runfile("shardcast/python/shardcast/__init__.py", "SHARDCAST_PYTHON_PKG")))
sys.path.insert(0, PKG_DIR)
os.environ.setdefault("SHARDCAST_CLIENT_SO", runfile("shardcast/client/libshardcast_client.so", "SHARDCAST_CLIENT_SO"))
sys.path.insert(0, os.environ.get("SHARDCAST_DCP_REFERENCE") or
                os.path.join(os.path.dirname(fixtures_dir()), "tools", "dcp_reference"))
import refreader  # noqa: E402  (stdlib DCP reader, shared/tools/dcp_reference)
import torch  # noqa: E402
import torch.multiprocessing as mp  # noqa: E402

import models  # noqa: E402
import save_checkpoints  # noqa: E402

# (TP, PP, virtual pipeline chunks per PP rank) loaded from each saved layout.
TARGETS = {"gpt": [(1, 1, None), (2, 1, None), (4, 1, None), (1, 2, None), (2, 2, 2)],
           "radio": [(1, 1, None), (2, 1, None), (4, 1, None)]}
_CKPTS = {}


def setUpModule():
    models.import_megatron()
    out = tempfile.mkdtemp(prefix="megatron_ckpts.")
    _CKPTS.update(save_checkpoints.save_all(out))


# ---- the reference reader: boxes straight from the DCP files, no Megatron, no service ----------

def _reference_box(ckpt, md, key, offsets, sizes, dtype):
    """The box [offsets, offsets+sizes) of `key`, assembled from the stored chunks by refreader."""
    t = md["tensors"][key]
    out = torch.empty(sizes, dtype=getattr(torch, t["dtype"]))
    for c_off, c_len in t["chunks"]:
        lo = [max(c, o) for c, o in zip(c_off, offsets)]
        hi = [min(c + n, o + s) for c, n, o, s in zip(c_off, c_len, offsets, sizes)]
        if any(h <= l for l, h in zip(lo, hi)):
            continue
        rel, off, length, tr = md["storage"][(key, c_off)]
        rec = refreader.read_torch_save_tensor(refreader.open_item(ckpt, rel, off, length, tr))
        flat = torch.frombuffer(bytearray(rec["data"]), dtype=out.dtype)
        chunk = flat.as_strided(tuple(c_len), tuple(rec["stride"]), rec["storage_offset"])
        src = chunk[tuple(slice(l - c, h - c) for l, h, c in zip(lo, hi, c_off))]
        out[tuple(slice(l - o, h - o) for l, h, o in zip(lo, hi, offsets))] = src
    return out.to(dtype)


def _fill_from_reference(ckpt, plan):
    md = refreader.parse_metadata(os.path.join(ckpt, ".metadata"))
    with torch.no_grad():
        for box in plan.boxes:
            dst = box["tensor"]
            dst.copy_(_reference_box(ckpt, md, box["key"], box["offsets"], box["sizes"], dst.dtype).view(dst.shape))


# ---- one gloo world: load a fresh model the way `mode` says, compare with dist_checkpointing ---

def _megatron_reference(model_name, ckpt, rank, build_kw):
    from megatron.core import dist_checkpointing
    ref = models.build(model_name, **build_kw)
    models.randomize(ref, seed=7 + rank)
    models.load_state_dict(ref, dist_checkpointing.load(models.sharded_state_dict(ref), ckpt))
    return models.tensors(ref), models.extra_states(ref)


def _load_with(mode, module, ckpt, address, build_kw):
    import shardcast
    import shardcast.megatron as scm
    from megatron.core import dist_checkpointing
    if mode == "reference":
        plan = scm.boxes_for(module)
        assert not plan.problems, plan.problems
        _fill_from_reference(ckpt, plan)
        return {"boxes": len(plan.boxes), "objects": len(plan.objects)}
    with shardcast.Client(address) as client:
        if mode == "service":
            report = scm.load(module, client)
            return {k: report[k] for k in ("bytes", "shards", "objects", "not_loaded")}
        strategy = scm.ShardcastLoadStrategy(client)
        models.load_state_dict(module, dist_checkpointing.load(models.sharded_state_dict(module), ckpt,
                                                               sharded_strategy=strategy))
        return {k: strategy.last_report[k] for k in ("bytes", "shards")}


def _world(rank, world, port, tp, pp, vpp, model_name, ckpt, mode, address, build_kw, out):
    result = {}
    try:
        models.init_parallel(rank, world, port, tp, pp, vpp)
        expected, expected_extra = _megatron_reference(model_name, ckpt, rank, build_kw) \
            if mode != "refuse" else (None, None)
        module = models.build(model_name, **build_kw)
        models.randomize(module, seed=100 + rank)
        before = {k: v.clone() for k, v in models.tensors(module).items()}
        if mode == "refuse":
            result = _refusal(module, address, before)
        else:
            result["report"] = _load_with(mode, module, ckpt, address, build_kw)
            got = models.tensors(module)
            result["names"] = sorted(got)
            result["missing"] = sorted(set(expected) - set(got))
            result["wrong"] = sorted(k for k in expected if k in got and not torch.equal(expected[k], got[k]))
            result["unchanged"] = sorted(k for k in got if torch.equal(before[k], got[k]))
            result["dtypes"] = sorted({str(t.dtype).replace("torch.", "") for t in got.values()})
            result["extra_expected"], result["extra_got"] = expected_extra, models.extra_states(module)
        models.shutdown()
    except Exception:  # noqa: BLE001  (the test reads the traceback from the result file)
        result["error"] = traceback.format_exc()
    with open(os.path.join(out, "rank%d.json" % rank), "w") as f:
        json.dump(result, f)


def _refusal(module, address, before):
    import shardcast
    import shardcast.megatron as scm
    with shardcast.Client(address) as client:
        try:
            scm.load(module, client)
            return {"refused": False}
        except shardcast.ShardcastError as e:
            after = models.tensors(module)
            return {"refused": True, "code": e.code, "message": e.message,
                    "changed": sorted(k for k in after if not torch.equal(before[k], after[k]))}


def run_world(tp, pp, model_name, ckpt, mode, address=None, vpp=None, **build_kw):
    """Runs one world of tp x pp ranks; returns each rank's result dict."""
    out = tempfile.mkdtemp(prefix="megatron_world.")
    world = tp * pp
    mp.start_processes(_world, args=(world, models.free_port(), tp, pp, vpp, model_name, ckpt, mode, address,
                                     build_kw, out), nprocs=world, start_method="fork")
    results = []
    for rank in range(world):
        with open(os.path.join(out, "rank%d.json" % rank)) as f:
            results.append(json.load(f))
    return results


class _LoadCase(unittest.TestCase):
    mode = None

    def check_all(self, model_name, saved, address=None):
        for tp, pp, vpp in TARGETS[model_name]:
            with self.subTest(saved=saved, tp=tp, pp=pp, vpp=vpp):
                for rank, r in enumerate(run_world(tp, pp, model_name, _CKPTS[saved], self.mode, address, vpp)):
                    self.assertNotIn("error", r, r.get("error"))
                    where = "%s loaded at TP %d PP %d VPP %s, rank %d" % (saved, tp, pp, vpp, rank)
                    self.assertGreater(len(r["names"]), 3, where)
                    if vpp:  # a list of chunks: tensors named "<chunk>.<name>"
                        self.assertEqual(sorted({n.split(".")[0] for n in r["names"]}), [str(i) for i in range(vpp)])
                    self.assertEqual(r["missing"], [], where)
                    self.assertEqual(r["wrong"], [], "%s: not bit-exact" % where)
                    self.assertEqual(r["unchanged"], [], "%s: not loaded (still the random init)" % where)
                    # ShardedObjects (_extra_state) equal what dist_checkpointing.load set, where
                    # the rank holds one with a value (the GPT's first stage).
                    if self.mode != "reference":  # the reference reader fills the boxes only
                        self.assertEqual(r["extra_got"], r["extra_expected"], where)
                    if model_name == "gpt" and self.mode != "reference" and rank < tp:
                        self.assertTrue(any(v and "amax" in v for v in r["extra_got"].values()), (where, r["extra_got"]))
                    self.check_report(r["report"], where)

    def check_report(self, report, where):
        pass


class ReferenceBoxes(_LoadCase):
    """boxes_for's boxes, filled by the stdlib DCP reader, equal dist_checkpointing.load."""
    mode = "reference"

    def test_gpt(self):
        for saved in ("gpt_tp1_pp1", "gpt_tp2_pp1", "gpt_tp1_pp2"):
            self.check_all("gpt", saved)

    def test_radio(self):
        for saved in ("radio_tp1_pp1", "radio_tp2_pp1"):
            self.check_all("radio", saved)

    def check_report(self, report, where):
        self.assertGreater(report["objects"], 0, "%s: the _extra_state ShardedObjects are listed" % where)


class _ServiceCase(_LoadCase):
    def check_model(self, model_name, saved):
        svc = service_test.Service(_CKPTS[saved])
        try:
            self.check_all(model_name, saved, svc.address)
        finally:
            svc.stop()


class ServiceLoad(_ServiceCase):
    """shardcast.megatron.load through shardcastd equals dist_checkpointing.load."""
    mode = "service"

    def test_gpt(self):
        for saved in ("gpt_tp1_pp1", "gpt_tp2_pp1", "gpt_tp1_pp2"):
            self.check_model("gpt", saved)

    def test_radio(self):
        for saved in ("radio_tp1_pp1", "radio_tp2_pp1"):
            self.check_model("radio", saved)

    def test_gpt_bf16_from_fp32(self):
        # A bf16 model from the fp32 checkpoint: every box cast by the service, bit-exact against
        # dist_checkpointing.load's own cast into another bf16 model.
        svc = service_test.Service(_CKPTS["gpt_tp2_pp1"])
        try:
            for tp in (1, 2):
                for rank, r in enumerate(run_world(tp, 1, "gpt", _CKPTS["gpt_tp2_pp1"], "service", svc.address,
                                                   dtype=torch.bfloat16)):
                    self.assertNotIn("error", r, r.get("error"))
                    self.assertEqual(r["wrong"], [], "TP %d rank %d" % (tp, rank))
                    self.assertEqual(r["unchanged"], [])
                    # Megatron keeps the norms in fp32 (no cast), the rest is bf16 (cast).
                    self.assertEqual(r["dtypes"], ["bfloat16", "float32"])
        finally:
            svc.stop()

    def check_report(self, report, where):
        self.assertGreater(report["bytes"], 0, where)
        self.assertGreater(report["objects"], 0, "%s: the _extra_state ShardedObjects were read" % where)
        self.assertEqual(report["not_loaded"], [], where)


class MimoWarmStart(unittest.TestCase):
    """The --load-vision-from call (examples/megatron_warmstart's warm_start_vision): RADIO saved
    under model.vision_model. loaded into a MIMO-shaped model's
    vision_submodule.encoders.radio_encoder.radio_model. through key_map; the language model is
    left alone and reported; a resumed run (iteration > 0) loads nothing."""

    def test_key_map(self):
        saved = _CKPTS["radio_vision_tp2_pp1"]
        svc = service_test.Service(saved)
        try:
            for tp in (1, 2):
                out = tempfile.mkdtemp()
                mp.start_processes(_mimo_world, args=(tp, models.free_port(), saved, svc.address, out), nprocs=tp,
                                   start_method="fork")
                for rank in range(tp):
                    with open(os.path.join(out, "rank%d.json" % rank)) as f:
                        r = json.load(f)
                    self.assertNotIn("error", r, r.get("error"))
                    self.assertTrue(r["resumed_loads_nothing"], "iteration > 0 must not warm-start")
                    self.assertGreater(r["compared"], 10)
                    self.assertEqual(r["wrong"], [], "TP %d rank %d: not bit-exact" % (tp, rank))
                    self.assertEqual(r["lm_changed"], False, "the language model was touched")
                    self.assertIn({"name": "language_model.weight", "key": "language_model.weight",
                                   "reason": "not under any key_map prefix"}, r["not_loaded"])
        finally:
            svc.stop()


def _mimo_world(rank, tp, port, ckpt, address, out):
    import shardcast
    import shardcast.megatron as scm
    from megatron.core import dist_checkpointing
    result = {}
    try:
        models.init_parallel(rank, tp, port, tp, 1)
        ref = models.build("radio")
        models.randomize(ref, seed=3 + rank)
        ref.load_state_dict({k[len("model.vision_model."):]: v for k, v in dist_checkpointing.load(
            ref.sharded_state_dict(prefix="model.vision_model."), ckpt).items()})
        mimo = models.build_mimo_like()
        models.randomize(mimo, seed=50 + rank)
        lm_before = mimo.language_model.weight.detach().clone()
        sys.path.insert(0, os.path.dirname(runfile("shardcast/examples/megatron_warmstart/shardcast_warmstart.py",
                                                   "SHARDCAST_WARMSTART_EXAMPLE")))
        import shardcast_warmstart  # the example's one call: shardcast.megatron.load with the MIMO key_map
        with shardcast.Client(address) as client:
            resumed = shardcast_warmstart.warm_start_vision(mimo, None, iteration=5, is_encoder_rank=True,
                                                            client=client, log=lambda msg: None)
            result["resumed_loads_nothing"] = resumed is None and not torch.equal(
                models.tensors(mimo)[models.MIMO_VISION + "class_token"], models.tensors(ref)["class_token"])
            report = shardcast_warmstart.warm_start_vision(mimo, None, iteration=0, is_encoder_rank=True,
                                                           client=client, log=lambda msg: None)
        got = mimo.vision_submodule.encoders.radio_encoder.radio_model
        expected, loaded = models.tensors(ref), models.tensors(got)
        result.update({"compared": len(expected), "not_loaded": report["not_loaded"],
                  "wrong": sorted(k for k in expected if not torch.equal(expected[k], loaded[k])),
                  "lm_changed": not torch.equal(lm_before, mimo.language_model.weight.detach())})
        models.shutdown()
    except Exception:  # noqa: BLE001
        result["error"] = traceback.format_exc()
    with open(os.path.join(out, "rank%d.json" % rank), "w") as f:
        json.dump(result, f)


class ImportWithoutTorch(unittest.TestCase):
    def test_import_shardcast_imports_no_torch(self):
        import subprocess
        code = "import sys, shardcast; assert 'torch' not in sys.modules and 'megatron' not in sys.modules, " \
               "sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'megatron'))"
        p = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, PYTHONPATH=PKG_DIR), capture_output=True,
                           text=True)
        self.assertEqual(p.returncode, 0, p.stderr)


class StrategyLoad(_ServiceCase):
    """dist_checkpointing.load with ShardcastLoadStrategy equals the default strategy."""
    mode = "strategy"

    def test_gpt(self):
        for saved in ("gpt_tp2_pp1", "gpt_tp1_pp2"):
            self.check_model("gpt", saved)

    def test_radio(self):
        self.check_model("radio", "radio_tp2_pp1")

    def check_report(self, report, where):
        self.assertGreater(report["shards"], 0, where)


class Refusals(unittest.TestCase):
    """A model that disagrees with the checkpoint is refused before any byte moves, every problem
    listed, the model untouched."""

    @classmethod
    def setUpClass(cls):
        cls.svc = service_test.Service(_CKPTS["gpt_tp2_pp1"])

    @classmethod
    def tearDownClass(cls):
        cls.svc.stop()

    def refuse(self, tp, **build_kw):
        results = run_world(tp, 1, "gpt", _CKPTS["gpt_tp2_pp1"], "refuse", self.svc.address, **build_kw)
        for r in results:
            self.assertNotIn("error", r, r.get("error"))
            self.assertTrue(r["refused"], r)
            self.assertEqual(r["code"], "INVALID_ARGUMENT")
            self.assertEqual(r["changed"], [], "bytes moved into a refused model")
        return results

    def test_other_hidden_size(self):
        for r in self.refuse(2, hidden=48):
            msg = r["message"]
            # Every tensor with the hidden dimension disagrees; all are listed, not only the first.
            for key in ("embedding.word_embeddings.weight", "output_layer.weight", "decoder.final_layernorm.weight",
                        "decoder.layers.self_attention.linear_qkv.weight", "decoder.layers.mlp.linear_fc2.weight"):
                self.assertIn(key, msg)
            self.assertIn("the checkpoint's is [1000, 32]", msg)
            self.assertIn("[1000, 48]", msg)

    def test_missing_keys(self):
        # 6 layers where the checkpoint has 4: layers 4 and 5 are boxes outside the stored [4, ...]
        # tensors (refused by the service, all listed), and another vocab size disagrees too.
        for r in self.refuse(1, layers=6, vocab=1024):
            msg = r["message"]
            self.assertIn("[1024, 32]", msg)
            self.assertIn("global shape of decoder.layers.mlp.linear_fc2.weight is [6, 32, 64]", msg)

    def test_what_cannot_be_a_box_is_listed(self):
        # A non-contiguous destination, a box outside its tensor (the service's refusal) and a
        # ShardedObject the checkpoint lacks are listed together; with strict=False the missing
        # ShardedObject is reported instead and the rest loads (a stored one is read).
        r = _in_child(_unservable, self.svc.address)
        self.assertNotIn("error", r, r.get("error"))
        msg = r["strict"]
        self.assertIn("4 problem(s)", msg)
        self.assertIn("proj: its data is not contiguous (stride [1, 32])", msg)
        self.assertIn("too_long: the model's global shape of decoder.final_layernorm.weight is [33], the "
                      "checkpoint's is [32]", msg)
        self.assertIn("obj: bytes entry some/object/shard_0_1 (a ShardedObject) is not in the checkpoint", msg)
        self.assertIn("box offsets [0] sizes [33] is not inside the tensor's shape [32]", msg)
        self.assertEqual(r["changed_after_refusal"], False)
        self.assertEqual([(i["name"], i["key"], i["reason"]) for i in r["lenient"]["not_loaded"]],
                         [("obj", "some/object/shard_0_1", "bytes entry not in the checkpoint")])
        self.assertEqual(r["lenient"]["bytes"], 32 * 4)
        self.assertEqual(r["lenient"]["objects"], 1)
        self.assertEqual(r["extra"]["seed"], 12000)  # as saved: save_checkpoints seeds 1000 * (tp + 10 * pp) + rank
        self.assertEqual(r["loaded_norm_equals_reference"], True)

    def test_key_not_in_checkpoint(self):
        # A key_map pointing every key elsewhere: each key is named as missing.
        out = tempfile.mkdtemp()
        mp.start_processes(_key_map_world, args=(models.free_port(), _CKPTS["gpt_tp2_pp1"], self.svc.address, out),
                           nprocs=1, start_method="fork")
        with open(os.path.join(out, "rank0.json")) as f:
            r = json.load(f)
        self.assertNotIn("error", r, r.get("error"))
        self.assertEqual(r["code"], "INVALID_ARGUMENT")
        self.assertIn("key other.embedding.word_embeddings.weight is not in the checkpoint", r["message"])
        self.assertIn("key other.decoder.final_layernorm.weight is not in the checkpoint", r["message"])
        self.assertEqual(r["changed"], [])


def _in_child(fn, *args):
    """fn(*args) in a forked process (no gRPC channel ever lives in the forking parent); its JSON."""
    out = tempfile.mkdtemp()
    mp.start_processes(_child, args=(fn, args, out), nprocs=1, start_method="fork")
    with open(os.path.join(out, "result.json")) as f:
        return json.load(f)


def _child(rank, fn, args, out):
    try:
        result = fn(*args)
    except Exception:  # noqa: BLE001
        result = {"error": traceback.format_exc()}
    with open(os.path.join(out, "result.json"), "w") as f:
        json.dump(result, f)


def _unservable(address):
    import shardcast
    import shardcast.megatron as scm
    from megatron.core.dist_checkpointing import ShardedObject, ShardedTensor
    norm, bad_norm = torch.full((32,), 7.0), torch.full((33,), 7.0)
    proj = torch.zeros(64, 32).t()  # a transposed view: not contiguous
    sd = {"norm": ShardedTensor.from_rank_offsets("decoder.final_layernorm.weight", norm),
          "too_long": ShardedTensor.from_rank_offsets("decoder.final_layernorm.weight", bad_norm),
          "proj": ShardedTensor.from_rank_offsets("output_layer.weight", proj),
          "obj": ShardedObject("some/object", {"fp8": 1}, (1,), (0,)),
          "extra": ShardedObject("extra._extra_state", None, (1,), (0,))}
    result = {}
    with shardcast.Client(address) as client:
        try:
            scm.load_plan(client, scm.plan_state_dict(sd), strict=True)
        except shardcast.ShardcastError as e:
            result["strict"] = e.message
        result["changed_after_refusal"] = not torch.equal(norm, torch.full((32,), 7.0))
        del sd["proj"], sd["too_long"]
        result["lenient"], values = scm.load_plan(client, scm.plan_state_dict(sd), strict=False)
        result["extra"] = values["extra"]
    ref = refreader.parse_metadata(os.path.join(_CKPTS["gpt_tp2_pp1"], ".metadata"))
    expected = _reference_box(_CKPTS["gpt_tp2_pp1"], ref, "decoder.final_layernorm.weight", [0], [32], torch.float32)
    result["loaded_norm_equals_reference"] = torch.equal(norm, expected)
    return result


def _key_map_world(rank, port, ckpt, address, out):
    import shardcast
    import shardcast.megatron as scm
    result = {}
    try:
        models.init_parallel(rank, 1, port, 1, 1)
        module = models.build("gpt")
        before = {k: v.clone() for k, v in models.tensors(module).items()}
        with shardcast.Client(address) as client:
            try:
                scm.load(module, client, key_map={"": "other."})
            except shardcast.ShardcastError as e:
                result = {"code": e.code, "message": e.message}
        after = models.tensors(module)
        result["changed"] = sorted(k for k in after if not torch.equal(before[k], after[k]))
        models.shutdown()
    except Exception:  # noqa: BLE001
        result["error"] = traceback.format_exc()
    with open(os.path.join(out, "rank%d.json" % rank), "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    junit_unittest.main()
