"""andlib.report.atlas: the static site's files, its data, its media and their reuse."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from andlib.report.atlas import build_atlas
from andlib.store import RunDir
from tests.report.test_browser import LAYERS, N_CLIPS, K, make_run_dir


def enrich_run(run: RunDir) -> None:
    """Add what the later stages write (model facts, accuracies, simulation scores, per-layer
    analyses, pruning) to a :func:`make_run_dir` run, so every part of the pages shows."""
    run.write_json(
        "model.json",
        {
            "model_id": "trained:supervised",
            "model_type": "audio-spectrogram-transformer",
            "kind": "classification",
            "n_parameters": 12345,
            "heldout_accuracy": 0.5,
            "train_accuracy": 0.9,
            "heldout_fold": 5,
        },
    )
    run.write_json(
        "caption_accuracy.json",
        {"captioner": "tagger+acoustic", "tagger": "logistic regression", "top1": 0.7, "top3": 0.9},
    )
    run.write_json(
        "last_layer.json",
        {
            cap: {"db_soft_wpmi": {"top1": t, "top5": 1.0, "cos": 0.9, "n_neurons": 3}}
            for cap, t in (("tagger+acoustic", 0.67), ("acoustic", 0.33))
        },
    )
    g = np.random.default_rng(1)
    rows = [
        (layer, j, scorer, metric, v, float(g.uniform(-0.2, 0.6)), 5)
        for layer, n in LAYERS.items()
        for j in range(n)
        for scorer, metric in (("simulation", "pearson"), ("detection", "auroc"))
        for v in ("own", "random", "label", "oracle")
    ]
    run.write_csv(
        "scores.csv",
        pd.DataFrame(
            rows, columns=["layer", "neuron", "scorer", "metric", "variant", "value", "n"]
        ),
    )
    layers = list(LAYERS)
    run.write_csv(
        "analysis/polysemantic_per_layer.csv",
        pd.DataFrame({"layer": layers, "fraction": [0.25, 0.5, 0.0]}),
    )
    run.write_csv(
        "analysis/class_purity_per_layer.csv",
        pd.DataFrame({"layer": layers, "mean_purity": [0.6, 0.7, 1.0], "chance": 0.5}),
    )
    from andlib.describe.spread import concept_spread
    from andlib.store import read_neurons

    run.write_csv("concept_spread.csv", concept_spread(read_neurons(run), ["db_soft_wpmi"], 50))
    run.write_csv(
        "hidden_layer_accuracy.csv",
        pd.DataFrame(
            {
                "layer": layers,
                "method": "db_soft_wpmi",
                "n_layer": list(LAYERS.values()),
                "n_neurons": 2,
                "top1": [0.5, 1.0, 0.0],
                "top5": 1.0,
                "chance_top1": 0.1,
                "chance_top5": 0.3,
            }
        ),
    )
    run.write_csv(
        "pruning_summary.csv",
        pd.DataFrame(
            {
                "strategy": ["db", "random"],
                "n_concepts": [2, 2],
                "n_pruned_mean": [3.0, 3.0],
                "delta_a_minus_r_mean": [0.4, 0.05],
                "ci_low": [0.1, -0.1],
                "ci_high": [0.7, 0.2],
            }
        ),
    )


def read_js(path: Path) -> Any:
    """The JSON a data file assigns (``<target> = <json>;``; layer files: the last line)."""
    line = path.read_text(encoding="utf-8").strip().splitlines()[-1]
    return json.loads(line.split(" = ", 1)[1].rstrip(";"))


@pytest.fixture
def built(tmp_cfg):
    cfg = tmp_cfg({"k": K})
    run = make_run_dir(cfg)
    enrich_run(run)
    return run, cfg, build_atlas(run, cfg, workers=1)


def test_atlas_writes_pages_data_and_media(built):
    run, cfg, summary = built
    out = Path(summary["atlas"])
    assert out == run.path / "atlas"
    for name in ("index.html", "neuron.html", "atlas.js", "atlas.css", "data/index.js"):
        assert (out / name).is_file(), name
    html = (out / "index.html").read_text()
    assert "http://" not in html and "https://" not in html  # nothing from a CDN
    assert '<script src="data/index.js">' in html
    index = read_js(out / "data/index.js")
    assert summary["n_neurons"] == len(index["neurons"]) == sum(LAYERS.values())
    assert [row["layer"] for row in index["layers"]] == list(LAYERS)
    assert index["facts"]["model"]["heldout_accuracy"] == 0.5
    assert index["facts"]["last_layer"]["acoustic"]["db_soft_wpmi"]["top1"] == 0.33
    first = index["layers"][0]
    assert first["polysemantic"] == 0.25 and first["purity"] == 0.6 and first["n_neurons"] == 4
    # the spread of the DB concept the table shows, and its hidden-layer accuracy
    assert index["facts"]["primary"] == "db_soft_wpmi"
    assert first["top_concept"] and 0 < first["top_share"] <= 1
    assert first["spread"] == {"db_soft_wpmi": first["top_share"]}
    assert first["hidden_top1"] == 0.5 and first["hidden_chance"] == 0.1
    # every explanation score of a neuron is in the table, so the index can sort by it
    assert index["columns"][-1] == "metrics"
    metrics = index["neurons"][0][-1]
    assert set(metrics) == {"simulation pearson", "detection auroc"}
    assert first["sim_description"] is not None and first["adjectives"] is not None
    # one data file per layer, each neuron with its K top and bottom clips and a histogram
    for i, (layer, n) in enumerate(LAYERS.items()):
        assert index["layer_files"][layer] == f"data/layer-{i}.js"
        records = read_js(out / index["layer_files"][layer])
        assert sorted(map(int, records)) == list(range(n))
        rec = records["0"]
        assert len(rec["top"]) == len(rec["bot"]) == K
        assert sum(rec["hist"]["counts"]) == N_CLIPS
        acts = np.load(run / "activations" / f"{layer}.npy")
        assert rec["top"][0][1] == pytest.approx(acts[:, 0].max(), abs=1e-3)
        assert set(rec["sim"]) == {"description", "random_description", "label", "label_oracle"}
        assert set(rec["scores"]["detection auroc"]) == {"own", "random", "label", "oracle"}
        assert rec["closed"]["db_soft_wpmi"][0]
    # every shown clip: an OGG Vorbis and a small palette PNG, stored once
    clips = read_js(out / "data/clips.js")
    assert len(clips) == summary["n_clips"] == N_CLIPS
    for label, caption, audio, image, seconds in clips.values():
        assert label in ("dog", "rain") and caption.startswith("A steady tone")
        info = sf.info(str(out / audio))
        assert info.format == "OGG" and info.subtype == "VORBIS" and info.samplerate == 16000
        assert info.duration == pytest.approx(cfg.data.duration, abs=0.05) == seconds
        from PIL import Image

        with Image.open(out / image) as im:
            assert im.format == "PNG" and im.mode == "P" and im.size[1] == 64
    assert len(list((out / "audio").iterdir())) == N_CLIPS
    assert summary["n_media_errors"] == 0


def test_atlas_rebuild_reuses_unchanged_media_and_remakes_changed_ones(built):
    run, cfg, summary = built
    out = Path(summary["atlas"])
    audio = sorted((out / "audio").iterdir())
    before = {p.name: p.stat().st_mtime_ns for p in audio}
    (out / "audio" / "stale.ogg").write_bytes(b"old")
    # one clip's source changes: only its media are made again
    clips = pd.read_csv(run / "clips.csv")
    changed = Path(clips["path"][0])
    x, sr = sf.read(str(changed))
    sf.write(str(changed), 0.5 * x, sr)
    os.utime(changed, ns=(1, 1))
    build_atlas(run, cfg, workers=1)
    after = {p.name: p.stat().st_mtime_ns for p in (out / "audio").iterdir()}
    assert "stale.ogg" not in after
    remade = {name for name in before if after[name] != before[name]}
    assert remade == {f"{clips['clip_id'][0]}.ogg"}


def test_atlas_of_a_run_without_descriptions_or_later_stages(tmp_cfg):
    cfg = tmp_cfg({"k": K})
    run = make_run_dir(cfg, with_neurons=False)
    summary = build_atlas(run, cfg, workers=1)
    index = read_js(Path(summary["atlas"]) / "data/index.js")
    assert summary["n_neurons"] == sum(LAYERS.values())
    assert index["facts"]["headline"]["simulation"] == {}
    records = read_js(Path(summary["atlas"]) / index["layer_files"]["classifier"])
    assert records["0"]["d"] is False and len(records["0"]["top"]) == K


@pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")
def test_a_clip_without_audio_is_reported_not_fatal(tmp_cfg):
    cfg = tmp_cfg({"k": K})
    run = make_run_dir(cfg)
    broken = Path(pd.read_csv(run / "clips.csv")["path"][1])
    broken.write_bytes(b"not audio")
    summary = build_atlas(run, cfg, workers=2)
    assert summary["n_media_errors"] == 1
    clips = read_js(Path(summary["atlas"]) / "data/clips.js")
    assert clips["clip1"][2] == "" and clips["clip0"][2].endswith(".ogg")


def test_atlas_is_a_cli_stage(tmp_cfg, capsys):
    from andlib.cli import main
    from andlib.pipeline import MODULES, STAGES

    assert STAGES["atlas"] == ("atlas",) and MODULES["atlas"] == "andlib.report.atlas"
    run = make_run_dir(tmp_cfg({"k": K}))
    assert main(["atlas", "--config", "configs/default.yaml", "--out", str(run.path)]) == 0
    printed = capsys.readouterr().out
    assert f"index: {run.path / 'atlas' / 'index.html'}" in printed
    assert (run.path / "atlas" / "data" / "clips.js").is_file()
