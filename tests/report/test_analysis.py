"""Analyses on small hand-made inputs with known answers, and the stage on a hand-made run."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from andlib.report import analysis as an
from andlib.report import measures
from andlib.store import RunDir
from tests.report.test_browser import LAYERS, make_run_dir


def _neurons(rows: list[tuple[str, int, str, str]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["layer", "neuron", "adjectives", "open_concepts"])


# ---- layers ----------------------------------------------------------------------------------


def test_layers_sort_by_block_then_kind_with_the_classifier_last():
    layers = ["classifier", "layers.10.out", "layers.2.mlp", "layers.2.out", "layers.2.attn"]
    layers += ["layers.10.attn", "pooler", "encoder.layer.3.intermediate"]
    assert an.sort_layers(layers) == [
        "layers.2.attn",
        "layers.2.mlp",
        "layers.2.out",
        "encoder.layer.3.intermediate",
        "layers.10.attn",
        "layers.10.out",
        "pooler",
        "classifier",
    ]
    assert an.layer_depths(["classifier", "layers.1.mlp", "layers.0.mlp"]) == {
        "layers.0.mlp": 0,
        "layers.1.mlp": 1,
        "classifier": 2,
    }


# ---- adjectives ------------------------------------------------------------------------------


def test_adjective_counts_count_each_neuron_once():
    neurons = _neurons(
        [
            ("layers.0.mlp", 0, "loud;high-pitched;Loud", ""),
            ("layers.0.mlp", 1, "loud", ""),
            ("layers.1.mlp", 0, " quiet ; loud", ""),
            ("layers.1.mlp", 1, "", ""),
        ]
    )
    counts = an.adjective_counts(neurons)
    assert counts.to_dict("list") == {
        "adjective": ["loud", "high-pitched", "quiet"],
        "count": [3, 1, 1],
        "fraction": [0.75, 0.25, 0.25],
    }
    assert an.adjective_counts(_neurons([("a", 0, "", "")])).empty


def test_adjectives_per_layer_means_and_an_exact_slope():
    rows = []
    for depth, layer in enumerate(["layers.0.mlp", "layers.1.mlp", "layers.2.mlp", "classifier"]):
        for j in range(3):  # depth d: every neuron has d + 1 adjectives -> slope exactly 1
            rows.append((layer, j, ";".join(f"adj{i}" for i in range(depth + 1)), ""))
    neurons = _neurons(rows[::-1])  # order of rows must not matter
    per_layer = an.adjectives_per_layer(neurons)
    assert per_layer["layer"].tolist() == [
        "layers.0.mlp",
        "layers.1.mlp",
        "layers.2.mlp",
        "classifier",
    ]
    assert per_layer["mean_adjectives"].tolist() == [1.0, 2.0, 3.0, 4.0]
    assert per_layer["n_neurons"].tolist() == [3, 3, 3, 3]
    trend = an.adjective_trend(neurons)
    assert trend["slope"] == pytest.approx(1.0)
    assert trend["intercept"] == pytest.approx(1.0)
    assert trend["ci_low"] == pytest.approx(1.0) and trend["ci_high"] == pytest.approx(1.0)
    assert trend["n"] == 12 and trend["r"] == pytest.approx(1.0)


def test_linear_trend_confidence_interval_matches_the_t_formula():
    x = np.array([0, 1, 2, 3, 4, 5], dtype=float)
    y = np.array([1.0, 2.5, 2.0, 4.5, 4.0, 6.0])
    t = an.linear_trend(x, y, confidence=0.9)
    sxx = ((x - x.mean()) ** 2).sum()
    slope = ((x - x.mean()) * (y - y.mean())).sum() / sxx
    resid = y - (slope * x + (y.mean() - slope * x.mean()))
    stderr = np.sqrt((resid**2).sum() / 4 / sxx)
    half = stats.t.ppf(0.95, 4) * stderr
    assert t["slope"] == pytest.approx(slope)
    assert t["ci_low"] == pytest.approx(slope - half) and t["ci_high"] == pytest.approx(
        slope + half
    )
    assert t["resid_std"] == pytest.approx(np.sqrt((resid**2).sum() / 4))
    # too little or degenerate data: NaN, never an exception
    assert np.isnan(an.linear_trend([1, 1, 1], [1, 2, 3])["slope"])
    two = an.linear_trend([0, 1], [0, 2])
    assert two["slope"] == pytest.approx(2.0) and np.isnan(two["ci_low"])


# ---- polysemantic neurons --------------------------------------------------------------------


def _blobs(n_per: int = 6, centers: int = 3, seed: int = 0):
    g = np.random.default_rng(seed)
    ids, emb, truth = [], [], {}
    for c in range(centers):
        center = np.zeros(8)
        center[c] = 10.0
        for i in range(n_per):
            cid = f"c{c}_{i}"
            ids.append(cid)
            emb.append(center + 0.1 * g.standard_normal(8))
            truth[cid] = c
    return ids, np.array(emb), truth


def test_clusters_recover_clear_blobs_and_spreads_are_counted():
    ids, emb, truth = _blobs()
    clusters = an.cluster_captions(ids, emb, n_clusters=3, seed=0)
    # one cluster per blob (labels are arbitrary, the partition is not)
    assert {frozenset(c for c in ids if clusters[c] == k) for k in range(3)} == {
        frozenset(c for c in ids if truth[c] == b) for b in range(3)
    }
    tops = pd.DataFrame(
        {
            "layer": ["layers.0.mlp", "layers.0.mlp", "layers.1.mlp", "layers.1.mlp"],
            "neuron": [0, 1, 0, 1],
            "clips": [
                ["c0_0", "c0_1", "c0_2"],  # one cluster
                ["c0_0", "c1_0", "c2_0"],  # three clusters
                ["c1_0", "c1_1", "c2_5", "uncaptioned"],  # two (unknown clips ignored)
                ["c2_1", "c1_2", "c0_3", "c0_4"],  # three
            ],
        }
    )
    assert an.cluster_spread(tops, clusters).tolist() == [1, 3, 2, 3]
    poly = an.polysemanticity(tops, clusters, threshold=3)
    assert poly["polysemantic"].tolist() == [False, True, False, True]
    per_layer = an.polysemantic_per_layer(poly)
    assert per_layer["n_polysemantic"].tolist() == [1, 1]
    assert per_layer["fraction"].tolist() == [0.5, 0.5]
    assert per_layer["mean_clusters"].tolist() == [2.0, 2.5]


def test_clustering_is_seeded_and_copes_with_few_distinct_captions():
    ids, emb, _ = _blobs(seed=1)
    a = an.cluster_captions(ids, emb, n_clusters=5, seed=3)
    b = an.cluster_captions(ids, emb, n_clusters=5, seed=3)
    assert a.equals(b)
    same = an.cluster_captions(["a", "b", "c"], np.ones((3, 4)), n_clusters=11)
    assert same.tolist() == [0, 0, 0]


def test_top_clips_come_from_neuron_topk_or_neurons_csv():
    topk = pd.DataFrame(
        {
            "layer": ["L"] * 6,
            "neuron": [0] * 6,
            "end": ["high", "high", "high", "low", "low", "low"],
            "rank": [2, 0, 1, 0, 1, 2],
            "clip_id": ["c", "a", "b", "x", "y", "z"],
            "activation": [1.0, 3, 2, -1, -2, -3],
        }
    )
    assert an.top_clips_table(topk=topk, k=2)["clips"].tolist() == [["a", "b"]]
    neurons = pd.DataFrame({"layer": ["L"], "neuron": [0], "top_clips": ["a b c"]})
    assert an.top_clips_table(neurons, k=2)["clips"].tolist() == [["a", "b"]]


# ---- acoustic features vs concepts -----------------------------------------------------------


def test_description_balance_and_shares_per_layer():
    neurons = _neurons(
        [
            ("layers.0.mlp", 0, "loud;sharp", "dog"),  # acoustic
            ("layers.0.mlp", 1, "loud", ""),  # acoustic
            ("layers.0.mlp", 2, "loud", "dog;bark"),  # concept
            ("layers.0.mlp", 3, "", ""),  # tie
            ("layers.1.mlp", 0, "", "rain"),  # concept
            ("layers.1.mlp", 1, "soft", "rain"),  # tie
        ]
    )
    bal = an.description_balance(neurons)
    assert bal["dominant"].tolist() == ["acoustic", "acoustic", "concept", "tie", "concept", "tie"]
    assert bal["n_adjectives"].tolist() == [2, 1, 1, 0, 0, 1]
    shares = an.balance_per_layer(bal).set_index("layer")
    assert shares.loc["layers.0.mlp", ["acoustic", "concept", "tie"]].tolist() == [0.5, 0.25, 0.25]
    assert shares.loc["layers.1.mlp", ["acoustic", "concept", "tie"]].tolist() == [0.0, 0.5, 0.5]
    assert shares["n_neurons"].tolist() == [4, 2]


def test_ridge_r2_is_high_for_a_linear_neuron_and_not_positive_for_noise():
    g = np.random.default_rng(0)
    X = g.standard_normal((300, 6)) * [1, 10, 100, 0.1, 1, 1]  # scales differ: standardized
    X[::7, 2] = np.nan  # missing measurements are imputed
    Xf = np.where(np.isnan(X), np.nanmedian(X, axis=0), X)
    linear = Xf @ np.array([1.0, 0.2, 0.01, 5.0, 0.0, -1.0]) + 0.01 * g.standard_normal(300)
    noise = g.standard_normal(300)
    Y = np.stack([linear, noise, np.full(300, 3.0)], axis=1)
    r2 = an.ridge_cv_r2(X, Y, alpha=1.0, folds=5, seed=0)
    assert r2[0] > 0.99
    assert r2[1] < 0.02
    assert np.isnan(r2[2])  # a constant neuron has no variance to explain
    # one vectorised multi-output fit equals fitting each neuron alone
    assert an.ridge_cv_r2(X, Y[:, 1], seed=0)[0] == pytest.approx(r2[1])


def test_feature_matrix_aligns_clips_and_keeps_numeric_columns():
    features = pd.DataFrame(
        {
            "clip_id": ["b", "a", "c"],
            "rms_db": [-10.0, -20.0, -30.0],
            "f0_hz": ["", "220", "nan"],  # numeric, read as text with empty cells
            "note": ["x", "y", "z"],  # text: not a feature
            "fold": [1, 1, 2],  # metadata: not a feature
        }
    )
    X, cols = an.feature_matrix(features, ["a", "b", "missing"])
    assert cols == ["rms_db", "f0_hz"]
    np.testing.assert_array_equal(X[0], [-20.0, 220.0])
    assert X[1, 0] == -10.0 and np.isnan(X[1, 1])
    assert np.isnan(X[2]).all()


# ---- the stage -------------------------------------------------------------------------------


class FakeEmbedder:
    """Embeds a caption by the tone frequency it names: clusters follow pitch."""

    def encode(self, texts):
        freqs = [float(t.split(" at ")[1].split(" Hz")[0]) for t in texts]
        return np.array([[np.log(f), 1.0] for f in freqs], dtype=np.float32)


@pytest.fixture
def fake_embedder(monkeypatch):
    import andlib.text.embeddings

    monkeypatch.setattr(andlib.text.embeddings, "get_embedder", lambda cfg=None: FakeEmbedder())


def test_run_stage_writes_tables_and_figures_then_is_cached(tmp_cfg, fake_embedder, monkeypatch):
    cfg = tmp_cfg({"k": 3, "analysis.n_clusters": 4, "analysis.polysemantic_threshold": 2})
    run = make_run_dir(cfg)
    summary = an.run_stage(cfg, run)
    for name in (
        "adjective_counts.csv",
        "adjectives_per_layer.csv",
        "adjective_trend.json",
        "caption_clusters.csv",
        "neuron_polysemanticity.csv",
        "polysemantic_per_layer.csv",
        "description_balance.csv",
        "acoustic_vs_concepts.csv",
        "feature_r2.csv",
        "feature_r2_per_layer.csv",
    ):
        assert (run / "analysis" / name).exists(), name
    for name in (
        "adjective_distribution",
        "adjectives_per_layer",
        "polysemantic_neurons",
        "acoustic_vs_concepts",
        "acoustic_feature_r2",
    ):
        assert (cfg.figures_path / f"{name}.png").exists() and (
            cfg.figures_path / f"{name}.pdf"
        ).exists()
    counts = pd.read_csv(run / "analysis" / "adjective_counts.csv").set_index("adjective")["count"]
    assert counts.to_dict() == {"high-pitched": 6, "loud": 6, "quiet": 5}
    poly = pd.read_csv(run / "analysis" / "neuron_polysemanticity.csv")
    assert len(poly) == sum(LAYERS.values()) and poly["n_clusters"].between(1, 3).all()
    assert set(pd.read_csv(run / "analysis" / "caption_clusters.csv")["cluster"]) == {0, 1, 2, 3}
    r2 = pd.read_csv(run / "analysis" / "feature_r2.csv")
    assert len(r2) == sum(LAYERS.values())
    assert set(summary) >= {"adjective_slope", "polysemantic_fraction", "feature_r2_median"}
    trend = json.loads((run / "analysis" / "adjective_trend.json").read_text())
    assert {"slope", "ci_low", "ci_high", "n", "confidence"} <= set(trend)
    assert trend["n"] == sum(LAYERS.values()) and trend["confidence"] == cfg.analysis.confidence
    assert an.run_stage(cfg, run)["analysis"] == "cached"

    # another clustering setting asks the embedder for exactly the same captions again (its
    # disk cache answers them: tests/test_embeddings_cache.py), and nothing else
    asked: list[list[str]] = []
    real = an.caption_embeddings

    def recording(cfg, run, texts):
        asked.append(list(texts))
        return real(cfg, run, texts)

    monkeypatch.setattr(an, "caption_embeddings", recording)
    cfg3 = tmp_cfg({"k": 3, "analysis.n_clusters": 3, "analysis.polysemantic_threshold": 2})
    an.compute_tables(cfg3, run)
    captions = pd.read_csv(run / "captions.csv", keep_default_na=False)["caption"].tolist()
    assert len(asked) == 1 and sorted(asked[0]) == sorted(captions)
    assert set(pd.read_csv(run / "analysis" / "caption_clusters.csv")["cluster"]) == {0, 1, 2}


def test_run_stage_skips_analyses_whose_inputs_are_missing(tmp_cfg, fake_embedder):
    cfg = tmp_cfg({"k": 3})
    run = make_run_dir(cfg)
    for name in ("captions.csv", "features.csv"):
        (run / name).unlink()
    run.write_csv("analysis/feature_r2.csv", pd.DataFrame({"layer": ["old"], "r2": [1.0]}))
    an.run_stage(cfg, run)  # ... and a table left from an earlier run is removed
    assert (run / "analysis" / "adjective_counts.csv").exists()
    assert not (run / "analysis" / "polysemantic_per_layer.csv").exists()
    assert not (run / "analysis" / "feature_r2.csv").exists()
    figs = an.make_figures(cfg, run, prefix="supervised")  # a model prefix for the names
    assert sorted(figs) == [  # class purity needs only top clips and their categories
        "acoustic_vs_concepts",
        "adjective_distribution",
        "adjectives_per_layer",
        "class_purity",
    ]
    assert (cfg.figures_path / "supervised_adjective_distribution.pdf").exists()


# ---- comparison of training strategies --------------------------------------------------------


def _strategy_run(
    path, frac: list[float], adj: list[float], top1: float, sim: list[float]
) -> RunDir:
    run = RunDir(path)
    layers = ["layers.0.mlp", "layers.1.mlp"]
    run.write_csv(
        "analysis/polysemantic_per_layer.csv",
        pd.DataFrame(
            {
                "layer": layers,
                "depth": [0, 1],
                "n_neurons": 4,
                "n_polysemantic": 0,
                "fraction": frac,
            }
        ),
    )
    run.write_csv(
        "analysis/adjectives_per_layer.csv",
        pd.DataFrame({"layer": layers, "depth": [0, 1], "n_neurons": 4, "mean_adjectives": adj}),
    )
    run.write_json(
        "last_layer.json",
        {"acoustic": {"soft_wpmi": {"top1": top1, "top5": 1.0, "cos": 0.5, "n_neurons": 50}}},
    )
    run.write_json("model.json", {"model_id": "trained:x", "heldout_accuracy": 0.55})
    run.write_csv(
        "analysis/class_purity_per_layer.csv",
        pd.DataFrame({"layer": layers, "depth": [0, 1], "mean_purity": 0.6, "chance": 0.22}),
    )
    run.write_csv(
        "scores.csv",
        pd.DataFrame(
            {
                "layer": [layers[0], layers[0], layers[1], layers[1]],
                "neuron": [0, 1, 0, 0],
                "scorer": "simulation",
                "metric": "pearson",
                "variant": ["own", "own", "own", "random"],
                "value": [sim[0] - 0.1, sim[0] + 0.1, sim[1], 0.9],
                "n": 10,
            }
        ),
    )
    run.write_csv(
        "neurons.csv",
        pd.DataFrame(
            {
                "layer": layers,
                "neuron": [0, 0],
                "adjectives": ["loud", "loud;soft"],
                "open_concepts": "",
            }
        ),
    )
    return run


def test_class_purity_is_the_share_of_top_clips_in_their_most_common_class():
    tops = pd.DataFrame(
        {
            "layer": ["layers.0.mlp", "layers.0.mlp", "layers.1.mlp"],
            "neuron": [0, 1, 0],
            "clips": [["a", "b", "c", "d"], ["a", "e", "f", "x"], ["x", "y"]],
        }
    )
    category = {"a": "dog", "b": "dog", "c": "dog", "d": "cat", "e": "rain", "f": "cat", "y": ""}
    purity = an.class_purity(tops, category)
    assert purity["purity"].tolist()[:2] == [0.75, pytest.approx(1 / 3)]
    assert purity["top_class"].iloc[0] == "dog"
    assert np.isnan(purity["purity"].iloc[2])  # no top clip has a category
    per_layer = an.purity_per_layer(purity, chance=0.2)
    row = per_layer.set_index("layer").loc["layers.0.mlp"]
    assert row["mean_purity"] == pytest.approx((0.75 + 1 / 3) / 2) and row["chance"] == 0.2
    assert "layers.1.mlp" not in set(per_layer["layer"])


def test_chance_purity_matches_random_draws_and_reaches_one_for_a_single_class():
    balanced = [f"c{i % 50}" for i in range(2000)]
    # K = 5 from 50 balanced classes: purity is 1/5 unless two clips share a class
    assert 0.2 < an.chance_purity(balanced, 5, seed=0) < 0.25
    assert an.chance_purity(["dog"] * 10, 5, seed=0) == 1.0


def test_compare_runs_collects_metrics_side_by_side(tmp_path):
    runs = {
        "supervised": _strategy_run(tmp_path / "sup", [0.1, 0.05], [2.0, 1.0], 0.8, [0.4, 0.3]),
        "ssl-frozen": _strategy_run(tmp_path / "ssl", [0.3, 0.4], [1.5, 1.5], 0.5, [0.2, 0.1]),
    }
    df = an.compare_runs(runs)
    assert list(df.columns) == ["model", "metric", "layer", "depth", "value"]

    def value(model, metric, layer):
        sel = df[(df.model == model) & (df.metric == metric) & (df.layer == layer)]
        assert len(sel) == 1
        return float(sel["value"].iloc[0])

    assert value("ssl-frozen", "polysemantic_fraction", "layers.1.mlp") == 0.4
    assert value("supervised", "mean_adjectives", "layers.0.mlp") == 2.0
    assert value("supervised", "simulation_pearson", "layers.0.mlp") == pytest.approx(0.4)
    assert value("supervised", "simulation_pearson", "layers.1.mlp") == pytest.approx(0.3)
    assert value("ssl-frozen", "last_layer_top1", "acoustic / soft_wpmi") == 0.5
    assert value("supervised", "acoustic_share", "layers.1.mlp") == 1.0  # from neurons.csv
    assert value("supervised", "heldout_accuracy", "model") == 0.55
    assert value("ssl-frozen", "class_purity", "layers.0.mlp") == 0.6
    assert df.loc[df.metric == "last_layer_top1", "depth"].isna().all()
    assert df.loc[df.layer == "layers.1.mlp", "depth"].eq(1).all()


def test_depth_trends_regress_purity_and_polysemanticity_on_block_over_hidden_layers(tmp_path):
    run = RunDir(tmp_path / "run")
    layers = ["layers.0.mlp"] * 4 + ["layers.1.mlp"] * 4 + ["classifier"] * 2
    run.write_csv(
        "analysis/class_purity.csv",
        pd.DataFrame(
            {"layer": layers, "neuron": range(10), "purity": [0.2] * 4 + [0.6] * 4 + [1.0] * 2}
        ),
    )
    run.write_csv(
        "analysis/neuron_polysemanticity.csv",
        pd.DataFrame(
            {
                "layer": layers,
                "neuron": range(10),
                "polysemantic": [True, True, False, False] * 2 + [True, True],
            }
        ),
    )
    trends = an.depth_trends({"m": run}).set_index("metric")
    purity = trends.loc["class_purity"]
    assert purity["slope"] == pytest.approx(0.4) and purity["n"] == 8  # classifier left out
    assert purity["mean"] == pytest.approx(0.4)
    assert trends.loc["polysemantic", "slope"] == pytest.approx(0.0)
    assert an.depth_trends({"empty": RunDir(tmp_path / "none")}).empty


def test_run_comparison_on_a_strategies_config(tmp_cfg):
    cfg = tmp_cfg({"strategies": ["supervised", "ssl-frozen", "ssl-finetuned"]})
    _strategy_run(cfg.run_path / "supervised", [0.1, 0.05], [2.0, 1.0], 0.8, [0.4, 0.3])
    _strategy_run(cfg.run_path / "ssl-frozen", [0.3, 0.4], [1.5, 1.5], 0.5, [0.2, 0.1])
    parent = RunDir.from_config(cfg)
    summary = an.run_stage(cfg, parent)  # no neurons.csv of its own: compares the strategies
    assert summary["comparison_models"] == ["supervised", "ssl-frozen"]
    assert summary["missing"] == ["ssl-finetuned"]
    assert not (cfg.run_path / "ssl-finetuned").exists()  # looking does not create it
    table = pd.read_csv(parent / "analysis" / "strategies_comparison.csv")
    assert (parent / "analysis" / "strategies_trends.csv").exists()
    assert set(table["model"]) == {"supervised", "ssl-frozen"}
    for name in ("strategies_comparison", "strategies_adjective_distribution"):
        assert (cfg.figures_path / f"{name}.png").exists() and (
            cfg.figures_path / f"{name}.pdf"
        ).exists()


# ---- the strategies over training seeds ------------------------------------------------------


def _seed_run(path, purity_slope: float, heldout: float, sim: float) -> RunDir:
    """A strategy run of one seed: the comparison metrics of :func:`_strategy_run`, plus
    per-neuron class purity rising by ``purity_slope`` per block (four neurons a block, two
    classifier neurons), a flat polysemantic flag and ``heldout`` accuracy on 400 clips."""
    run = _strategy_run(path, [0.1, 0.05], [2.0, 1.0], 0.8, [sim, sim])
    layers = ["layers.0.mlp"] * 4 + ["layers.1.mlp"] * 4 + ["classifier"] * 2
    base = [0.38, 0.40, 0.42, 0.40]
    purity = base + [p + purity_slope for p in base] + [0.9, 1.0]
    run.write_csv(
        "analysis/class_purity.csv",
        pd.DataFrame({"layer": layers, "neuron": range(10), "purity": purity}),
    )
    run.write_csv(
        "analysis/neuron_polysemanticity.csv",
        pd.DataFrame({"layer": layers, "neuron": range(10), "polysemantic": [True, False] * 5}),
    )
    run.write_json(
        "model.json", {"model_id": "trained:x", "heldout_accuracy": heldout, "n_heldout": 400}
    )
    return run


# supervised narrows faster than ssl-frozen in both seeds; held-out accuracy swaps order
SEED_RUNS = {
    ("supervised", 0): (0.20, 0.55, 0.10),
    ("supervised", 1): (0.30, 0.50, 0.20),
    ("ssl-frozen", 0): (0.05, 0.52, 0.15),
    ("ssl-frozen", 1): (0.10, 0.58, 0.25),
}


def test_seed_runs_are_aggregated_with_their_spread_and_orderings_that_hold_in_every_seed(
    tmp_cfg,
):
    cfg = tmp_cfg({"strategies": ["supervised", "ssl-frozen"], "seeds": [0, 1]})
    for (model, seed), args in SEED_RUNS.items():
        _seed_run(cfg.run_path / model / f"seed{seed}", *args)
    _seed_run(cfg.run_path / "supervised", 9.0, 0.99, 0.9)  # a run without seeds: not read
    runs = an.seed_runs(cfg)
    assert {m: sorted(r) for m, r in runs.items()} == {"supervised": [0, 1], "ssl-frozen": [0, 1]}

    parent = RunDir.from_config(cfg)
    result = an.run_stage(cfg, parent)
    assert result["seeds"] == {"supervised": [0, 1], "ssl-frozen": [0, 1]}
    assert result["missing"] == []
    out = parent.path / "analysis"
    summary = pd.read_csv(out / "strategies_seed_summary.csv")
    # one row per model and measure, with the mean and the spread between seeds
    assert not summary.duplicated(["model", "measure"]).any()
    assert set(summary["model"]) == {"supervised", "ssl-frozen"}
    for column in ("mean", "sd", "min", "max", "spread", "within_half_width"):
        assert summary[column].notna().all(), column
    row = summary.set_index(["model", "measure"])
    slope = row.loc[("supervised", "class_purity_slope")]
    assert slope["n_seeds"] == 2 and slope["seeds"] == "0 1"
    assert slope["mean"] == pytest.approx(0.25) and slope["spread"] == pytest.approx(0.10)
    assert slope["min"] == pytest.approx(0.20) and slope["max"] == pytest.approx(0.30)
    assert slope["sd"] == pytest.approx(np.std([0.20, 0.30], ddof=1))
    held = row.loc[("ssl-frozen", "heldout_accuracy")]
    assert held["mean"] == pytest.approx(0.55)
    assert 0.03 < held["within_half_width"] < 0.06  # Wilson interval on 400 clips
    # an ordering is stated only where it holds in every seed
    assert bool(slope["holds_in_every_seed"]) and slope["rank"] == 1
    assert row.loc[("ssl-frozen", "class_purity_slope"), "rank"] == 2
    assert not row.loc[("supervised", "heldout_accuracy"), "holds_in_every_seed"]
    assert np.isnan(row.loc[("supervised", "heldout_accuracy"), "rank"])
    orderings = pd.read_csv(out / "strategies_orderings.csv").set_index("measure")
    assert orderings.loc["class_purity_slope", "higher"] == "supervised"
    assert bool(orderings.loc["class_purity_slope", "holds_in_every_seed"])
    assert not orderings.loc["heldout_accuracy", "holds_in_every_seed"]
    assert orderings.loc["heldout_accuracy", "share_of_pairs"] == pytest.approx(0.75)
    # simulation: the seed ranges overlap (0.10-0.20 vs 0.15-0.25): no ordering
    assert not orderings.loc["simulation_pearson", "holds_in_every_seed"]
    # the verdict says which hold, and that the others do not
    verdict = (out / "strategies_verdict.txt").read_text()
    assert verdict == result["verdict"] + "\n"
    lines = {line.split(":")[0].lstrip("- "): line for line in verdict.splitlines()[1:]}
    assert "supervised (mean 0.25" in lines[measures.MEASURES["class_purity_slope"]]
    assert "> ssl-frozen (mean 0.075" in lines[measures.MEASURES["class_purity_slope"]]
    assert lines[measures.MEASURES["heldout_accuracy"]].endswith("no ordering holds in every seed.")
    # the per-seed tables keep every seed
    per_seed = pd.read_csv(out / "strategies_seed_measures.csv")
    assert len(per_seed[per_seed["measure"] == "class_purity_slope"]) == 4
    comparison = pd.read_csv(out / "strategies_comparison.csv")
    assert set(comparison["seed"]) == {0, 1}
    assert set(pd.read_csv(out / "strategies_trends.csv")["seed"]) == {0, 1}
    for name in ("strategies_comparison", "strategies_seeds"):
        assert (cfg.figures_path / f"{name}.png").exists()


def test_the_comparison_figures_show_every_seed(tmp_cfg):
    import matplotlib.pyplot as plt

    from andlib.report import plots

    cfg = tmp_cfg({"strategies": ["supervised", "ssl-frozen"], "seeds": [0, 1]})
    for (model, seed), args in SEED_RUNS.items():
        _seed_run(cfg.run_path / model / f"seed{seed}", *args)
    result = an.seed_comparison(cfg)
    fig = plots.plot_strategies_comparison(result["comparison"])
    purity_ax = fig.axes[2]  # class purity per layer: one line per model and seed + chance
    drawn = [ln for ln in purity_ax.get_lines() if len(ln.get_xdata()) > 1 and ln.get_ls() == "-"]
    assert len(drawn) == 4 and len({ln.get_marker() for ln in drawn}) == 2
    plt.close(fig)
    fig = plots.plot_seed_measures(result["per_seed"])
    titles = [ax.get_title() for ax in fig.axes if ax.get_visible()]
    slope_ax = fig.axes[titles.index(measures.MEASURES["class_purity_slope"])]
    points = [ln for ln in slope_ax.get_lines() if ln.get_marker() not in ("None", "", None)]
    points = [ln for ln in points if ln.get_marker() in plots.SEED_MARKERS]
    assert len(points) == 4  # two models x two seeds, one marker each
    plt.close(fig)


def test_one_run_per_model_states_no_ordering(tmp_cfg):
    cfg = tmp_cfg({"strategies": ["supervised", "ssl-frozen"]})
    _seed_run(cfg.run_path / "supervised", 0.30, 0.55, 0.1)
    _seed_run(cfg.run_path / "ssl-frozen", 0.05, 0.30, 0.1)
    result = an.seed_comparison(cfg)
    assert "seed" not in result["comparison"] and "seed" not in result["trends"]
    summary = result["summary"]
    assert (summary["n_seeds"] == 1).all() and summary["sd"].isna().all()
    assert not summary["holds_in_every_seed"].any()
    assert not result["orderings"]["holds_in_every_seed"].any()
    assert result["verdict"].startswith("One run per model: no ordering is stated")
