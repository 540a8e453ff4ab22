"""Ground-truth scoring of pitch networks' descriptions (andlib.evaluate.pitch)."""

from __future__ import annotations

import importlib.util
import itertools
import json

import numpy as np
import pandas as pd
import pytest

from andlib.config import load_config
from andlib.data.notes import midi_to_hz, pitch_text
from andlib.evaluate import pitch as pitch_eval
from andlib.models.pitch import bin_frequencies
from andlib.report import pitch as pitch_report
from andlib.store import RunDir

needs_models = pytest.mark.skipif(
    importlib.util.find_spec("torchcrepe") is None or importlib.util.find_spec("pesto") is None,
    reason="torchcrepe and pesto-pitch are not installed",
)


def test_output_scorer_on_a_hand_made_case():
    true = [100.0, 200.0, 400.0, 800.0]
    stated = [103.0, 210.0, np.nan, 1600.0]  # +0.51, +0.84 semitones, nothing, an octave
    got = pitch_eval.output_layer_scores(stated, true, seed=0, shuffles=2000)
    assert got["within_1_semitone"] == 0.5
    assert got["n_neurons"] == 4 and got["n_stated"] == 3
    errs = sorted([12 * np.log2(103 / 100), 12 * np.log2(210 / 200), np.inf, 12.0])
    assert got["median_error_semitones"] == pytest.approx((errs[1] + errs[2]) / 2)
    assert got["median_error_stated"] == pytest.approx(12 * np.log2(210 / 200))
    # chance: every permutation of the stated pitches, equally likely
    exact = np.mean(
        [
            np.mean([abs(12 * np.log2(s / t)) <= 1 for s, t in zip(p, true, strict=True)])
            for p in itertools.permutations(stated)
        ]
    )
    assert got["chance_within_1_semitone"] == pytest.approx(exact, abs=0.02)
    # nothing stated: the median is undefined (None), not 0
    none = pitch_eval.output_layer_scores([np.nan] * 4, true)
    assert none["within_1_semitone"] == 0.0 and none["median_error_semitones"] is None
    with pytest.raises(ValueError):
        pitch_eval.output_layer_scores([1.0], true)


def test_stated_pitch_reads_hz_then_note_names():
    assert pitch_eval.stated_pitch("A pitch of about 440 Hz, the note A4 (3 of 5 clips).") == 440
    assert pitch_eval.stated_pitch("C#5 (554 Hz)") == 554.0
    assert pitch_eval.stated_pitch("the note A4") == pytest.approx(440.0)
    assert np.isnan(pitch_eval.stated_pitch("Continuous sounds (all 5 clips); noisy."))


def _fake_pitch_run(tmp_path, wrong_every: int = 10) -> tuple[RunDir, object]:
    """A run of crepe-tiny whose output neurons' summaries state their own bin's pitch, except
    every ``wrong_every``-th, which states a pitch a fifth higher."""
    cfg = load_config(None, {"run_dir": str(tmp_path / "run"), "model.name": "crepe-tiny"})
    run = RunDir(tmp_path / "run")
    run.write_json("model.json", {"model_id": "crepe-tiny"})
    notes = midi_to_hz(np.arange(28, 96.01, 0.2))
    run.write_csv(
        "clips.csv",
        pd.DataFrame({"clip_id": [f"n{i}" for i in range(len(notes))], "f0_hz": notes}),
    )
    freqs = bin_frequencies("crepe-tiny")
    rows = []
    for j, f in enumerate(freqs):
        hz = f * (1.5 if j % wrong_every == 0 else 1.0)
        text = f"A pitch of about {pitch_text(hz).replace(' (', ', the note ').rstrip(')')}."
        rows.append(
            {
                "layer": "classifier",
                "neuron": j,
                "high_summary": text,
                "calibrated_summary": text if j % 7 else "",  # empty: the high summary counts
                "db_soft_wpmi": "A4 (440 Hz)",
            }
        )
    rows.append({"layer": "layers.0.act", "neuron": 0, "high_summary": "x"})
    run.write_csv("neurons.csv", pd.DataFrame(rows))
    return run, cfg


def test_last_layer_report_scores_in_range_bins_of_a_run(tmp_path):
    run, cfg = _fake_pitch_run(tmp_path)
    report = pitch_eval.last_layer_report(cfg, run)
    freqs = bin_frequencies("crepe-tiny")
    lo, hi = midi_to_hz(28) * 2 ** (-1 / 24), midi_to_hz(96) * 2 ** (1 / 24)
    in_range = np.flatnonzero((freqs >= lo) & (freqs <= hi))
    assert report["n_neurons"] == len(in_range) < 360
    expected = np.mean(in_range % 10 != 0)
    assert report["within_1_semitone"] == pytest.approx(expected)
    assert report["median_error_semitones"] == pytest.approx(0.0, abs=0.05)
    assert report["chance_within_1_semitone"] < 0.05
    # the DB concept names one note for every neuron: right only near 440 Hz
    db = report["methods"]["db_soft_wpmi"]
    assert db["within_1_semitone"] == pytest.approx(
        np.mean(np.abs(12 * np.log2(440 / freqs[in_range])) <= 1)
    )
    table = pd.read_csv(run.path / "pitch_output_neurons.csv")
    assert len(table) == 360 and table["in_range"].sum() == len(in_range)
    json.dumps(report)  # JSON-able: no NaN-only objects, no numpy scalars


def test_tuning_finds_what_drives_each_neuron():
    gen = np.random.default_rng(0)
    n = 300
    attrs = pd.DataFrame(
        {
            "f0": gen.uniform(28, 96, n),
            "noise": gen.uniform(-40, -10, n),
            "decay": gen.uniform(-0.8, 0.7, n),
        }
    )
    acts = np.stack(
        [
            np.exp(-0.5 * ((attrs["f0"] - 60) / 4) ** 2),  # a pitch-tuned neuron (band-pass)
            attrs["noise"] / 10 + 0.3 * gen.standard_normal(n),  # a noise detector
            gen.standard_normal(n),  # nothing
        ],
        axis=1,
    )
    eta2, curves = pitch_eval.tuning(acts, attrs)
    assert eta2.idxmax(axis=1).tolist()[:2] == ["f0", "noise"]
    assert eta2.loc[0, "f0"] > 0.7 and eta2.loc[1, "noise"] > 0.5
    assert eta2.loc[2].max() < pitch_eval.MIN_ETA2
    assert abs(eta2.loc[0, "noise"]) < 0.1  # adjusted: about 0 by chance
    centres, means = curves["f0"]
    assert means.shape == (10, 3) and np.argmax(means[:, 0]) in (4, 5)
    assert 55 < centres[np.argmax(means[:, 0])] < 65


def test_descriptions_name_attributes():
    assert pitch_eval.names_attribute("A pitch of about 440 Hz, the note A4.", "f0")
    assert pitch_eval.names_attribute("Steady, low-pitched sounds.", "f0")
    assert not pitch_eval.names_attribute("Loud, noisy sounds.", "f0")
    assert pitch_eval.names_attribute("Loud, noisy sounds.", "noise")
    assert pitch_eval.names_attribute("with a wavering pitch (3 of 5)", "vibrato")
    assert pitch_eval.names_attribute("Bright sounds with rich harmonics", "rolloff")
    assert not pitch_eval.names_attribute("Bright sounds", "odd_even")


def test_the_pitch_config_compares_two_pitch_networks_without_training_or_pruning():
    from andlib.pipeline import notebooks, reproduction_plan

    cfg = load_config("configs/pitch.yaml")
    assert pitch_eval.is_pitch_config(cfg)
    assert not pitch_eval.is_pitch_config(load_config("configs/strategies.yaml"))
    plan = reproduction_plan(cfg, [])
    books = [nb for nb in notebooks() if nb.name[:2] not in ("00", "05")]
    assert len(plan) == 2 * len(books) + 2
    assert not any(nb.name.startswith(("00_", "05_")) for nb, _, _ in plan)
    first = plan[0][1]
    assert "model.name=crepe-tiny@20ms" in first and not any("train.strategy" in o for o in first)
    assert any("model.name=pesto@20ms" in o for _, ov, _ in plan for o in ov)
    assert [nb.name[:3] for nb, ov, _ in plan[-2:]] == ["06_", "08_"] and plan[-1][1] == []
    sub = load_config("configs/pitch.yaml", first)
    assert sub.strategies == [] and pitch_eval.is_pitch_config(sub)


@needs_models
@pytest.mark.slow
def test_two_pitch_networks_compared_on_a_tiny_probing_set(tmp_path):
    """crepe-tiny and pesto through record, caption, summarize, concepts, evaluate, analysis
    and the pitch stage on 25 notes a semitone apart (A3 to A5, no ESC-50 clips), then the
    comparison."""
    from andlib.pipeline import run_stage

    base = ["data.pitched_midi=[57, 81]", "data.pitched_step_cents=100", "data.mix_esc50=0"]
    base += ["data.duration=0.5", f"cache_dir={tmp_path}/c"]
    base += ["evaluate.simulation_max_neurons=8", "analysis.n_clusters=4"]
    parent = load_config(
        "configs/pitch.yaml", [*base, f"run_dir={tmp_path}/run", f"figures_dir={tmp_path}/f"]
    )
    for model in parent.strategies:
        sub = load_config(
            "configs/pitch.yaml",
            [
                *base,
                "strategies=[]",
                "strategy_models={}",
                f"model.name={parent.strategy_model(model)}",
                f"run_dir={parent.run_path / model}",
                f"figures_dir={tmp_path}/f/{model}",
            ],
        )
        for stage in ("record", "caption", "summarize", "evaluate", "analyze", "pitch"):
            run_stage(stage, sub)
        report = json.loads((parent.run_path / model / "pitch_last_layer.json").read_text())
        assert {"within_1_semitone", "median_error_semitones", "chance_within_1_semitone"} <= set(
            report
        )
        assert 0 < report["n_neurons"] < report["n_output_neurons"]
    summary = run_stage("pitch", parent)  # the parent: the comparison
    assert summary["models"] == ["crepe-tiny", "pesto"]
    comparison = pd.read_csv(parent.run_path / "analysis" / "pitch_comparison.csv")
    assert set(comparison["model"]) == {"crepe-tiny", "pesto"}
    assert set(pitch_report.COMPARED) <= set(comparison["metric"])
    sel = comparison[comparison["metric"] == "selectivity_semitones"]
    chance = comparison[comparison["metric"] == "selectivity_chance"]["value"].mean()
    for model, rows in sel.groupby("model"):
        depths = sorted(rows["depth"])
        assert depths[0] == 0.0 and depths[-1] == 1.0, model
        n_layers = {"crepe-tiny": 7, "pesto": 8}[model]
        assert len(depths) == n_layers
        # an in-range output bin's top notes cluster in pitch: far narrower than random notes
        run = parent.run_path / model
        tuning = pd.read_csv(run / "pitch_tuning.csv")
        bins = pd.read_csv(run / "pitch_output_neurons.csv")
        inside = bins.loc[bins["in_range"], "neuron"]
        out = tuning[(tuning["layer"] == "classifier") & tuning["neuron"].isin(inside)]
        spread = out["selectivity_semitones"].median()
        assert spread < 0.5 * chance, (model, spread, chance)
    assert {"pitch_comparison.png", "pitch_output_layer.png"} <= {
        p.name for p in (tmp_path / "f").glob("*.png")
    }
