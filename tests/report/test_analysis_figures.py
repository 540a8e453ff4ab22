"""andlib.report.analysis_figures: the analysis stage's figures drawn from its tables."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from andlib.report import plots


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


LAYERS = ["layers.0.mlp", "layers.1.mlp", "classifier"]


def _per_layer(**columns) -> pd.DataFrame:
    return pd.DataFrame({"layer": LAYERS, "depth": [0, 1, 2], "n_neurons": 4, **columns})


def test_analysis_figures_draw_from_tables():
    counts = pd.DataFrame({"adjective": ["loud", "soft", "sharp"], "count": [5, 3, 1]})
    fig = plots.plot_adjective_distribution(counts, top_n=2, title="model")
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels == ["soft", "loud"]  # the top 2, most frequent at the top
    per_model = pd.concat([counts.assign(model="a"), counts.assign(model="b")])
    assert len(plots.plot_adjective_distribution(per_model).axes) == 2

    per_layer = _per_layer(mean_adjectives=[1.0, 2.0, 3.0], sem=[0.1, 0.1, np.nan])
    trend = {
        "slope": 1.0,
        "intercept": 1.0,
        "ci_low": 0.9,
        "ci_high": 1.1,
        "confidence": 0.95,
        "n": 12,
        "resid_std": 0.2,
        "x_mean": 1.0,
        "sxx": 8.0,
    }
    fig = plots.plot_adjectives_per_layer(per_layer, trend, "model")
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "slope +1.000/layer (95% CI [+0.900, +1.100])" in legend
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["0.mlp", "1.mlp", "classifier"]

    poly = _per_layer(n_polysemantic=[1, 2, 0], fraction=[0.25, 0.5, 0.0])
    spread = pd.DataFrame({"n_clusters": [1, 2, 3, 4, 4]})
    assert len(plots.plot_polysemantic_neurons(poly, spread, 4).axes) == 2


def test_acoustic_vs_concepts_stacks_three_shares_per_layer():
    balance = _per_layer(acoustic=[0.5, 0.2, 0.0], concept=[0.25, 0.6, 1.0], tie=[0.25, 0.2, 0.0])
    (ax,) = plots.plot_acoustic_vs_concepts(balance).axes
    bars = ax.patches
    assert len(bars) == 3 * len(LAYERS)  # acoustic, concept, tie per layer
    # stacked in that order: each layer's column reaches 1 (the shares add up)
    tops = {}
    for bar in bars:
        x = round(bar.get_x() + bar.get_width() / 2, 6)
        tops[x] = max(tops.get(x, 0.0), bar.get_y() + bar.get_height())
    assert sorted(tops) == [0, 1, 2] and np.allclose(list(tops.values()), 1.0)
    assert [b.get_height() for b in bars[:3]] == [0.5, 0.2, 0.0]  # the acoustic shares first
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["acoustic adjectives", "concept nouns", "tie"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0.mlp", "1.mlp", "classifier"]


def test_acoustic_feature_r2_draws_a_box_and_a_mean_per_layer():
    r2 = pd.DataFrame(
        {
            "layer": np.repeat(LAYERS, 4),
            "depth": np.repeat([0, 1, 2], 4),
            "r2": np.linspace(-0.1, 0.9, 12),
        }
    )
    r2.loc[0, "r2"] = np.nan  # an unscored neuron is left out, not drawn as 0
    (ax,) = plots.plot_acoustic_feature_r2(r2).axes
    (means,) = [line for line in ax.get_lines() if line.get_marker() == "D"]
    expected = r2.dropna().groupby("depth")["r2"].mean().to_numpy()
    assert means.get_xdata().tolist() == [0, 1, 2]
    assert np.allclose(means.get_ydata(), expected)
    boxes = [line for line in ax.get_lines() if len(line.get_xdata()) == 5]  # closed outlines
    quartiles = [np.percentile(g, [25, 75]) for _, g in r2.dropna().groupby("depth")["r2"]]
    assert len(boxes) == 3
    for box, (q1, q3) in zip(boxes, quartiles, strict=True):
        assert np.allclose([min(box.get_ydata()), max(box.get_ydata())], [q1, q3])
    assert ax.get_ylabel() == "cross-validated R²"


def test_class_purity_figure_draws_purity_pure_share_and_chance():
    df = pd.DataFrame(
        {
            "layer": LAYERS[:2],
            "depth": [0, 1],
            "mean_purity": [0.3, 0.6],
            "share_pure": [0.0, 0.2],
            "chance": 0.22,
        }
    )
    ax = plots.plot_class_purity(df).axes[0]
    assert len(ax.get_lines()) == 3
    assert ax.get_lines()[0].get_ydata().tolist() == [0.3, 0.6]


def test_empty_tables_give_placeholder_figures():
    empty = pd.DataFrame(
        columns=["layer", "depth", "n_neurons", "mean_adjectives", "sem", "n_polysemantic"]
        + ["fraction", "acoustic", "concept", "tie", "r2"]
    )
    figures = {
        "adjectives": plots.plot_adjective_distribution(
            pd.DataFrame(columns=["adjective", "count"])
        ),
        "described neurons": plots.plot_adjectives_per_layer(empty),
        "neurons": plots.plot_polysemantic_neurons(empty),
        "described neurons ": plots.plot_acoustic_vs_concepts(empty),
        "R² values": plots.plot_acoustic_feature_r2(empty),
        "layers": plots.plot_class_purity(
            pd.DataFrame(columns=["layer", "depth", "mean_purity", "share_pure", "chance"])
        ),
    }
    for what, fig in figures.items():
        (ax,) = fig.axes
        assert [t.get_text() for t in ax.texts] == [f"no {what.strip()}"], what
        assert not ax.patches and not ax.get_lines(), what  # a placeholder, nothing drawn
    fig = plots.plot_strategies_comparison(
        pd.DataFrame(columns=["model", "metric", "layer", "depth", "value"])
    )
    assert len(fig.axes) == 6
    for ax in fig.axes:
        (note,) = ax.texts
        assert note.get_text().startswith("no ") and not ax.patches and not ax.get_lines()
