"""andlib.report.analysis: the analysis stage on a hand-made run (tables, figures, its cache,
missing inputs)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from andlib.report import analysis as an
from tests.report.test_browser import LAYERS, make_run_dir


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
    # disk cache answers them: tests/text/test_embeddings.py), and nothing else
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
