"""Figures: saved as PNG + PDF under a stable name; every analysis figure draws from tidy
tables, including empty ones."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from andlib.report import plots

LAYERS = ["layers.0.mlp", "layers.1.mlp", "classifier"]


def _per_layer(**columns) -> pd.DataFrame:
    return pd.DataFrame({"layer": LAYERS, "depth": [0, 1, 2], "n_neurons": 4, **columns})


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_save_figure_writes_png_and_pdf(tmp_cfg, tmp_path):
    cfg = tmp_cfg()
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    paths = plots.save_figure(fig, "adjective_distribution", cfg)
    assert [p.name for p in paths] == ["adjective_distribution.png", "adjective_distribution.pdf"]
    assert paths[0].read_bytes()[:4] == b"\x89PNG" and paths[1].read_bytes()[:4] == b"%PDF"
    assert paths[0].parent == cfg.figures_path
    other = plots.save_figure(fig, "x", tmp_path / "elsewhere")  # a folder works too
    assert all(p.exists() for p in other)


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


def test_strategies_comparison_figure_has_six_panels():
    rows = []
    for model, shift in (("supervised", 0.0), ("ssl-frozen", 0.2)):
        for d, layer in enumerate(LAYERS[:2]):
            rows += [
                (model, "polysemantic_fraction", layer, d, 0.1 + shift),
                (model, "mean_adjectives", layer, d, 2.0 - shift),
                (model, "simulation_pearson", layer, d, 0.3 - shift),
                (model, "class_purity", layer, d, 0.6 - shift),
                (model, "class_purity_chance", layer, d, 0.22),
            ]
        rows.append((model, "last_layer_top1", "acoustic / soft_wpmi", np.nan, 0.8 - shift))
        rows.append((model, "heldout_accuracy", "model", np.nan, 0.5 - shift))
    df = pd.DataFrame(rows, columns=["model", "metric", "layer", "depth", "value"])
    fig = plots.plot_strategies_comparison(df)
    assert len(fig.axes) == 6
    assert all(ax.get_legend() is not None for ax in fig.axes)
    purity_ax = next(ax for ax in fig.axes if ax.get_title().startswith("class purity"))
    assert "chance" in [t.get_text() for t in purity_ax.get_legend().get_texts()]
    # a metric nobody has is a "no data" panel, not an error
    fig = plots.plot_strategies_comparison(df[df.metric != "simulation_pearson"])
    assert any("no " in t.get_text() for ax in fig.axes for t in ax.texts)


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


def test_show_figures_displays_each_as_a_png_and_closes_them(monkeypatch):
    import IPython.display

    shown = []
    monkeypatch.setattr(IPython.display, "display", shown.append)
    figs = {"a": plt.figure(figsize=(2, 1), dpi=50), "b": plt.figure(figsize=(3, 1), dpi=50)}
    plots.show_figures(figs)
    assert not plt.get_fignums()
    assert [img.data[:4] for img in shown] == [b"\x89PNG"] * 2
    assert [img.format for img in shown] == ["png", "png"]
    widths = [int.from_bytes(img.data[16:20], "big") for img in shown]  # PNG IHDR width
    assert widths[1] - widths[0] == 50  # each figure at its own size (1 inch wider, 50 dpi)


def test_draw_spectrogram_images_the_clip_up_to_nyquist():
    sr = 16000
    t = np.arange(sr) / sr
    tone = (0.5 * np.sin(2 * np.pi * 4000 * t)).astype(np.float32)
    fig, ax = plt.subplots()
    plots.draw_spectrogram(ax, tone, sr, n_mels=32)
    (image,) = ax.get_images()
    db = image.get_array()
    assert db.shape[0] == 32 and db.shape[1] > 10  # mel bands x frames
    assert np.isclose(db.max(), 0.0)  # dB below the clip's peak
    loudest_band = int(np.argmax(db.mean(axis=1)))
    assert 32 // 2 <= loudest_band < 32 - 2  # 4 kHz sits in the upper half of 0..8 kHz mels
    assert not ax.get_xticks().size and not ax.get_yticks().size


def test_recording_and_caption_figures_draw_what_they_are_given():
    rng = np.random.default_rng(0)
    fig = plots.activation_histograms(
        {"a": rng.normal(size=(20, 4)), "b": rng.normal(size=(20, 3))}
    )
    assert [ax.get_title() for ax in fig.axes] == ["a (4 neurons)", "b (3 neurons)"]
    plt.close(fig)

    audio = rng.normal(size=8000).astype(np.float32)
    fig = plots.neuron_top_clips([[("n0 top", audio), ("n0 next", audio)], [("n1", audio)]], 8000)
    assert [ax.get_title() for ax in fig.axes if ax.images] == ["n0 top", "n0 next", "n1"]
    plt.close(fig)

    fig = plots.clip_spectrogram(audio, 8000, "clip-1")
    assert fig.axes[0].get_title() == "clip-1" and fig.axes[0].images
    plt.close(fig)

    vocab = pd.Series({"loud": 9, "sharp": 4, "low": 1})
    fig = plots.caption_vocabulary(vocab, "acoustic")
    bars = fig.axes[0].patches
    assert [b.get_width() for b in bars] == [1, 4, 9]  # most used on top
    assert fig.axes[0].get_title() == "Caption vocabulary (acoustic)"
    plt.close(fig)
