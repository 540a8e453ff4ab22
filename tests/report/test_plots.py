"""andlib.report.plots: figures saved as PNG + PDF under a stable name, the comparison figure, and
the recording and caption figures."""

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


def test_probe_accuracy_figure_marks_the_chosen_block():
    from andlib.report.plots import probe_accuracy

    fig = probe_accuracy(
        {"layers.0.out": 0.7, "layers.1.out": 0.8}, {"layers.0.out": 0.72}, "layers.1.out"
    )
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["layers.0.out", "layers.1.out"]
    assert any("chosen: layers.1.out" in t.get_text() for t in ax.get_legend().get_texts())
