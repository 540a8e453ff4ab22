"""andlib.models.activations: the record stage (pooling, hooks, resumable recording, top-K table,
its key)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from andlib.data.audio import ProbingSet
from andlib.models.activations import (
    ActivationRecorder,
    pool_output,
    record_target,
    resolve_layers,
    run_stage,
    topk_table,
)
from andlib.models.base import TargetModel
from andlib.store import ActivationCache, RunDir
from andlib.store_shards import ShardReader, is_sharded

SR = 16000


def make_probing_set(n: int = 10, seconds: float = 0.5, seed: int = 0) -> ProbingSet:
    rs = np.random.default_rng(seed)
    audio = [(0.1 * rs.standard_normal(int(SR * seconds))).astype(np.float32) for _ in range(n)]
    meta = pd.DataFrame(
        {
            "clip_id": [f"clip{i:02d}" for i in range(n)],
            "path": [f"/tmp/clip{i:02d}.wav" for i in range(n)],
            "label": [i % 3 for i in range(n)],
            "category": [f"c{i % 3}" for i in range(n)],
        }
    )
    return ProbingSet("test", SR, audio, meta)


def ast_preprocess(fe):
    """The AST feature extractor on a batch of waveforms (it pads and truncates by itself)."""

    def preprocess(batch):
        arrays = [np.asarray(a, dtype=np.float32) for a in batch]
        return dict(fe(arrays, sampling_rate=SR, return_tensors="pt"))

    return preprocess


def ast_target(tiny_ast) -> TargetModel:
    model, fe = tiny_ast
    labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
    return TargetModel(model, ast_preprocess(fe), SR, "tiny-ast", labels, {"source": "test"})


class Toy(nn.Module):
    """Waveform ``[batch, samples]`` -> frames ``[batch, 10, 8]`` -> ReLU -> 3 logits."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.proj = nn.Linear(40, 8)
        self.act = nn.ReLU()
        self.head = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        frames = x[:, :400].reshape(len(x), 10, 40)
        return self.head(self.act(self.proj(frames)).mean(dim=1))


def toy_target() -> TargetModel:
    def preprocess(batch):
        return torch.from_numpy(np.stack([b[:400] for b in batch]))

    return TargetModel.from_module(Toy(), preprocess, SR, name="toy")


class Emit(nn.Module):
    """Returns whatever it is given as its output (optionally wrapped in a tuple)."""

    def __init__(self, as_tuple: bool = False):
        super().__init__()
        self.as_tuple = as_tuple

    def forward(self, x):
        return (x, "extra") if self.as_tuple else x


@pytest.mark.parametrize("as_tuple", [False, True])
def test_pooling_modes(as_tuple):
    x = torch.tensor([[[1.0, -2.0], [3.0, 0.0], [-1.0, 5.0]]])  # [batch 1, tokens 3, neurons 2]
    model = nn.Sequential(Emit(as_tuple))
    expected = {"mean": [[1.0, 1.0]], "max": [[3.0, 5.0]], "cls": [[1.0, -2.0]]}
    for pooling, want in expected.items():
        with ActivationRecorder(model, {"emit": "0"}, pooling) as rec:
            model(x)
            got = rec.pop()["emit"]
        torch.testing.assert_close(got, torch.tensor(want))
    logits = torch.tensor([[0.5, -1.5, 2.0]])
    torch.testing.assert_close(pool_output(logits, "max"), logits)  # 2-D passes through
    torch.testing.assert_close(pool_output(torch.tensor([1.0, 2.0])), torch.tensor([[1.0], [2.0]]))
    with pytest.raises(ValueError, match="pooling"):
        pool_output(x, "median")


def test_hooks_on_a_plain_module_and_record_target(tmp_path):
    target = toy_target()
    ps = make_probing_set(7)
    layers = resolve_layers(target.module, ["act", "head"])
    cache = record_target(target, ps, layers, "max", 3, RunDir(tmp_path), progress=False)
    assert cache.layers == ["act", "head"]
    assert cache.clip_ids == ps.clip_ids
    assert cache["act"].shape == (7, 8) and cache["act"].dtype == np.float32
    assert cache.n_neurons("head") == 3 and cache.module_path("act") == "act"
    with torch.inference_mode():
        logits = target.forward(ps.audio)
        frames = torch.from_numpy(np.stack([a[:400] for a in ps.audio])).reshape(7, 10, 40)
        hidden = target.module.act(target.module.proj(frames)).amax(dim=1)
    np.testing.assert_allclose(cache["head"], logits.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(cache["act"], hidden.numpy(), rtol=1e-5, atol=1e-6)
    index = json.loads((tmp_path / "activations" / "index.json").read_text())
    assert index["clip_ids"] == ps.clip_ids
    assert index["layers"]["act"] == {"dir": "act", "module": "act", "n_neurons": 8}
    assert is_sharded(tmp_path / "activations" / "act")


class Interrupt(Exception):
    pass


@pytest.mark.parametrize("stop_after", [1, 2], ids=["mid-run", "before-finalizing"])
def test_resume_after_interruption_gives_the_same_arrays(tmp_path, tiny_ast, stop_after):
    target = ast_target(tiny_ast)
    ps = make_probing_set(6)  # 3 batches of 2
    spec = ["preset:ast"]
    full = record_target(target, ps, spec, "mean", 2, RunDir(tmp_path / "a"), progress=False)
    assert ShardReader(tmp_path / "a" / "activations" / "layers.0.mlp").n_shards == 1

    def interrupt(batch_index: int, done: int) -> None:
        if batch_index == stop_after:
            raise Interrupt

    run = RunDir(tmp_path / "b")
    with pytest.raises(Interrupt):
        record_target(
            target, ps, spec, "mean", 2, run, shard_rows=2, progress=False, on_batch=interrupt
        )
    layer = ShardReader(run.path / "activations" / "layers.0.mlp")
    assert layer.n_rows == 2 * (stop_after + 1) and not layer.complete
    assert not (run.path / "activations" / "index.json").exists()

    seen = []
    resumed = record_target(
        target,
        ps,
        spec,
        "mean",
        2,
        run,
        shard_rows=2,
        progress=False,
        on_batch=lambda b, d: seen.append(b),
    )
    assert seen == list(range(stop_after + 1, 3)), "resumes after the last finished shard"
    assert resumed.layers == full.layers
    for layer_key in full.layers:
        np.testing.assert_array_equal(resumed[layer_key], full[layer_key])


def test_rerun_reuses_stored_arrays_without_a_forward_pass(tmp_path, monkeypatch):
    target = toy_target()
    ps = make_probing_set(5)
    run = RunDir(tmp_path)
    first = record_target(target, ps, ["act"], "mean", 2, run, progress=False)
    stored = np.array(first["act"])

    calls = []
    monkeypatch.setattr(target, "forward", lambda batch: calls.append(batch))
    again = record_target(target, ps, ["act"], "mean", 2, run, progress=False)
    assert calls == []
    np.testing.assert_array_equal(again["act"], stored)

    with torch.no_grad():  # other weights under the same name: recorded anew
        target.module.proj.weight.add_(1.0)
    monkeypatch.undo()
    changed = record_target(target, ps, ["act"], "mean", 2, run, progress=False)
    assert not np.array_equal(changed["act"], stored)


def test_topk_table_against_a_hand_made_array(tmp_path):
    a = np.array(
        [[0.1, 5.0], [0.9, -1.0], [0.5, 2.0], [-0.3, 2.0], [0.7, 0.0]], dtype=np.float32
    )  # 5 clips x 2 neurons
    folder = tmp_path / "activations"
    folder.mkdir()
    np.save(folder / "l.npy", a)
    ids = ["a", "b", "c", "d", "e"]
    index = {"clip_ids": ids, "layers": {"l": {"file": "l.npy", "module": "m", "n_neurons": 2}}}
    (folder / "index.json").write_text(json.dumps(index))
    cache = ActivationCache.load(tmp_path)
    table = topk_table(cache, 2)
    assert list(table.columns) == ["layer", "neuron", "end", "rank", "clip_id", "activation"]
    got = [tuple(r) for r in table[["neuron", "end", "rank", "clip_id"]].itertuples(index=False)]
    assert got == [
        (0, "high", 0, "b"),
        (0, "high", 1, "e"),
        (0, "low", 0, "d"),
        (0, "low", 1, "a"),
        (1, "high", 0, "a"),
        (1, "high", 1, "c"),  # tie with d at 2.0: clip order
        (1, "low", 0, "b"),
        (1, "low", 1, "e"),
    ]
    np.testing.assert_allclose(table["activation"], [0.9, 0.7, -0.3, 0.1, 5.0, 2.0, -1.0, 0.0])
    assert (table["layer"] == "l").all()
    assert len(topk_table(cache, 10)) == 2 * 2 * 5, "k is capped at the number of clips"
    with pytest.raises(KeyError, match="close matches"):
        cache["l "]


def test_run_stage_on_a_save_pretrained_directory(tmp_path, tmp_cfg, tiny_ast, monkeypatch):
    model, fe = tiny_ast
    model_dir = tmp_path / "tiny-ast"
    model.save_pretrained(model_dir)
    fe.save_pretrained(model_dir)
    cfg = tmp_cfg(
        {
            "model.name": str(model_dir),
            "model.batch_size": 4,
            "model.device": "cpu",
            "data.dataset": "synthetic",
            "data.limit": 6,
            "data.duration": 1.0,
            "k": 2,
        }
    )
    run = RunDir.from_config(cfg)
    summary = run_stage(cfg, run)
    assert summary["clips"] == 6 and summary["layers"] == 7 and not summary["reused"]
    info = json.loads((run.path / "model.json").read_text())
    assert info["model_id"] == str(model_dir) and info["kind"] == "classification"
    assert info["layers"]["classifier"] == {"module": "classifier", "n_neurons": 4}
    assert info["pooling"] == "mean" and info["n_clips"] == 6
    clips = run.read_csv("clips.csv")
    assert list(clips.columns[:4]) == ["clip_id", "path", "label", "category"]
    topk = run.read_csv("neuron_topk.csv")
    assert len(topk) == 2 * 2 * (2 * (32 + 64 + 32) + 4)
    assert set(topk["clip_id"]) <= set(clips["clip_id"])
    assert run.exists("skipped.csv")

    import andlib.models.activations as act

    monkeypatch.setattr(act, "load_target", lambda cfg: pytest.fail("stage not reused"))
    assert run_stage(cfg, run)["reused"]


def test_record_key_follows_the_trained_model_not_unrelated_training_settings(tmp_cfg, tmp_path):
    from andlib.models.activations import SPEC
    from andlib.store import RunDir

    run = RunDir(tmp_path / "run")

    def stage_key(cfg):
        return SPEC.key(cfg, run)

    base = stage_key(tmp_cfg())
    assert stage_key(tmp_cfg({"train.linear_lr": 0.01})) == base  # an ssl-only setting
    assert stage_key(tmp_cfg({"train.lr": 0.01})) != base
    assert stage_key(tmp_cfg({"record.pooling": "max"})) != base
    hub = {"model.name": "MIT/ast-finetuned-audioset-10-10-0.4593"}
    assert stage_key(tmp_cfg({**hub, "train.lr": 0.01})) == stage_key(tmp_cfg(hub))


def test_the_record_key_adds_the_sae_section_only_when_it_names_layers(tmp_cfg):
    from andlib.models import activations as act

    cfg = tmp_cfg()
    run = RunDir(cfg.run_path)
    assert act.SPEC.key(cfg, run) == act.RECORDING.key(cfg, run)
    assert act.SPEC.key(cfg, run) == act.SPEC.key(tmp_cfg({"sae.k": 16}), run)
    with_sae = tmp_cfg({"sae.layers": ["layers.2.out"]})
    assert act.SPEC.key(with_sae, run) != act.SPEC.key(cfg, run)
    assert act.RECORDING.key(with_sae, run) == act.RECORDING.key(cfg, run)  # neurons reused
    other_k = tmp_cfg({"sae.layers": ["layers.2.out"], "sae.k": 16})
    assert act.SPEC.key(other_k, run) != act.SPEC.key(with_sae, run)
