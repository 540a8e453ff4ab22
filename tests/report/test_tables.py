"""andlib.report.tables: the per-run analyses as pure functions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from andlib.config import load_config
from andlib.report import analysis as an
from andlib.store import RunDir


def test_caption_sentences_are_one_item_each():
    ids, texts = an.caption_sentences(["a", "b", "c"], ["Dog barking. Loud.", "Rain.", ""])
    assert ids == ["a", "a", "b"] and texts == ["Dog barking.", "Loud.", "Rain."]
    clusters = pd.Series([0, 1, 2], index=pd.Index(ids, name="clip_id"))
    tops = pd.DataFrame({"layer": ["l", "l"], "neuron": [0, 1], "clips": [["a"], ["a", "b"]]})
    assert an.cluster_spread(tops, clusters).tolist() == [2, 3]


@pytest.mark.parametrize(("unit", "spreads"), [("caption", [1, 2]), ("sentence", [2, 3])])
def test_sentence_clustering_counts_every_aspect_of_the_top_clips(
    tmp_path, monkeypatch, unit, spreads
):
    run = RunDir(tmp_path / "run")
    captions = {"a": "Dog barking. Loud.", "b": "Dog barking. Quiet.", "c": "Rain falling. Loud."}
    run.write_csv(
        "captions.csv",
        pd.DataFrame({"clip_id": list(captions), "caption": list(captions.values())}),
    )
    rows = [
        ("l", 0, "high", 0, "a", 1.0),
        ("l", 1, "high", 0, "a", 1.0),
        ("l", 1, "high", 1, "b", 0.9),
    ]
    cols = ["layer", "neuron", "end", "rank", "clip_id", "activation"]
    run.write_csv("neuron_topk.csv", pd.DataFrame(rows, columns=cols))

    def one_hot(cfg, run, texts):  # distinct texts -> orthogonal embeddings
        distinct = sorted(set(texts))
        return np.eye(len(distinct), dtype=np.float32)[[distinct.index(t) for t in texts]]

    monkeypatch.setattr(an, "caption_embeddings", one_hot)
    cfg = load_config(
        None,
        {"run_dir": str(run.path), "k": 2, "analysis.n_clusters": 4, "analysis.cluster_unit": unit},
    )
    an.compute_tables(cfg, run)
    poly = pd.read_csv(run / "analysis" / "neuron_polysemanticity.csv")
    assert poly.sort_values("neuron")["n_clusters"].tolist() == spreads


def _neurons(rows: list[tuple[str, int, str, str]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["layer", "neuron", "adjectives", "open_concepts"])


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
    latents = _neurons(rows + [("sae.layers.0.mlp.k4", 0, ";".join(f"a{i}" for i in range(9)), "")])
    assert an.adjective_trend(latents)["n"] == 12  # an SAE's latents are not in the trend


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
    neurons = pd.DataFrame({"layer": ["L"], "neuron": [0], "top_clips": ["a 1;b;c"]})
    assert an.top_clips_table(neurons, k=2)["clips"].tolist() == [["a 1", "b"]]


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
