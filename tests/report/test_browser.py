"""The neuron browser: record assembly, search, widgets without a display, static overview.

``make_run_dir`` builds a small hand-made run directory in the documented file formats (also
used by ``test_analysis``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from andlib.store import RunDir, decode_list, encode_list, save_npy
from tests.conftest import write_tone

LAYERS = {"layers.0.mlp": 4, "layers.1.mlp": 4, "classifier": 3}
N_CLIPS = 8
K = 3


def make_run_dir(cfg, with_neurons: bool = True, with_topk: bool = True) -> RunDir:
    """A run with 8 tone clips (wav files), captions, features, activations of three layers,
    ``neuron_topk.csv`` and ``neurons.csv`` (every neuron described)."""
    run = RunDir.from_config(cfg)
    audio_dir = run.path.parent / "audio"
    clip_ids = [f"clip{i}" for i in range(N_CLIPS)]
    freqs = [200 * (i + 1) for i in range(N_CLIPS)]
    paths = [
        write_tone(audio_dir / f"{c}.wav", f, seconds=0.5)
        for c, f in zip(clip_ids, freqs, strict=True)
    ]
    run.write_csv(
        "clips.csv",
        pd.DataFrame(
            {
                "clip_id": clip_ids,
                "path": [str(p) for p in paths],
                "label": [i % 2 for i in range(N_CLIPS)],
                "category": ["dog" if i % 2 == 0 else "rain" for i in range(N_CLIPS)],
                "fold": 1,
            }
        ),
    )
    run.write_csv(
        "captions.csv",
        pd.DataFrame(
            {"clip_id": clip_ids, "caption": [f"A steady tone at {f} Hz." for f in freqs]}
        ),
    )
    run.write_csv(
        "features.csv",
        pd.DataFrame(
            {
                "clip_id": clip_ids,
                "rms_db": np.linspace(-30, -10, N_CLIPS),
                "centroid_hz": freqs,
                "f0_hz": [float(f) if i % 3 else np.nan for i, f in enumerate(freqs)],
            }
        ),
    )
    g = np.random.default_rng(0)
    index = {"clip_ids": clip_ids, "layers": {}}
    topk_rows, neuron_rows = [], []
    for layer, n in LAYERS.items():
        acts = g.standard_normal((N_CLIPS, n)).astype(np.float32)
        save_npy(run / "activations" / f"{layer}.npy", acts)
        index["layers"][layer] = {"file": f"{layer}.npy", "module": layer, "n_neurons": n}
        for j in range(n):
            order = np.argsort(-acts[:, j], kind="stable")
            top, bottom = order[:K], order[::-1][:K]
            for end, idx in (("high", top), ("low", bottom)):
                for rank, i in enumerate(idx):
                    topk_rows.append((layer, j, end, rank, clip_ids[i], float(acts[i, j])))
            neuron_rows.append(
                {
                    "layer": layer,
                    "neuron": j,
                    "top_clips": encode_list(clip_ids[i] for i in top),
                    "bottom_clips": encode_list(clip_ids[i] for i in bottom),
                    "high_summary": f"Loud high-pitched tones, neuron {j}.",
                    "low_summary": "Quiet low rumble.",
                    "calibrated_summary": f"Loud high-pitched tones ({layer} {j}).",
                    "adjectives": "loud;high-pitched" if j % 2 == 0 else "quiet",
                    "db_soft_wpmi": "water_drops" if j == 1 else "dog",
                    "db_soft_wpmi_top5": "water_drops;dog;rain" if j == 1 else "dog;rain;wind",
                    "tab": "",
                    "tab_top5": "",
                    "icl": "rain",
                    "icl_top5": "rain;dog",
                    "open_concepts": "dogma;bell" if j == 3 else "bell",
                }
            )
    (run / "activations" / "index.json").write_text(json.dumps(index))
    if with_topk:
        run.write_csv(
            "neuron_topk.csv",
            pd.DataFrame(
                topk_rows, columns=["layer", "neuron", "end", "rank", "clip_id", "activation"]
            ),
        )
    if with_neurons:
        run.write_csv("neurons.csv", pd.DataFrame(neuron_rows))
    return run


@pytest.fixture
def run(tmp_cfg):
    return make_run_dir(tmp_cfg({"k": K, "data.duration": 0.5}))


def _acts(run: RunDir, layer: str) -> np.ndarray:
    return np.load(run / "activations" / f"{layer}.npy")


def test_neuron_record_assembles_text_concepts_and_clips(run):
    from andlib.report.browser import neuron_record

    rec = neuron_record(run, "layers.1.mlp", 1)
    neurons = pd.read_csv(run / "neurons.csv", keep_default_na=False)
    row = neurons[(neurons.layer == "layers.1.mlp") & (neurons.neuron == 1)].iloc[0]
    assert rec["described"]
    assert rec["calibrated_summary"] == row["calibrated_summary"]
    assert rec["high_summary"] == row["high_summary"] and rec["low_summary"] == row["low_summary"]
    assert rec["adjectives"] == ["quiet"]
    assert rec["open_concepts"] == ["bell"]
    assert rec["closed_concepts"]["db_soft_wpmi"] == "water_drops"
    assert rec["closed_concepts"]["icl"] == "rain" and "tab" in rec["closed_concepts"]
    acts = _acts(run, "layers.1.mlp")[:, 1]
    np.testing.assert_allclose(rec["activations"], acts)
    assert [c["clip_id"] for c in rec["top"]] == decode_list(row["top_clips"])
    assert [c["clip_id"] for c in rec["bottom"]] == decode_list(row["bottom_clips"])
    first = rec["top"][0]
    i = int(first["clip_id"].removeprefix("clip"))
    assert first["activation"] == pytest.approx(acts.max())
    assert first["path"].endswith(f"clip{i}.wav") and Path(first["path"]).exists()
    assert first["caption"] == f"A steady tone at {200 * (i + 1)} Hz."
    assert first["category"] in ("dog", "rain")


def test_neuron_record_without_descriptions_uses_topk_then_activations(tmp_cfg):
    from andlib.report.browser import neuron_record

    run = make_run_dir(tmp_cfg({"k": K, "data.duration": 0.5}), with_neurons=False)
    rec = neuron_record(run, "layers.0.mlp", 2)
    acts = _acts(run, "layers.0.mlp")[:, 2]
    assert not rec["described"] and rec["calibrated_summary"] == "" and rec["adjectives"] == []
    assert [c["activation"] for c in rec["top"]] == pytest.approx(sorted(acts)[::-1][:K])
    (run / "neuron_topk.csv").unlink()
    rec = neuron_record(run, "layers.0.mlp", 2, k=2)
    assert [c["activation"] for c in rec["bottom"]] == pytest.approx(sorted(acts)[:2])


def test_search_neurons_by_concept_or_description_word(run):
    from andlib.report.browser import search_neurons

    hits = search_neurons(run, "water drops")  # matches the closed-set concept water_drops
    assert set(zip(hits.layer, hits.neuron, strict=True)) == {(layer, 1) for layer in LAYERS}
    assert (hits["score"] > 0).all() and "db_soft_wpmi" in hits["matched"].iloc[0]
    dog = search_neurons(run, "dog")  # whole words only: "dogma" does not match
    assert "open_concepts" not in " ".join(dog["matched"])
    assert search_neurons(run, "zebra").empty
    quiet = search_neurons(run, "QUIET")  # an adjective (2) or only the low summary (0.25)
    assert set(quiet[quiet.score >= 2].neuron) == {1, 3} and len(quiet) == 11
    # ordered by score, then depth
    assert list(zip(quiet.layer[:3], quiet.neuron[:3], strict=True)) == [
        ("layers.0.mlp", 1),
        ("layers.0.mlp", 3),
        ("layers.1.mlp", 1),
    ]


def test_browser_builds_and_navigates_without_a_display(run):
    import ipywidgets as w

    from andlib.report.browser import NeuronBrowser

    app = NeuronBrowser(run)
    assert list(app.layer.options) == ["layers.0.mlp", "layers.1.mlp", "classifier"]
    assert app.record["layer"] == "layers.0.mlp" and app.record["neuron"] == 0
    audio = [x for x in _walk(app.widget) if isinstance(x, w.Audio)]
    images = [x for x in _walk(app.widget) if isinstance(x, w.Image)]
    assert len(audio) == 2 * K and audio[0].value[:4] == b"RIFF"
    assert len(images) == 2 * K + 1  # spectrograms + histogram
    assert all(img.value[:4] == b"\x89PNG" for img in images)

    app.show("layers.1.mlp", 3)
    assert (app.record["layer"], app.record["neuron"]) == ("layers.1.mlp", 3)
    app.layer.value = "classifier"  # 3 neurons: the neuron index is clamped
    assert app.neuron.max == 2 and app.record["neuron"] == 2

    hits = app.search("water drops")
    assert len(app.results.options) == len(hits) == 3
    app.results.value = app.results.options[0][1]
    assert app.record["neuron"] == 1


def _walk(widget):
    yield widget
    for child in getattr(widget, "children", ()):
        yield from _walk(child)


def test_static_overview_renders_html(run):
    from andlib.report.browser import pick_neurons, static_overview

    picked = pick_neurons(run, n=3)
    assert [layer for layer, _ in picked] == ["layers.0.mlp", "layers.1.mlp", "classifier"]
    html = static_overview(run, n=3).data
    assert html.count("<h3>") == 3
    assert "data:image/png;base64" in html and "Calibrated summary" in html


def test_synthetic_clips_without_a_path_are_rendered(tmp_cfg):
    from andlib.report.browser import RunView

    run = RunDir.from_config(tmp_cfg({"data.dataset": "synthetic", "data.duration": 0.5}))
    run.write_csv("clips.csv", pd.DataFrame({"clip_id": ["tone_100hz", "mystery"], "path": ""}))
    view = RunView(run)
    audio, sr = view.clip_audio("tone_100hz")
    assert sr == 16000 and len(audio) == 8000 and np.abs(audio).max() > 0
    assert view.clip_audio("mystery") is None


def test_empty_run_gives_an_empty_browser(tmp_cfg):
    from andlib.report.browser import NeuronBrowser, static_overview

    run = RunDir.from_config(tmp_cfg())
    app = NeuronBrowser(run)
    assert app.record is None and "No layers" in app.status.value
    assert "Nothing to show" in static_overview(run).data
