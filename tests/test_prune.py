"""Concept-specific pruning: exact masks, bit-identical restore, seeded control, end to end."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest
import torch

from andlib.config import rng
from andlib.evaluate import prune
from andlib.evaluate.prune import (
    ASTSuffix,
    NeuronPruner,
    bootstrap_ci,
    concept_metrics,
    concept_words,
    layer_cap,
    masked_logits,
    matches_open_concepts,
    pruning_summary,
    random_neurons,
    select_neurons,
    stem,
)
from andlib.report import figures
from andlib.store import ArtifactError
from tests.test_evaluate import AST_PATHS, CLASSES, make_run

LAYERS = {layer: path for layer, (path, _) in AST_PATHS.items()}
SIZES = {layer: n for layer, (_, n) in AST_PATHS.items()}


def _inputs(fe, n: int = 3, seed: int = 0) -> dict[str, torch.Tensor]:
    gen = np.random.default_rng(seed)
    audio = [gen.normal(scale=0.1, size=16000).astype(np.float32) for _ in range(n)]
    return dict(fe(audio, sampling_rate=16000, return_tensors="pt"))


def _record(model, path: str, inputs) -> tuple[torch.Tensor, torch.Tensor]:
    """(the module's raw output, the logits) of one forward pass."""
    seen = {}

    def hook(module, args, output):
        seen["out"] = (output[0] if isinstance(output, tuple) else output).detach().clone()

    handle = model.get_submodule(path).register_forward_hook(hook)
    try:
        with torch.no_grad():
            logits = model(**inputs).logits
    finally:
        handle.remove()
    return seen["out"], logits


def test_plan_picks_the_producing_weights_or_a_hook(tiny_ast):
    model, _ = tiny_ast
    pruner = NeuronPruner(model, LAYERS, SIZES)
    base = "audio_spectrogram_transformer.layers"
    assert pruner.plan("layers.0.attn") == ("weights", f"{base}.0.attention.o_proj")
    assert pruner.plan("layers.0.mlp") == ("weights", f"{base}.0.mlp.fc1")
    assert pruner.plan("layers.1.out") == ("hook", f"{base}.1")
    assert pruner.plan("classifier") == ("hook", "classifier")
    # without its size an activation falls back to the (always exact) output hook
    assert NeuronPruner(model, LAYERS).plan("layers.0.mlp")[0] == "hook"


@pytest.mark.parametrize("layer", list(AST_PATHS))
def test_pruned_neurons_are_exactly_zero_and_restore_is_bit_identical(tiny_ast, layer):
    model, fe = tiny_ast
    inputs = _inputs(fe)
    path = LAYERS[layer]
    out_before, logits_before = _record(model, path, inputs)
    chosen = [0, 2, SIZES[layer] - 1]
    state = {k: v.clone() for k, v in model.state_dict().items()}

    pruner = NeuronPruner(model, LAYERS, SIZES)
    assert pruner.prune(layer, chosen) == 3
    out_after, logits_after = _record(model, path, inputs)
    assert torch.all(out_after[..., chosen] == 0)
    others = [i for i in range(SIZES[layer]) if i not in chosen]
    assert torch.equal(out_after[..., others], out_before[..., others])  # upstream untouched
    assert not torch.equal(logits_after, logits_before)

    pruner.restore()
    out_restored, logits_restored = _record(model, path, inputs)
    assert torch.equal(out_restored, out_before) and torch.equal(logits_restored, logits_before)
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k


def test_pruning_accumulates_and_the_context_manager_restores_on_error(tiny_ast):
    model, fe = tiny_ast
    inputs = _inputs(fe)
    _, logits_before = _record(model, LAYERS["classifier"], inputs)
    pruner = NeuronPruner(model, LAYERS, SIZES)
    selection = {"layers.0.mlp": [1, 5], "layers.0.attn": [3], "layers.1.out": [0, 7]}
    with pytest.raises(RuntimeError), pruner.pruned(selection):
        pruner.prune("layers.0.mlp", [9])  # on top of the first two
        out, _ = _record(model, LAYERS["layers.0.mlp"], inputs)
        assert torch.all(out[..., [1, 5, 9]] == 0)
        assert pruner.pruned_neurons["layers.0.mlp"] == {1, 5, 9}
        raise RuntimeError("boom")
    _, logits_after = _record(model, LAYERS["classifier"], inputs)
    assert torch.equal(logits_after, logits_before)
    assert pruner.pruned_neurons == {}
    with pytest.raises(IndexError):
        pruner.prune("layers.0.attn", [SIZES["layers.0.attn"]])


def test_stemming_and_concept_words():
    assert concept_words("water_drops") == ["water", "drop"]
    for a, b in [
        ("drops", "drop"),
        ("crying", "cry"),
        ("cries", "cry"),
        ("dripping", "drip"),
        ("sneezing", "sneeze"),
        ("glasses", "glass"),
        ("bells", "bell"),
        ("knocking", "knock"),
    ]:
        assert stem(a) == stem(b), (a, b)
    assert stem("bus") == "bus" and stem("glass") == "glass"


def test_open_concept_matching_rules():
    have = ["water", "drops", "sound"]
    assert matches_open_concepts(have, "water_drops", "all")
    assert not matches_open_concepts(["water", "sound"], "water_drops", "all")
    assert matches_open_concepts(["water", "sound"], "water_drops", "any")
    assert not matches_open_concepts(["water", "sound"], "water_drops", "head")
    assert matches_open_concepts(["drops"], "water_drops", "head")
    assert not matches_open_concepts([], "dog")
    with pytest.raises(ValueError):
        matches_open_concepts(have, "dog", "most")


def test_selection_strategies_on_a_hand_made_table():
    neurons = pd.DataFrame(
        {
            "layer": ["a", "a", "a", "b", "b", "c"],
            "neuron": [0, 1, 2, 0, 1, 0],
            "open_concepts": ["dog;bark", "water;drop", "water", "drops;water", "", "dog"],
            "db_soft_wpmi": ["dog", "rain", "water_drops", "rain", "dog", "dog"],
            "db_soft_wpmi_top5": [
                "dog;rain;wind",
                "rain;wind;water_drops",
                "water_drops;dog",
                "rain;wind;sea_waves;water_drops",
                "dog",
                "dog",
            ],
            "tab": ["", "water_drops", "", "", "", ""],
            "tab_top5": ["", "water_drops;rain", "", "", "", ""],
        }
    )
    kw = {"layers": ["a", "b"], "top_n": 3}
    assert select_neurons(neurons, "water_drops", "ocp", **kw) == {"a": [1], "b": [0]}
    assert select_neurons(neurons, "water_drops", "ocp", ocp_match="any", **kw) == {
        "a": [1, 2],
        "b": [0],
    }
    assert select_neurons(neurons, "water_drops", "db", **kw) == {"a": [1, 2]}  # b/0: 4th
    assert select_neurons(neurons, "water_drops", "db", layers=["a"], top_n=1) == {"a": [2]}
    assert select_neurons(neurons, "Water Drops", "tab", **kw) == {"a": [1]}
    assert select_neurons(neurons, "dog", "db", **kw) == {"a": [0, 2], "b": [1]}  # not layer c
    assert select_neurons(neurons, "dog", "db", top_n=3) == {"a": [0, 2], "b": [1], "c": [0]}
    with pytest.raises(ValueError):
        select_neurons(neurons, "dog", "random")


def test_random_control_uses_the_seed(tmp_cfg):
    counts, sizes = {"a": 3, "b": 2, "c": 0}, {"a": 50, "b": 40, "c": 10}
    same = [random_neurons(counts, sizes, rng(tmp_cfg({"seed": 0}), "prune", "dog")) for _ in "ab"]
    assert same[0] == same[1]
    assert {k: len(v) for k, v in same[0].items()} == {"a": 3, "b": 2}
    other_seed = random_neurons(counts, sizes, rng(tmp_cfg({"seed": 1}), "prune", "dog"))
    other_concept = random_neurons(counts, sizes, rng(tmp_cfg({"seed": 0}), "prune", "rain"))
    assert other_seed != same[0] and other_concept != same[0]


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


def test_bootstrap_ci_hand_made_cases():
    low, high = bootstrap_ci([2.0] * 7, 500, seed=3)
    assert low == high == pytest.approx(2.0)
    values = np.array([0.1, -0.4, 0.25, 1.0, 0.0])
    gen = np.random.default_rng(11)
    means = values[gen.integers(0, 5, size=(2000, 5))].mean(axis=1)
    expected = np.quantile(means, [0.05, 0.95])
    assert bootstrap_ci(values, 2000, seed=11, level=0.90) == pytest.approx(tuple(expected))
    assert bootstrap_ci(list(values) + [np.nan], 2000, 11, 0.90) == pytest.approx(tuple(expected))
    wide, narrow = bootstrap_ci(values, 2000, 11, 0.99), bootstrap_ci(values, 2000, 11, 0.5)
    assert wide[0] < narrow[0] < narrow[1] < wide[1]
    assert all(np.isnan(bootstrap_ci([], 100, 0)))


def test_summary_averages_draws_and_compares_the_same_classes():
    rows = []
    for concept, (a, r) in {"dog": (1.0, 0.2), "rain": (0.5, 0.5), "sea": (0.0, 0.0)}.items():
        rows.append(("db", concept, 0, 10 if concept != "sea" else 0, a, r))
        for draw in range(3):  # random: ΔA − ΔR of 0, 0.3, 0.6 -> mean 0.3 per class
            rows.append(("random", concept, draw, 10, 0.1 * draw, -0.2 * draw))
    rows.append(("db", "not_a_class", 0, 4, np.nan, 0.1))  # no ΔA: not in the comparison
    df = pd.DataFrame(
        rows, columns=["strategy", "concept", "draw", "n_pruned", "delta_a", "delta_r"]
    )
    for col in ["delta_a_prob", "delta_r_prob", "acc_a_before", "acc_a_after"]:
        df[col] = 0.0
    df["acc_r_before"] = df["acc_r_after"] = 1.0
    table = pruning_summary(df, 1000, seed=0).set_index("strategy")
    assert table.loc["db", "n_concepts"] == table.loc["random", "n_concepts"] == 3
    assert table.loc["db", "n_acted"] == 2 and table.loc["random", "n_acted"] == 3
    assert table.loc["db", "delta_a_minus_r_mean"] == pytest.approx((0.8 + 0 + 0) / 3)
    assert table.loc["random", "delta_a_minus_r_mean"] == pytest.approx(0.3)
    assert table.loc["random", "ci_low"] == pytest.approx(0.3)  # every class: 0.3
    assert table.loc["db", "n_pruned_mean"] == pytest.approx(20 / 3)
    assert table.loc["db", "vs_random_mean"] == pytest.approx(0.8 / 3 - 0.3)
    assert np.isnan(table.loc["random", "vs_random_mean"])


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


EXTRA_PATHS = {
    **LAYERS,
    "layers.0.out": "audio_spectrogram_transformer.layers.0",
    "layers.1.attn": "audio_spectrogram_transformer.layers.1.attention",
    "layers.1.mlp": "audio_spectrogram_transformer.layers.1.mlp.fc1",
}
EXTRA_SIZES = {**SIZES, "layers.0.out": 32, "layers.1.attn": 32, "layers.1.mlp": 64}


def test_cached_suffix_equals_a_full_masked_forward(tiny_ast):
    model, fe = tiny_ast
    batches = [_inputs(fe, n=3, seed=0), _inputs(fe, n=2, seed=1)]
    labels = np.array([0, 1, 2, 0, 3])
    selections = [
        {"layers.0.attn": [1, 4]},
        {"layers.0.mlp": [0, 9, 63], "layers.1.out": [5]},
        {"layers.0.out": [2, 3]},
        {"layers.1.attn": [0, 31]},
        {"layers.1.mlp": [7, 8], "classifier": [1]},
        {"layers.1.out": [0, 1, 2]},
        {"classifier": [2]},
        {"layers.1.mlp": [3], "layers.0.attn": [6], "layers.0.mlp": [1], "layers.1.out": [9]},
        {},
        {"layers.0.attn": [1, 4]},  # a repeat
    ]
    pruner = NeuronPruner(model, EXTRA_PATHS, EXTRA_SIZES)
    runner = ASTSuffix.build(model, EXTRA_PATHS)
    assert runner is not None and runner.points["layers.1.mlp"] == (1, "mlp")
    before_fast, fast = masked_logits(model, batches, pruner, selections, fast=True)
    before_plain, plain = masked_logits(model, batches, pruner, selections, fast=False)
    torch.testing.assert_close(before_fast, before_plain, atol=1e-5, rtol=1e-5)
    for sel, f, p in zip(selections, fast, plain, strict=True):
        torch.testing.assert_close(f, p, atol=1e-5, rtol=1e-5, msg=str(sel))
        if sel:
            assert not torch.allclose(p, before_plain)
        mf = concept_metrics(before_fast, f, labels, 0)
        mp = concept_metrics(before_plain, p, labels, 0)
        for k in ("delta_a", "delta_r", "delta_a_prob", "delta_r_prob"):
            assert mf[k] == pytest.approx(mp[k], abs=1e-5), (sel, k)
    assert torch.equal(fast[8], before_fast)
    # the plain reference is itself what NeuronPruner + a HF forward give
    with pruner.pruned(selections[1]), torch.no_grad():
        direct = torch.cat([model(**b).logits for b in batches])
    torch.testing.assert_close(plain[1], direct)
    # not an AST, or a layer at no known point: full forwards
    assert ASTSuffix.build(model, {"x": "audio_spectrogram_transformer.layernorm"}) is None
    assert ASTSuffix.build(model.train(), LAYERS) is None


def test_db_selection_is_capped_per_layer_keeping_the_best_scores():
    neurons = pd.DataFrame(
        {
            "layer": ["a"] * 5 + ["b"] * 2,
            "neuron": [0, 1, 2, 3, 4, 0, 1],
            "db_cos": ["dog"] * 7,
            "db_cos_top5": ["dog;rain"] * 7,
            "db_cos_top5_scores": ["0.1;0", "0.5;0", "0.3;0", "0.5;0", "0.2;0", "0.4;0", "0.9;0"],
        }
    )
    sizes = {"a": 5, "b": 2}
    kw = {"db_similarity": "cos", "layer_sizes": sizes}
    assert select_neurons(neurons, "dog", "db", **kw) == {"a": [0, 1, 2, 3, 4], "b": [0, 1]}
    # 40 % of 5 = 2 in a (the two best: 1 and 3 tie at 0.5, kept in neuron order), 0.8 -> 1 in b
    assert select_neurons(neurons, "dog", "db", max_share=0.4, **kw) == {"a": [1, 3], "b": [1]}
    assert select_neurons(neurons, "dog", "db", max_share=0.01, **kw) == {"a": [1], "b": [1]}
    assert layer_cap(512, 0.05) == 25 and layer_cap(10, 0.05) == 1 and layer_cap(5, None) is None


def test_the_cap_needs_the_concept_scores():
    neurons = pd.DataFrame(
        {"layer": ["a"], "neuron": [0], "db_cos": ["dog"], "db_cos_top5": ["dog"]}
    )
    with pytest.raises(ArtifactError, match="db_cos_top5_scores"):
        select_neurons(
            neurons, "dog", "db", db_similarity="cos", max_share=0.5, layer_sizes={"a": 1}
        )
