"""Evaluation: last-layer metrics, correlations and simulation scoring on hand-made run dirs."""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from andlib import store
from andlib.evaluate import scores as evaluate
from andlib.evaluate.scores import (
    concept_cosine,
    heldout_mask,
    label_oracle,
    last_layer_scores,
    parse_ratings,
    pearson,
    spearman,
    topk_accuracy,
)
from andlib.report import figures
from andlib.store import RunDir
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


# --------------------------------------------------------------------------------------------
# A hand-made run directory (shared with test_prune)
# --------------------------------------------------------------------------------------------


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
                    "top_clips": " ".join(ids[i] for i in order[:k]),
                    "bottom_clips": " ".join(ids[i] for i in order[-k:]),
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


# --------------------------------------------------------------------------------------------
# Metrics with known answers
# --------------------------------------------------------------------------------------------


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


def test_pearson_and_spearman_match_scipy_with_masks():
    gen = np.random.default_rng(0)
    x = gen.normal(size=(50, 4))
    y = x + gen.normal(size=(50, 4))
    y[3, 1] = y[7, 1] = 5.0  # ties
    mask = gen.random((50, 4)) > 0.3
    r, rho = pearson(x, y, mask), spearman(x, y, mask)
    for j in range(4):
        m = mask[:, j]
        assert r[j] == pytest.approx(stats.pearsonr(x[m, j], y[m, j])[0], abs=1e-10)
        assert rho[j] == pytest.approx(stats.spearmanr(x[m, j], y[m, j])[0], abs=1e-10)


def test_correlations_known_cases():
    x = np.arange(10.0)
    assert pearson(x, 2 * x + 1) == pytest.approx(1.0)
    assert spearman(x, x**3) == pytest.approx(1.0)
    assert pearson(x, x**3) < 0.95
    assert spearman(x, -x) == pytest.approx(-1.0)
    assert np.isnan(pearson(x, np.ones(10)))  # constant
    assert np.isnan(pearson(x[:2], x[:2]))  # too few clips
    with_nan = x.copy()
    with_nan[4] = np.nan
    assert pearson(with_nan, x) == pytest.approx(1.0)


def test_heldout_mask_excludes_description_clips():
    mask = heldout_mask(["a", "b", "c", "d"], [["a", "d"], [], ["b", "zz"]])
    assert mask.tolist() == [
        [False, True, True],
        [True, True, False],
        [True, True, True],
        [False, True, True],
    ]


def test_label_oracle_is_leave_one_out_class_mean():
    acts = np.array([[1.0], [3.0], [5.0], [10.0], [20.0]])
    labels = ["a", "a", "a", "b", ""]
    mask = np.array([[True], [True], [True], [True], [True]])
    pred = label_oracle(acts, labels, mask)[:, 0]
    assert pred[:3].tolist() == [4.0, 3.0, 2.0]
    assert np.isnan(pred[3]) and np.isnan(pred[4])  # alone in its class / no label
    mask[2, 0] = False  # a clip outside the held-out set is not averaged in
    assert label_oracle(acts, labels, mask)[0, 0] == 3.0


def test_parse_ratings_tolerates_reply_styles():
    reply = "Here you go:\n1: 7\n2. 3.5\n 3) 12\n5 - 0\nnonsense"
    out = parse_ratings(reply, 5)
    assert out[:3].tolist() == [7.0, 3.5, 10.0] and out[4] == 0.0 and np.isnan(out[3])


# --------------------------------------------------------------------------------------------
# Last layer
# --------------------------------------------------------------------------------------------


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


@pytest.mark.parametrize(
    "label, expected",
    [
        ("001 - Dog bark", "dog"),  # ESC-10's original folder names
        ("004 - Baby cry", "crying_baby"),
        ("006 - Person sneeze", "sneezing"),
        ("010 - Fire crackling", "crackling_fire"),
        ("Sea_Waves", "sea_waves"),
        ("water", None),  # water_drops or pouring_water: not certain
        ("engine idling loudly", "engine"),
        ("spaceship", None),
    ],
)
def test_probing_labels_map_onto_the_models_classes_only_when_certain(label, expected):
    from andlib.describe.concepts import load_concept_set

    esc50 = load_concept_set("esc50")
    i = evaluate.match_class(label, esc50)
    assert (esc50[i] if i is not None else None) == expected
    assert evaluate.normalize_label("001 - Dog bark") == "dog bark"


def _relabel(run: RunDir, categories: dict[str, str], label_names: list[str] | None) -> None:
    """Rename the probing set's categories (dropped when mapped to ""), set model.json names."""
    clips = store.read_clips(run)
    clips["category"] = clips["category"].map(lambda c: categories.get(c, c))
    run.write_csv("clips.csv", clips)
    info = run.read_json("model.json")
    if label_names is not None:
        info["label_names"] = label_names
    run.write_json("model.json", info)


def test_generic_label_names_map_to_the_probing_set_when_certain(tmp_path):
    run = make_run(tmp_path / "run", tmp_path / "audio")
    _relabel(run, {}, [f"LABEL_{i}" for i in range(4)])
    assert evaluate.class_names(run, 4) == CLASSES  # clips.csv names every output 0..3


def test_generic_label_names_without_a_certain_mapping_say_how_to_supply_one(tmp_path, tmp_cfg):
    from andlib.cli import error_message, project_error
    from andlib.config import ConfigError

    run = make_run(tmp_path / "run", tmp_path / "audio")
    _relabel(run, {"crying_baby": ""}, [f"LABEL_{i}" for i in range(4)])  # output 3: no label
    cfg = tmp_cfg({"evaluate.captioners": []})
    with pytest.raises(evaluate.LabelMapError, match="evaluate.label_map") as err:
        evaluate.last_layer_accuracy(cfg, run, FakeEmbedder())
    assert "LABEL_0" in str(err.value)
    assert isinstance(err.value, ConfigError) and project_error(err.value)
    assert "\n" not in error_message(err.value)
    # With the mapping supplied (probing label -> output index), those outputs are scored.
    mapped = tmp_cfg(
        {"evaluate.captioners": [], "evaluate.label_map": {"dog": 0, "rain": "LABEL_1"}}
    )
    truth = evaluate.classifier_truth(mapped, run, 4)
    assert truth.names == ["dog", "rain", None, None] and truth.n_left_out == 2
    results = evaluate.last_layer_accuracy(mapped, run, FakeEmbedder())
    s = results[mapped.captioner.name]["db_soft_wpmi"]
    assert s["n_neurons"] == 2 and s["top1"] == 1.0 and s["n_left_out"] == 2


def test_probing_set_with_other_class_names_scores_only_the_classes_it_holds(tmp_path, tmp_cfg):
    """ESC-10's original release against an ESC-50 model: "001 - Dog bark" is the model's dog;
    a class without clips is left out and counted, not scored as a miss."""
    run = make_run(tmp_path / "run", tmp_path / "audio")
    _relabel(
        run,
        {"dog": "001 - Dog bark", "rain": "002 - Rain", "crying_baby": "004 - Baby cry",
         "water_drops": "011 - Spaceship"},
        CLASSES,
    )  # fmt: skip
    cfg = tmp_cfg({"evaluate.captioners": []})
    truth = evaluate.classifier_truth(cfg, run, 4)
    assert truth.names == ["dog", "rain", None, "crying_baby"]
    assert truth.mapping["011 - Spaceship"] is None
    results = evaluate.last_layer_accuracy(cfg, run, FakeEmbedder())
    s = results[cfg.captioner.name]["db_soft_wpmi"]
    assert s["n_neurons"] == 3 and s["top1"] == 1.0 and s["n_left_out"] == 1
    assert "do not occur in the probing set" in s["left_out_reason"]
    assert "011 - Spaceship" in s["left_out_reason"]
    from andlib.report import plots

    fig = plots.last_layer_table(results)
    title = fig.axes[0].get_title()
    plots.plt.close(fig)
    assert "3 class neurons; 1 whose class is not in the probing set left out" in title
    # evaluate.label_map overrides the match: "002 - Rain" declared no class of the model.
    cfg = tmp_cfg({"evaluate.captioners": [], "evaluate.label_map": {"002 - Rain": None}})
    assert evaluate.classifier_truth(cfg, run, 4).names == ["dog", None, None, "crying_baby"]


def test_probing_set_whose_labels_match_no_class_is_an_error(tmp_path, tmp_cfg):
    run = make_run(tmp_path / "run", tmp_path / "audio")
    _relabel(
        run,
        {"dog": "spaceship", "rain": "laser", "water_drops": "robot", "crying_baby": "alien"},
        CLASSES,
    )
    cfg = tmp_cfg({"evaluate.captioners": []})
    with pytest.raises(evaluate.LabelMapError, match="none of the probing set's 4 labels"):
        evaluate.last_layer_accuracy(cfg, run, FakeEmbedder())


def test_label_map_values_must_name_a_class_or_an_output(tmp_path, tmp_cfg):
    from andlib.config import ConfigError

    run = make_run(tmp_path / "run", tmp_path / "audio")
    for bad, message in (({"dog": "cat"}, "not a class"), ({"dog": 7}, "does not exist")):
        cfg = tmp_cfg({"evaluate.label_map": bad})
        with pytest.raises(evaluate.LabelMapError, match=message):
            evaluate.classifier_truth(cfg, run, 4)
    with pytest.raises(ConfigError, match="evaluate.label_map"):
        tmp_cfg({"evaluate.label_map": {"dog": [1, 2]}})


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


# --------------------------------------------------------------------------------------------
# Simulation
# --------------------------------------------------------------------------------------------


def _simulation(cfg, run, emb, llm=None):
    """The simulation scorer's rows of ``scores.csv`` (its own and its LLM's)."""
    from andlib.evaluate.scorers.runner import score_run

    scores, _, _ = score_run(cfg, run, emb, llm=llm, names=["simulation"])
    return scores


def test_simulation_scores_only_held_out_clips(tmp_path, tmp_cfg):
    """True activation = the description's simulated activation on held-out clips, and wildly
    off on the description's own clips: a perfect score only if those are left out."""
    run = make_run(tmp_path / "run", tmp_path / "audio", k=2)
    cfg = tmp_cfg({"evaluate.simulation_layers": ["layers.0.attn"]})
    emb = FakeEmbedder()
    index = store.activation_index(run)
    ids = index["clip_ids"]
    caps = run.read_csv("captions.csv")["caption"].tolist()
    neurons = store.read_neurons(run)
    rows = neurons[neurons.layer == "layers.0.attn"].set_index("neuron")
    acts = np.zeros((len(ids), 32), np.float32)
    for n, row in rows.iterrows():
        pred = emb.encode(caps) @ emb.vector(evaluate.description_of(row))
        acts[:, n] = pred
        for cid in evaluate.description_clips(row):
            acts[ids.index(cid), n] = -100.0 * pred[ids.index(cid)]
    np.save(run / "activations" / "layers.0.attn.npy", acts)

    scores = _simulation(cfg, run, emb)
    own = scores[(scores.variant == "own") & (scores.metric == "pearson")]
    assert len(own) == 32 and {"own", "random", "label"} <= set(scores.variant)
    assert np.allclose(own.value, 1.0)
    spearman_own = scores[(scores.variant == "own") & (scores.metric == "spearman")]
    assert np.allclose(spearman_own.value, 1.0)
    assert (own.n == len(ids) - 4).all()  # top-2 and bottom-2 left out
    rand = scores[(scores.variant == "random") & (scores.metric == "pearson")]
    assert rand.value.mean() < 0.9


def test_simulation_sampling_is_seeded_and_random_descriptions_differ(tmp_path, tmp_cfg):
    run = make_run(tmp_path / "run", tmp_path / "audio")
    settings = {
        "evaluate.simulation_max_neurons": 5,
        "evaluate.simulation_layers": ["layers.0.mlp"],
    }
    a = _simulation(tmp_cfg(settings), run, FakeEmbedder())
    b = _simulation(tmp_cfg(settings), run, FakeEmbedder())
    pd.testing.assert_frame_equal(a, b)
    assert a.groupby(["metric", "variant"]).size().eq(5).all()
    other = _simulation(tmp_cfg({**settings, "seed": 1}), run, FakeEmbedder())
    assert set(a.neuron) != set(other.neuron)


def test_llm_simulator_with_a_fake_generative_backend(tmp_path, tmp_cfg):
    run = make_run(tmp_path / "run", tmp_path / "audio")
    cfg = tmp_cfg(
        {
            "llm.backend": "openai",
            "evaluate.simulation_layers": ["layers.1.out"],
            "evaluate.llm_simulation_max_neurons": 3,
            "evaluate.llm_simulation_clips": 6,
        }
    )

    class FakeLLM:
        def __init__(self):
            self.prompts = []

        def complete_many(self, prompts, labels=None):
            self.prompts.extend(prompts)
            self.labels = labels
            return ["\n".join(f"{i + 1}: {i}" for i in range(6)) for _ in prompts]

    llm = FakeLLM()
    scores = _simulation(cfg, run, FakeEmbedder(), llm=llm)
    got = scores[(scores.scorer == "simulation_llm") & (scores.metric == "pearson")]
    assert len(got) == 3 and len(llm.prompts) == 3
    assert (got.n == 6).all()
    assert "Reply with one line per clip" in llm.prompts[0][0]["content"]
    assert llm.labels[0].startswith("layers.1.out neuron ")


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


def test_caption_corruption_rate_is_exact_seeded_and_always_wrong():
    from andlib.controls import corrupt_sources

    classes = [f"c{i}" for i in range(10)]
    cats = [classes[i % 10] for i in range(200)]
    for rate in (0.0, 0.25, 0.5, 0.75, 1.0):
        out, wrong = corrupt_sources(cats, classes, rate, seed=0)
        assert wrong.sum() == round(rate * 200)
        assert all(o != c for o, c, w in zip(out, cats, wrong, strict=True) if w)
        assert all(o == c for o, c, w in zip(out, cats, wrong, strict=True) if not w)
        again, wrong_again = corrupt_sources(cats, classes, rate, seed=0)
        assert again == out and (wrong_again == wrong).all()
    other, _ = corrupt_sources(cats, classes, 0.5, seed=1)
    assert other != corrupt_sources(cats, classes, 0.5, seed=0)[0]
