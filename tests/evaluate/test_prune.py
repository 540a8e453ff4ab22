"""andlib.evaluate.prune: concept metrics, class draws and the prune stage end to end."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest
import torch

from andlib.evaluate import prune
from andlib.evaluate.prune import (
    concept_metrics,
    pruning_summary,
)
from andlib.report import figures
from tests.evaluate.test_scores import AST_PATHS, CLASSES, make_run

SIZES = {layer: n for layer, (_, n) in AST_PATHS.items()}


def test_concept_metrics_known_values():
    labels = np.array([0, 0, 1, 2])
    before = torch.tensor([[3.0, 0, 0], [1.0, 2, 0], [0, 4.0, 0], [0, 0, 5.0]])
    after = before.clone()
    after[:, 0] -= 4.0  # class 0 loses 4 logits everywhere
    m = concept_metrics(before, after, labels, 0)
    assert m["delta_a"] == 4.0 and m["delta_r"] == 0.0
    assert m["acc_a_before"] == 0.5 and m["acc_a_after"] == 0.0  # clip 0 now predicts 1/2
    assert m["acc_r_before"] == 1.0 and m["acc_r_after"] == 1.0
    assert m["delta_a_prob"] > 0 and m["delta_r_prob"] < 0  # others gain probability
    none = concept_metrics(before, after, labels, None)
    assert np.isnan(none["delta_a"]) and none["delta_r"] == 2.0  # every clip counts as R


def _hash_dir(path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(path.iterdir())}


def test_run_stage_end_to_end_on_a_tiny_saved_ast(tmp_path, tmp_cfg, tiny_ast):
    model, fe = tiny_ast
    model.config.id2label = dict(enumerate(CLASSES))
    model.config.label2id = {c: i for i, c in enumerate(CLASSES)}
    model_dir = tmp_path / "tiny-ast"
    model.save_pretrained(model_dir)
    fe.save_pretrained(model_dir)
    checkpoint = _hash_dir(model_dir)
    run = make_run(tmp_path / "run", tmp_path / "audio")
    settings = {
        "model.name": str(model_dir),
        "model.device": "cpu",
        "data.duration": 1.0,
        "prune.batch_size": 3,
        "concepts.db_default": "soft_wpmi",  # the DB columns make_run writes
    }
    cfg = tmp_cfg(settings)
    summary = prune.run_stage(cfg, run)
    df = run.read_csv("pruning.csv")
    assert list(df.columns) == prune.COLUMNS
    assert set(df.strategy) == {"ocp", "db", "random"}  # TAB was not computed: skipped
    assert sorted(set(df.concept)) == sorted(CLASSES)
    assert cfg.prune.random_draws == 5
    for _, group in df.groupby("concept"):
        n = group.groupby("strategy")["n_pruned"]
        assert n.size().to_dict() == {"ocp": 1, "db": 1, "random": 5}
        assert (group[group.strategy == "random"]["n_pruned"] == n.max().max()).all()
        assert sorted(group[group.strategy == "random"]["draw"]) == [0, 1, 2, 3, 4]
        assert (group["acted"] == (group["n_pruned"] > 0)).all()
    # different random draws of a concept (where not every hidden neuron is chosen)
    rand = df[(df.strategy == "random") & (df.n_pruned < 128)]
    assert not rand.empty and rand.groupby("concept")["delta_r"].nunique().min() > 1
    # held-out = fold 5: two clips per class; accuracies are fractions of those
    assert set(df.acc_a_before.round(3)) <= {0.0, 0.5, 1.0}
    wd = df[(df.concept == "water_drops") & (df.strategy == "ocp")].iloc[0]
    # OCP: the hidden neurons whose open concepts are "water;drop" (make_run: (n // 3) % 4 == 2)
    hidden = [n for layer, n in SIZES.items() if layer != "classifier"]
    assert wd.n_pruned == sum(sum((i // 3) % 4 == 2 for i in range(n)) for n in hidden)
    assert figures.run_stage(cfg, run)["figures"] == ["pruning_summary", "pruning_water_drops"]
    assert (cfg.figures_path / "pruning_summary.png").exists()
    assert (cfg.figures_path / "pruning_water_drops.png").exists()
    assert "prune.db" in summary
    assert _hash_dir(model_dir) == checkpoint  # the checkpoint is never edited
    table = pd.read_csv(run / "pruning_summary.csv")
    assert list(table.columns[:6]) == [
        "strategy",
        "n_concepts",
        "n_pruned_mean",
        "delta_a_minus_r_mean",
        "ci_low",
        "ci_high",
    ]
    assert table.strategy.tolist() == ["ocp", "db", "random"]
    assert (table.n_concepts == 4).all()
    assert (table.ci_low <= table.delta_a_minus_r_mean).all()
    assert (table.delta_a_minus_r_mean <= table.ci_high).all()
    pd.testing.assert_frame_equal(
        table, pruning_summary(df, cfg.prune.bootstrap, cfg.seed), check_dtype=False
    )
    # same config: reused, not recomputed
    before = (run / "pruning.csv").stat().st_mtime_ns
    prune.run_stage(cfg, run)
    assert (run / "pruning.csv").stat().st_mtime_ns == before
    # the full-forward path gives the same table to float tolerance
    plain = prune.pruning_experiment(tmp_cfg({**settings, "prune.fast": False}), run)
    pd.testing.assert_frame_equal(plain, df, check_dtype=False, atol=1e-5, rtol=1e-4)
    # a new setting is a new stage key
    prune.run_stage(tmp_cfg({**settings, "prune.random_draws": 2}), run)
    assert len(run.read_csv("pruning.csv").query("strategy == 'random'")) == 2 * len(CLASSES)


def test_classes_are_drawn_once_with_the_seed(tmp_cfg):
    names = [f"c{i}" for i in range(50)]
    held = prune.HeldOut([], np.repeat(np.arange(50), 2), [], names)
    cfg = tmp_cfg({"prune.concept": "c49"})
    pairs = prune.choose_concepts(cfg, held)
    assert len(pairs) in (20, 21) and ("c49", 49) in pairs
    assert pairs == prune.choose_concepts(cfg, held)  # reproducible
    assert [c for _, c in pairs[:20]] == sorted(c for _, c in pairs[:20])
    other = prune.choose_concepts(tmp_cfg({"prune.concept": "c49", "seed": 1}), held)
    assert other != pairs
    every = prune.choose_concepts(
        tmp_cfg({"prune.max_concepts": None, "prune.concept": "c3"}), held
    )
    assert [c for _, c in every] == list(range(50))


def test_an_sae_layer_is_never_pruned(tmp_cfg):
    index = {"layers": {"layers.0.out": {}, "sae.layers.0.out.k32": {}, "classifier": {}}}
    assert prune.prune_layers(tmp_cfg(), index) == ["layers.0.out"]
    with pytest.raises(KeyError, match="an SAE's latents"):
        prune.prune_layers(tmp_cfg({"prune.layers": ["sae.layers.0.out.k32"]}), index)
