"""andlib.evaluate.scores: last-layer accuracy, its captioners, and the evaluate stage end to
end."""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from andlib import store
from andlib.evaluate import scores as evaluate
from andlib.evaluate.scores import (
    concept_cosine,
    last_layer_scores,
    topk_accuracy,
)
from andlib.report import figures
from andlib.store import RunDir, encode_list
from tests.conftest import write_tone

CLASSES = ["dog", "rain", "water_drops", "crying_baby"]


AST_PATHS = {
    "layers.0.attn": ("audio_spectrogram_transformer.layers.0.attention.o_proj", 32),
    "layers.0.mlp": ("audio_spectrogram_transformer.layers.0.mlp.activation_fn", 64),
    "layers.1.out": ("audio_spectrogram_transformer.layers.1", 32),
    "classifier": ("classifier", 4),
}


class FakeEmbedder:
    """Deterministic unit vectors per text; a few words share a direction on purpose."""

    def __init__(self, dim: int = 16, same: dict[str, str] | None = None):
        self.dim = dim
        self.same = same or {}
        self.calls: list[list[str]] = []

    def vector(self, text: str) -> np.ndarray:
        text = self.same.get(text, text)
        v = np.random.default_rng(zlib.crc32(text.encode())).normal(size=self.dim)
        return (v / np.linalg.norm(v)).astype(np.float32)

    def encode(self, texts):
        self.calls.append(list(texts))
        if not len(texts):
            return np.zeros((0, self.dim), np.float32)
        return np.stack([self.vector(t) for t in texts])


def make_run(
    run_path: Path, audio_dir: Path, n_per_class: int = 4, k: int = 2, seed: int = 0
) -> RunDir:
    """clips.csv (half fold 5), tones, activations of the AST preset layers, captions,
    model.json and a neurons.csv with DB/TAB/ICL/open concepts."""
    gen = np.random.default_rng(seed)
    run = RunDir(run_path)
    rows = []
    for label, name in enumerate(CLASSES):
        for j in range(n_per_class):
            cid = f"{name}-{j}"
            path = write_tone(audio_dir / f"{cid}.wav", freq=200.0 * (label + 1) + 20 * j)
            rows.append(
                {
                    "clip_id": cid,
                    "path": str(path),
                    "label": label,
                    "category": name,
                    "fold": 5 if j % 2 == 0 else 1,
                }
            )
    clips = pd.DataFrame(rows)
    run.write_csv("clips.csv", clips)
    ids = clips["clip_id"].tolist()
    run.write_csv(
        "captions.csv",
        pd.DataFrame({"clip_id": ids, "caption": [f"the sound of a {c}" for c in clips.category]}),
    )
    layers = {}
    (run / "activations").mkdir(exist_ok=True)
    neuron_rows = []
    for layer, (module, n) in AST_PATHS.items():
        acts = gen.normal(size=(len(ids), n)).astype(np.float32)
        np.save(run / "activations" / f"{layer}.npy", acts)
        layers[layer] = {"file": f"{layer}.npy", "module": module, "n_neurons": n}
        for neuron in range(n):
            order = np.argsort(-acts[:, neuron])
            concept = CLASSES[neuron % 4] if layer == "classifier" else CLASSES[(neuron // 3) % 4]
            others = [c for c in CLASSES if c != concept]
            neuron_rows.append(
                {
                    "layer": layer,
                    "neuron": neuron,
                    "top_clips": encode_list(ids[i] for i in order[:k]),
                    "bottom_clips": encode_list(ids[i] for i in order[-k:]),
                    "high_summary": f"sounds like {concept} {neuron}",
                    "low_summary": "quiet",
                    "calibrated_summary": f"{concept.replace('_', ' ')} sounds, neuron {neuron}",
                    "adjectives": "loud",
                    "db_soft_wpmi": concept,
                    "db_soft_wpmi_top5": ";".join([concept, *others]),
                    "db_cos": others[0],
                    "db_cos_top5": ";".join([others[0], concept, *others[1:]]),
                    "db_soft_wpmi_top5_scores": ";".join(
                        f"{(4 - r) + neuron / 1000:.6g}" for r in range(4)
                    ),
                    "db_cos_top5_scores": "0.9;0.8;0.7;0.6",
                    "tab": "",
                    "tab_top5": "",
                    "tab_top5_scores": "",
                    "icl": concept if neuron % 2 == 0 else "",
                    "icl_top5": "",
                    "open_concepts": "water;drop" if concept == "water_drops" else concept,
                }
            )
    run.write_json("activations/index.json", {"clip_ids": ids, "layers": layers})
    run.write_csv("neurons.csv", pd.DataFrame(neuron_rows))
    run.write_json("model.json", {"model_id": "tiny", "source": "none", "layers": layers})
    return run


def test_topk_accuracy_known_cases():
    preds = [["dog", "cat"], ["rain", "Water_Drops"], [], ["sea waves"]]
    truth = ["dog", "water drops", "rain", "sea_waves"]
    assert topk_accuracy(preds, truth) == (0.5, 0.75)
    assert topk_accuracy([["a", "b", "c", "d", "e", "f"]], ["f"]) == (0.0, 0.0)  # only 5 count
    assert np.isnan(topk_accuracy([], [])[0])
    with pytest.raises(ValueError):
        topk_accuracy([["a"]], ["a", "b"])


def test_concept_cosine_known_values():
    emb = FakeEmbedder(same={"doggy": "dog"})
    # identical after normalisation -> 1; same vector by construction -> 1; missing -> 0
    assert concept_cosine(["Water_Drops"], ["water drops"], emb) == pytest.approx(1.0)
    assert concept_cosine(["doggy", ""], ["dog", "dog"], emb) == pytest.approx(0.5)
    expected = float(emb.vector("rain") @ emb.vector("dog"))
    assert concept_cosine(["rain"], ["dog"], emb) == pytest.approx(expected, abs=1e-6)
    # underscores are embedded as spaces
    assert all("_" not in t for call in emb.calls for t in call)


def test_last_layer_scores_on_hand_made_rows(tmp_path):
    run = make_run(tmp_path / "run", tmp_path / "audio")
    neurons = store.read_neurons(run)
    rows = neurons[neurons.layer == "classifier"]
    names = evaluate.class_names(run, 4)
    assert names == CLASSES  # from clips.csv label -> category
    scores = last_layer_scores(rows, names, FakeEmbedder())
    assert set(scores) == {"db_soft_wpmi", "db_cos", "icl"}  # TAB empty -> skipped
    assert scores["db_soft_wpmi"] == {
        "top1": 1.0,
        "top5": 1.0,
        "cos": pytest.approx(1.0),
        "n_neurons": 4,
    }
    assert scores["db_cos"]["top1"] == 0.0 and scores["db_cos"]["top5"] == 1.0
    assert scores["db_cos"]["cos"] < 0.9
    # ICL: half the neurons have no concept -> top-1 0.5, cosine 0 for those
    assert scores["icl"]["top1"] == 0.5
    assert scores["icl"]["cos"] == pytest.approx(0.5)


def test_icl_without_an_llm_is_scored_under_its_own_name(tmp_path):
    run = make_run(tmp_path / "run", tmp_path / "audio")
    rows = store.read_neurons(run)
    rows = rows[rows.layer == "classifier"].rename(
        columns={"icl": "icl_embedding", "icl_top5": "icl_embedding_top5"}
    )
    scores = last_layer_scores(rows, CLASSES, FakeEmbedder())
    assert "icl_embedding" in scores and "icl" not in scores
    assert scores["icl_embedding"]["top1"] == 0.5


def test_icl_top5_on_the_llms_own_picks_beside_the_padded_figure(tmp_path):
    run = make_run(tmp_path / "run", tmp_path / "audio")
    rows = store.read_neurons(run)
    rows = rows[rows.layer == "classifier"].copy()
    # Each neuron's class is 2nd of its top 5; the LLM named 2 concepts for neurons 0 and 1,
    # one for neurons 2 and 3 (the class sits in a padded slot there).
    rows["icl_top5"] = [";".join(["rain" if c != "rain" else "dog", c, "siren"]) for c in CLASSES]
    rows["icl"] = [t.split(";")[0] for t in rows["icl_top5"]]
    rows["icl_llm_slots"] = [2, 2, 1, 1]
    s = last_layer_scores(rows, CLASSES, FakeEmbedder())["icl"]
    assert s["top1"] == 0.0 and s["top5"] == 1.0
    assert s["top5_llm_only"] == 0.5 and s["n_padded"] == 4
    assert "top5_llm_only" not in last_layer_scores(rows, CLASSES, FakeEmbedder())["db_cos"]


def test_last_layer_with_a_second_captioner_reads_its_control_run(tmp_path, tmp_cfg, monkeypatch):
    """The other captioner's classifier concepts come from a control run the pipeline makes:
    the caption, summarize and concepts stages in a run dir with only that layer."""
    from andlib import pipeline
    from andlib.data.audio import ProbingSet
    from andlib.describe import captioning, concepts, summarize

    run = make_run(tmp_path / "run", tmp_path / "audio")
    cfg = tmp_cfg(
        {
            "evaluate.captioners": ["acoustic", "metadata+acoustic"],
            "evaluate.caption_sweep_rates": [],
        }
    )
    seen: dict = {"captioned": 0}

    class Captioner:
        name = "fake"
        settings: dict = {}

        def caption(self, probing):
            seen["captioned"] += 1
            return [f"the sound of a {c}" for c in probing.meta["category"]]

    def get_captioner(c):
        seen["captioner"] = c.captioner.name
        return Captioner()

    def summarize_stage(c, sub):
        seen["layers"] = list(json.loads((sub / "activations/index.json").read_text())["layers"])
        seen["captions"] = sub.read_csv("captions.csv")["caption"].tolist()

    def concepts_stage(c, sub):
        # a perfect DB result: every class neuron names its class
        sub.write_csv(
            "neurons.csv",
            pd.DataFrame(
                {
                    "layer": "classifier",
                    "neuron": range(4),
                    "db_soft_wpmi": CLASSES,
                    "db_soft_wpmi_top5": CLASSES,
                    "tab": "",
                    "tab_top5": "",
                }
            ),
        )

    def fake_probing(c):  # the probing set in another order than the run's clips
        clips = store.read_clips(run).iloc[::-1].reset_index(drop=True)
        t = np.arange(16000) / 16000
        audio = [
            (0.3 * np.sin(2 * np.pi * 300 * (1 + i) * t)).astype(np.float32) for i in clips.label
        ]
        return ProbingSet("fake", 16000, audio, clips)

    monkeypatch.setattr(captioning, "get_captioner", get_captioner)
    monkeypatch.setattr(captioning, "load_probing_set", fake_probing)
    monkeypatch.setattr(summarize, "run_stage", summarize_stage)
    monkeypatch.setattr(concepts, "run_stage", concepts_stage)
    with pytest.raises(FileNotFoundError, match=r"control run 'metadata\+acoustic'.*pipeline"):
        evaluate.last_layer_accuracy(cfg, run, FakeEmbedder(), evaluate.read_controls(cfg, run))
    pipeline.run_controls(cfg, run)
    controls = evaluate.read_controls(cfg, run)
    results = evaluate.last_layer_accuracy(cfg, run, FakeEmbedder(), controls)
    assert list(results) == ["acoustic", "metadata+acoustic"]
    assert seen["captioner"] == "metadata+acoustic" and seen["layers"] == ["classifier"]
    clips = store.read_clips(run)
    assert seen["captions"] == [f"the sound of a {c}" for c in clips.category]  # run order
    assert results["metadata+acoustic"]["db_soft_wpmi"]["top1"] == 1.0
    assert results["acoustic"]["db_cos"]["top1"] == 0.0
    control = RunDir(run / "last_layer" / "metadata_acoustic")
    assert control.stage_key("record") and control.stage_key("caption")
    assert run.stage_key("controls")
    pipeline.run_controls(cfg, run)  # fresh: not captioned again
    assert seen["captioned"] == 1


def test_run_stage_end_to_end(tmp_path, tmp_cfg, monkeypatch):
    run = make_run(tmp_path / "run", tmp_path / "audio")
    cfg = tmp_cfg({"evaluate.captioners": ["acoustic"], "evaluate.simulation_max_neurons": 8})
    import andlib.text.embeddings

    emb = FakeEmbedder()
    monkeypatch.setattr(andlib.text.embeddings, "get_embedder", lambda c=None: emb)
    summary = evaluate.run_stage(cfg, run)
    assert "last_layer[acoustic].db_soft_wpmi" in summary
    last = run.read_json("last_layer.json")
    assert last["acoustic"]["db_soft_wpmi"]["top1"] == 1.0
    scores = store.read_scores(run)
    assert list(scores.columns) == ["layer", "neuron", "scorer", "metric", "variant", "value", "n"]
    assert set(scores.layer) == set(AST_PATHS)
    assert {"simulation", "detection"} <= set(scores.scorer)
    assert not run.exists("simulation_scores.csv")
    sanity = run.read_csv("score_sanity.csv")
    assert set(sanity.variant) <= {"missing_label", "extra_label"} and len(sanity)
    assert not (cfg.figures_path / "last_layer_accuracy.png").exists()  # tables only
    drawn = figures.run_stage(cfg, run)["figures"]
    assert {"last_layer_accuracy", "simulation_scores"} <= set(drawn)
    assert (cfg.figures_path / "last_layer_accuracy.png").exists()
    assert (cfg.figures_path / "simulation_scores.png").exists()
    (cfg.figures_path / "simulation_scores.png").unlink()
    figures.run_stage(cfg, run)  # a deleted figure is drawn again
    assert (cfg.figures_path / "simulation_scores.png").exists()
    assert evaluate.simulation_summary(scores).layer.tolist()[0] == "layers.0.attn"
    # a second call is a no-op
    n_calls = len(emb.calls)
    evaluate.run_stage(cfg, run)
    assert len(emb.calls) == n_calls


def test_run_stage_scores_when_labels_do_not_map(tmp_path, tmp_cfg, monkeypatch):
    """Labels that are no class of the model: the last-layer table is left out with its
    reason, and every scorer still runs."""
    run = make_run(tmp_path / "run", tmp_path / "audio")
    clips = store.read_clips(run)
    clips["category"] = [f"digit {i % 4}" for i in range(len(clips))]
    run.write_csv("clips.csv", clips)
    cfg = tmp_cfg({"evaluate.captioners": ["acoustic"], "evaluate.simulation_max_neurons": 4})
    import andlib.text.embeddings

    monkeypatch.setattr(andlib.text.embeddings, "get_embedder", lambda c=None: FakeEmbedder())
    evaluate.run_stage(cfg, run)
    assert run.read_json("last_layer.json") == {}
    missing = run.read_csv("score_missing.csv")
    reason = missing[missing.scorer == "last_layer"].reason.tolist()
    assert len(reason) == 1 and "do not map" in reason[0]
    assert {"simulation", "detection", "intruder"} >= set(store.read_scores(run).scorer)
    assert {"simulation", "detection"} <= set(store.read_scores(run).scorer)


def test_unknown_scorer_is_a_config_error(tmp_path, tmp_cfg):
    from andlib.config import ConfigError

    run = make_run(tmp_path / "run", tmp_path / "audio")
    with pytest.raises(ConfigError, match=r"unknown scorer\(s\) 'nope'"):
        evaluate.run_stage(tmp_cfg({"evaluate.scorers": ["nope"]}), run)
