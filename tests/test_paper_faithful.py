"""Each departure from AND has a config switch that restores AND's choice, and
``configs/paper-faithful.yaml`` is the offline default with every switch set to it."""

from __future__ import annotations

import dataclasses
import inspect
import math

import numpy as np
import pandas as pd
import pytest
import torch

from andlib.config import ConfigError, SimilarityConfig, load_config
from andlib.describe import concepts as C
from andlib.describe import similarity as S
from andlib.report import analysis as an
from andlib.store import RunDir
from andlib.text.prompts import adjective_messages

PAPER = {
    "concepts.db_clips": "top_k",
    "concepts.tab_logit_scale": 1.0,
    "concepts.calibration_keep_contrasts": False,
    "concepts.calibration_strip_counts": False,
    "concepts.open_concepts_verbs": False,
    "concepts.adjective_prompt": "tone_emotion",
    "analysis.cluster_unit": "sentence",
    "concepts.db_default": "soft_wpmi",
    "concepts.db_template": "{}",
    "concepts.similarity_params.soft_wpmi_top_k": 100,
    "concepts.similarity_params.soft_wpmi_top_fraction": None,
    "concepts.similarity_params.soft_wpmi_prior": "neurons",
    "concepts.similarity_params.wpmi_top_k": 28,
    "concepts.similarity_params.wpmi_top_fraction": None,
    "concepts.similarity_params.wpmi_prior": "neurons",
    "prune.max_share": None,
}
"""Every switch and AND's value of it (the similarity constants: CLIP-Dissect's, which AND
reuses)."""
DEFAULT = {
    "concepts.db_clips": "all",
    "concepts.tab_logit_scale": None,
    "concepts.calibration_keep_contrasts": True,
    "concepts.calibration_strip_counts": True,
    "concepts.open_concepts_verbs": True,
    "concepts.adjective_prompt": "acoustic",
    "analysis.cluster_unit": "caption",
    "concepts.db_default": "wpmi",
    "concepts.db_template": "This is an audio about {}",
    "concepts.similarity_params.soft_wpmi_top_k": 5,
    "concepts.similarity_params.soft_wpmi_top_fraction": 0.0025,
    "concepts.similarity_params.soft_wpmi_prior": "clips",
    "concepts.similarity_params.wpmi_top_k": 5,
    "concepts.similarity_params.wpmi_top_fraction": 0.0025,
    "concepts.similarity_params.wpmi_prior": "clips",
    "prune.max_share": 0.05,
}


def _get(cfg, dotted):
    obj = cfg
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def _flat(d, prefix=""):
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


# --------------------------------------------------------------------------------------------
# The config
# --------------------------------------------------------------------------------------------


def test_defaults_keep_the_project_choices():
    cfg = load_config(None)
    assert {k: _get(cfg, k) for k in DEFAULT} == DEFAULT
    assert cfg.concepts.similarity_params == SimilarityConfig()


def test_paper_faithful_config_is_the_default_with_every_switch_at_the_paper_value():
    paper = load_config("configs/paper-faithful.yaml")
    default = load_config("configs/default.yaml")
    assert {k: _get(paper, k) for k in PAPER} == PAPER
    diff = {
        k
        for k, v in _flat(paper.to_dict()).items()
        if v != _flat(default.to_dict())[k] and k != "name"
    }
    assert diff == set(PAPER)  # nothing else differs from the offline default
    # AND reuses CLIP-Dissect's constants: those the defaults keep are the same
    same = set(_flat(dataclasses.asdict(SimilarityConfig()))) - {
        k.rsplit(".", 1)[1] for k in PAPER if "similarity_params" in k
    }
    paper_sp, default_sp = paper.concepts.similarity_params, SimilarityConfig()
    assert all(getattr(paper_sp, k) == getattr(default_sp, k) for k in same)


def test_switches_are_validated():
    with pytest.raises(ConfigError, match="concepts.db_clips"):
        load_config(None, {"concepts.db_clips": "some"})
    with pytest.raises(ConfigError, match="analysis.cluster_unit"):
        load_config(None, {"analysis.cluster_unit": "word"})
    with pytest.raises(ConfigError, match="concepts.adjective_prompt"):
        load_config(None, {"concepts.adjective_prompt": "emotion"})
    with pytest.raises(ConfigError, match="tab_logit_scale"):
        load_config(None, {"concepts.tab_logit_scale": 0})
    cfg = load_config(None, {"concepts.similarity_params.soft_wpmi_top_k": 7})
    assert cfg.concepts.similarity_params.soft_wpmi_top_k == 7


# --------------------------------------------------------------------------------------------
# Similarity constants
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(S.SIMILARITY_FUNCTIONS))
def test_default_similarity_params_are_the_functions_own_defaults(name):
    kwargs = S.similarity_kwargs(name, SimilarityConfig())
    sig = inspect.signature(S.SIMILARITY_FUNCTIONS[name])
    assert kwargs == {k: sig.parameters[k].default for k in kwargs}
    rng = np.random.default_rng(0)
    probs = torch.softmax(torch.as_tensor(rng.normal(size=(120, 6))), dim=1).numpy()
    acts = rng.normal(size=(120, 9))
    plain = S.get_similarity(name)(probs, acts)
    bound = S.get_similarity(name, SimilarityConfig())(probs, acts)
    assert torch.equal(plain, bound)  # defaults keep every result identical


def test_similarity_params_reach_the_functions():
    # Concept A on the neuron's single top clip, B on the next 99: soft-WPMI over its top 100
    # clips picks B, over its top clip only it picks A.
    n = 200
    acts = np.linspace(1.0, 0.0, n)[:, None].astype(np.float32)
    probs = np.full((n, 2), 0.5, dtype=np.float32)
    probs[0] = [1.0, 0.0]
    probs[1:100] = [0.0, 1.0]
    # lam = 0: one neuron alone, so no p(c) normalisation (it would cancel every score)
    wide = C.db_scores(probs, acts, "soft_wpmi", params=SimilarityConfig(soft_wpmi_lam=0.0))
    narrow = C.db_scores(
        probs, acts, "soft_wpmi", params=SimilarityConfig(soft_wpmi_top_k=1, soft_wpmi_lam=0.0)
    )
    assert int(wide[0].argmax()) == 1 and int(narrow[0].argmax()) == 0


# --------------------------------------------------------------------------------------------
# DB: every clip or each neuron's top K
# --------------------------------------------------------------------------------------------


def test_db_top_k_scores_each_neuron_on_its_own_top_clips():
    # Concept A is what the neuron's two top clips are about; B what its eight moderately
    # active clips are about. Cosine over every clip sides with B, over the top 2 with A.
    acts = np.array([10, 9, 5, 5, 5, 5, 5, 5, 5, 5], dtype=np.float32)[:, None]
    probs = np.zeros((10, 2), dtype=np.float32)
    probs[:2, 0] = 1.0
    probs[2:, 1] = 1.0
    every = C.db_scores(probs, acts, "cos", "all")
    top = C.db_scores(probs, acts, "cos", "top_k", k=2)
    assert int(every[0].argmax()) == 1 and int(top[0].argmax()) == 0
    # a clip outside the neuron's top K cannot change its top-K scores
    probs2 = probs.copy()
    probs2[5] = [1.0, 0.0]
    assert torch.equal(C.db_scores(probs2, acts, "cos", "top_k", k=2), top)
    assert not torch.equal(C.db_scores(probs2, acts, "cos", "all"), every)


def test_db_top_k_neurons_are_scored_alone_and_rows_can_be_picked():
    rng = np.random.default_rng(1)
    probs = torch.softmax(torch.as_tensor(rng.normal(size=(30, 4))), dim=1).float().numpy()
    acts = rng.normal(size=(30, 5)).astype(np.float32)
    full = C.db_scores(probs, acts, "wpmi", "top_k", k=5)
    assert full.shape == (5, 4)
    for n in range(5):
        top = np.argsort(-acts[:, n], kind="stable")[:5]
        alone = S.wpmi(probs[top], acts[top, n : n + 1])[0]
        assert torch.allclose(full[n], alone)
    assert torch.equal(C.db_scores(probs, acts, "wpmi", "top_k", k=5, neurons=[3, 1]), full[[3, 1]])
    # AND's degeneracy: soft-WPMI with lam = 1 and CLIP-Dissect's p(c) (the mean over the
    # neurons scored together) on one neuron scores every concept 0; the clips prior does not.
    paper = SimilarityConfig(soft_wpmi_prior="neurons")
    zeros = torch.zeros(5, 4)
    assert torch.allclose(C.db_scores(probs, acts, "soft_wpmi", "top_k", k=5, params=paper), zeros)
    assert not torch.allclose(C.db_scores(probs, acts, "soft_wpmi", "top_k", k=5), zeros)
    with pytest.raises(ValueError, match="db_clips"):
        C.db_scores(probs, acts, "cos", "some")


# --------------------------------------------------------------------------------------------
# TAB: CLAP's logit scale or an unscaled softmax
# --------------------------------------------------------------------------------------------


class _StubClap:
    logit_scale_a = torch.tensor(math.log(33.37))

    def eval(self):
        return self

    def to(self, device):
        return self


def _scorer():
    scorer = C.ClapScorer(_StubClap(), processor=None)
    audio = np.array([[1.0, 0.0], [0.6, 0.8]], dtype=np.float32)
    text = np.array([[1.0, 0.0], [0.8, 0.6]], dtype=np.float32)
    scorer.audio_embeddings = lambda clips: audio  # type: ignore[method-assign]
    scorer.text_embeddings = lambda texts: text  # type: ignore[method-assign]
    return scorer, audio @ text.T


def test_tab_logit_scale_one_is_an_unscaled_softmax():
    scorer, cos = _scorer()
    clap = scorer.concept_probs(["a", "b"], ["x", "y"])
    unscaled = scorer.concept_probs(["a", "b"], ["x", "y"], logit_scale=1.0)
    np.testing.assert_allclose(unscaled, torch.softmax(torch.as_tensor(cos), 1).numpy(), 1e-6)
    np.testing.assert_allclose(clap, torch.softmax(torch.as_tensor(cos) * 33.37, 1), 1e-4)
    assert clap.max(1).min() > 0.99 and unscaled.max(1).max() < 0.6  # AND's is nearly flat


def test_tab_concepts_passes_the_scale_through():
    scorer, _ = _scorer()
    seen = []
    original = scorer.concept_probs

    def spy(clips, concepts, logit_scale=None):
        seen.append(logit_scale)
        return original(clips, concepts, logit_scale)

    scorer.concept_probs = spy  # type: ignore[method-assign]
    acts = np.array([[1.0], [0.0]], dtype=np.float32)
    C.tab_concepts(["a", "b"], ["x", "y"], acts, scorer, "cos", 2, logit_scale=1.0)
    assert seen == [1.0]


# --------------------------------------------------------------------------------------------
# Calibration: counts stripped or whole sentences
# --------------------------------------------------------------------------------------------


class BagOfWords:
    """A sentence embedder stand-in: unit-norm word counts, so shared words mean similarity."""

    def encode(self, texts):
        words = [
            t.lower().replace("(", " ").replace(")", " ").replace(".", " ").split() for t in texts
        ]
        vocab = sorted({w for ws in words for w in ws})
        out = np.zeros((len(texts), max(len(vocab), 1)), dtype=np.float32)
        for i, ws in enumerate(words):
            for w in ws:
                out[i, vocab.index(w)] += 1
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


def test_whole_sentences_make_the_count_subject_look_shared():
    high, low = "Most clips (4 of 5) are loud.", "Most clips (4 of 5) are dogs barking."
    kw = {"embedder": BagOfWords(), "threshold": 0.5, "keep_contrasts": False}
    assert C.calibrate(high, low, **kw) == high  # "are loud." vs "are dogs barking.": kept
    assert C.calibrate(high, low, strip_counts=False, **kw) == ""  # AND: the subject matches


# --------------------------------------------------------------------------------------------
# Module C: nouns and verbs, or nouns
# --------------------------------------------------------------------------------------------


def test_open_concepts_without_verbs_keep_the_nouns_only():
    text = "A dog is barking."
    assert C.open_concepts(text) == ["dog", "bark"]
    assert C.open_concepts(text, verbs=False) == ["dog"]
    assert C.open_concepts_many([text, text], verbs=False) == [["dog"], ["dog"]]


# --------------------------------------------------------------------------------------------
# The adjective question
# --------------------------------------------------------------------------------------------


class EmotionLLM:
    """Says yes exactly when the question admits emotion."""

    generative = True

    def __init__(self):
        self.asked = []

    def complete_many(self, batch, labels=None):
        self.asked.extend(batch)
        return ["yes" if "emotion" in m[-1]["content"] else "no" for m in batch]


def test_the_paper_adjective_prompt_admits_tone_and_emotion():
    acoustic = adjective_messages("happy")[-1]["content"]
    paper = adjective_messages("happy", "tone_emotion")[-1]["content"]
    assert "emotion" not in acoustic and "tone" in paper and "emotion" in paper
    assert '"happy"' in paper
    llm = EmotionLLM()
    assert C.judge_adjectives(["happy"], llm, frozenset()) == {"happy": False}
    assert C.judge_adjectives(["happy"], llm, frozenset(), "tone_emotion") == {"happy": True}
    assert C.acoustic_adjectives_many(["A happy tune."], llm, frozenset(), "tone_emotion") == [
        ["happy"]
    ]
    with pytest.raises(ValueError, match="adjective prompt"):
        adjective_messages("happy", "nope")


# --------------------------------------------------------------------------------------------
# Polysemanticity: captions or caption sentences
# --------------------------------------------------------------------------------------------


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


def test_paper_switches_are_named_in_the_docs():
    from andlib.config import PROJECT_ROOT

    doc = (PROJECT_ROOT / "docs" / "paper-faithful.md").read_text()
    for key in [*PAPER, "concepts.similarity_params"]:
        assert f"`{key}" in doc, key
    assert dataclasses.fields(SimilarityConfig)


def test_the_concepts_stage_runs_with_every_paper_switch(tmp_path, tmp_cfg):
    from tests.test_concepts import make_run

    default_cfg, run = make_run(tmp_path, tmp_cfg)
    C.run_stage(default_cfg, run)
    default = run.read_csv("neurons.csv").set_index(["layer", "neuron"]).loc["classifier"]
    assert default.loc[2, "open_concepts"] == "hum;engine;run"

    nouns = tmp_cfg({"concepts.open_concepts_verbs": False})
    C.run_stage(nouns, run)
    only = run.read_csv("neurons.csv").set_index(["layer", "neuron"]).loc["classifier"]
    assert only.loc[2, "open_concepts"] == "hum;engine"  # "running" is a verb
    assert only["calibrated_summary"].tolist() == default["calibrated_summary"].tolist()

    cfg = tmp_cfg({k: v for k, v in PAPER.items() if k.startswith("concepts.")})
    assert C.SPEC.key(cfg, run) != C.SPEC.key(default_cfg, run)
    assert C.run_stage(cfg, run)["neurons"] == 8
    paper = run.read_csv("neurons.csv").set_index(["layer", "neuron"]).loc["classifier"]
    # WPMI on each neuron's own top 5 clips still finds the classes ...
    assert paper.loc[[0, 1, 2], "db_wpmi"].tolist() == ["dog", "rain", "engine"]
    # ... while soft-WPMI (lam = 1) on one neuron scores every concept alike (AND's code)
    assert paper["db_soft_wpmi"].nunique() == 1
    # whole sentences: the shared "All 5 clips are" subject matches the low summary, so AND's
    # plain rule drops every high sentence here, which the default keeps
    assert (default["calibrated_summary"] != "").all() and (paper["calibrated_summary"] == "").all()
