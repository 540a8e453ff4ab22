"""andlib.describe.concepts: the concepts stage (Modules A, B, C on a run), TAB's unreadable clips
and its errors."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from andlib.describe import concepts as C
from andlib.describe.concepts import (
    ClapScorer,
    load_concept_set,
)
from andlib.store import RunDir

ESC50 = load_concept_set("esc50")


class FakeLLM:
    """A generative LLM stand-in: ``reply(messages) -> str``; records every request."""

    generative = True
    backend, model = "fake", "fake"

    def __init__(self, reply):
        self.reply = reply
        self.requests: list[list[dict]] = []

    def complete_many(self, batch, labels=None):
        self.requests.extend(batch)
        return [self.reply(m) for m in batch]


GROUPS = {
    "dog": "A dog barks loudly several times.",
    "rain": "Heavy rain is falling on a roof.",
    "engine": "A car engine is running and idling.",
}


class _NaNRowClap(ClapScorer):
    """CLAP probabilities planted per clip path; the clip ``"broken"`` cannot be read."""

    def __init__(self, probs_of):
        self.probs_of = probs_of

    def concept_probs(self, clips, concepts, logit_scale=None, skipped=None):
        rows = []
        for i, clip in enumerate(clips):
            if str(clip).endswith("broken.wav"):
                if skipped is not None:
                    skipped.append((i, "cannot decode audio"))
                rows.append(np.full(len(concepts), np.nan, np.float32))
            else:
                rows.append(self.probs_of(str(clip), concepts))
        return np.stack(rows)


def test_run_stage_records_unreadable_clips_and_leaves_them_out_of_tab(
    tmp_path, tmp_cfg, monkeypatch
):
    cfg, run = make_run(tmp_path, tmp_cfg)
    cfg = tmp_cfg({"concepts.clap_model": "planted-clap"})
    clips = run.read_csv("clips.csv", dtype=str)
    broken_id = clips.loc[3, "clip_id"]
    clips.loc[3, "path"] = str(tmp_path / "broken.wav")
    run.write_csv("clips.csv", clips)

    def probs_of(path, concepts):  # each clip is about its kind
        kind = path.rsplit("/", 1)[-1].split("-")[0]
        p = np.full(len(concepts), 0.01, np.float32)
        p[concepts.index(kind)] = 1.0
        return p / p.sum()

    scorer = _NaNRowClap(probs_of)
    asked: list = []
    monkeypatch.setattr(C, "load_clap", lambda name, *a, **k: asked.append(a) or scorer)
    info = C.run_stage(cfg, run)
    assert asked and asked[0][-1] == C.embedder_device(cfg.model.device)  # CLAP on model.device
    assert info["tab"].startswith("CLAP planted-clap") and C.TAB_SKIPPED_CLIPS in info["tab"]
    record = run.read_csv(C.TAB_SKIPPED_CLIPS, dtype=str)
    assert record.to_dict("records") == [
        {
            "clip_id": broken_id,
            "path": str(tmp_path / "broken.wav"),
            "reason": "cannot decode audio",
        }
    ]
    assert (
        C.TAB_SKIPPED_CLIPS
        in json.loads((run / ".stages" / "concepts.json").read_text())["outputs"]
    )
    # TAB equals TAB computed on the readable clips alone.
    from andlib.describe.similarity import get_similarity, top_concepts
    from andlib.store import ActivationCache

    cache = ActivationCache.load(run)
    keep = [i for i, cid in enumerate(cache.clip_ids) if cid != broken_id]
    paths = dict(zip(clips["clip_id"], clips["path"], strict=True))
    probs = np.stack([probs_of(paths[cache.clip_ids[i]], ESC50) for i in keep])
    acts = np.asarray(cache["classifier"], dtype=np.float32)[keep]
    scores = get_similarity(cfg.concepts.tab_similarity, cfg.concepts.similarity_params)(
        probs, acts
    )
    expected = [";".join(r) for r in top_concepts(scores, ESC50, 5)]
    df = run.read_csv("neurons.csv")
    assert df[df["layer"] == "classifier"]["tab_top5"].tolist() == expected


def test_run_stage_with_a_configured_clap_model_that_cannot_load_fails(tmp_path, tmp_cfg):
    cfg, run = make_run(tmp_path, tmp_cfg)
    cfg = tmp_cfg({"concepts.clap_model": str(tmp_path / "missing-clap")})
    with pytest.raises(C.ClapLoadError, match="missing-clap"):
        C.run_stage(cfg, run)
    assert not run.exists("neurons.csv")


def test_tab_clips_render_synthetic_probes_without_a_file(tmp_cfg):
    from andlib.data.probing import load_probing_set

    cfg = tmp_cfg({"data.dataset": "synthetic", "data.limit": 2})
    probing = load_probing_set(cfg)
    clips = probing.meta[["clip_id", "path"]].astype(str)
    out = C._tab_clips(cfg, clips, probing.clip_ids)
    assert all(isinstance(w, np.ndarray) for w in out)
    seconds = len(probing.audio[0]) / probing.sample_rate
    assert len(out[0]) == pytest.approx(seconds * C.CLAP_SAMPLE_RATE, abs=2)
    with pytest.raises(ValueError, match="no audio file"):
        C._tab_clips(cfg, pd.DataFrame({"clip_id": ["x"], "path": [""]}), ["x"])


def make_run(tmp_path, tmp_cfg):
    cfg = tmp_cfg()
    run = RunDir.from_config(cfg)
    n = 20
    kinds = ["dog", "rain", "engine"]
    clip_ids = [f"{k}-{i}" for k in kinds for i in range(n)]
    run.write_csv(
        "clips.csv",
        pd.DataFrame(
            {
                "clip_id": clip_ids,
                "path": [str(tmp_path / f"{c}.wav") for c in clip_ids],
                "label": [kinds.index(c.split("-")[0]) for c in clip_ids],
                "category": [c.split("-")[0] for c in clip_ids],
                "fold": 1,
            }
        ),
    )
    run.write_csv(
        "captions.csv",
        pd.DataFrame({"clip_id": clip_ids, "caption": [GROUPS[c.split("-")[0]] for c in clip_ids]}),
    )
    rng = np.random.default_rng(0)
    layers = {"layers.0.mlp": 5, "classifier": 3}
    index = {"clip_ids": clip_ids, "layers": {}}
    (run.path / "activations").mkdir()
    for layer, width in layers.items():
        acts = rng.normal(0, 0.1, (len(clip_ids), width)).astype(np.float32)
        for k in range(min(3, width)):
            acts[k * n : (k + 1) * n, k] += 2.0
        np.save(run.path / "activations" / f"{layer}.npy", acts)
        index["layers"][layer] = {"file": f"{layer}.npy", "module": layer, "n_neurons": width}
    (run.path / "activations" / "index.json").write_text(json.dumps(index))
    highs = {
        0: "All 5 clips are loud, sharp sounds of a dog barking. All 5 clips are recorded outdoors.",
        1: "Most clips (4 of 5) are steady, noisy sounds of rain falling. All 5 clips are recorded outdoors.",
        2: "All 5 clips are low-pitched hums of an engine running. Only one clip is not loud.",
    }
    low = "All 5 clips are quiet sounds. All 5 clips are recorded outdoors."
    rows = []
    for layer, width in layers.items():
        for neuron in range(width):
            top = " ".join(clip_ids[(neuron % 3) * n : (neuron % 3) * n + 5])
            rows.append((layer, neuron, top, "rain-0 rain-1", highs.get(neuron, ""), low))
    run.write_csv(
        "summaries.csv",
        pd.DataFrame(
            rows,
            columns=["layer", "neuron", "top_clips", "bottom_clips", "high_summary", "low_summary"],
        ),
    )
    return cfg, run


def test_run_stage_on_a_small_run(tmp_path, tmp_cfg):
    cfg, run = make_run(tmp_path, tmp_cfg)
    info = C.run_stage(cfg, run)
    assert info["neurons"] == 8
    assert "no CLAP model" in info["tab"]
    assert info["icl"] == "icl_embedding"
    df = run.read_csv("neurons.csv")
    expected = [
        "layer", "neuron", "top_clips", "bottom_clips", "high_summary", "low_summary",
        "calibrated_summary", "adjectives",
        *[f"db_{fn}{s}" for fn in cfg.concepts.similarity for s in ("", "_top5", "_top5_scores")],
        "tab", "tab_top5", "tab_top5_scores", "icl_embedding", "icl_embedding_top5", "icl_method", "open_concepts",
    ]  # fmt: skip  # without an LLM, ICL is reported as icl_embedding, never as icl
    assert list(df.columns) == expected
    spread = run.read_csv("concept_spread.csv")
    assert set(spread["method"]) == {f"db_{fn}" for fn in cfg.concepts.similarity} | {
        "icl_embedding"
    }
    assert (spread["top_share"] > 0).all() and (spread["top_share"] <= 1).all()
    cls = df[df["layer"] == "classifier"].set_index("neuron")
    for fn in cfg.concepts.similarity:
        top5 = cls.loc[0, f"db_{fn}_top5"].split(";")
        assert len(top5) == 5 and top5[0] == cls.loc[0, f"db_{fn}"] and set(top5) <= set(ESC50)
        if fn != "cos":  # plain cosine is blind to column scale: see test_db_finds...
            assert cls.loc[[0, 1, 2], f"db_{fn}"].tolist() == ["dog", "rain", "engine"], fn
    assert (df["tab"] == "").all()
    assert cls.loc[0, "icl_embedding"] == "dog" and cls.loc[1, "icl_embedding"] == "rain"
    assert (df["icl_method"] == "icl_embedding").all()
    assert not (run / C.TAB_SKIPPED_CLIPS).exists()
    assert (
        cls.loc[0, "calibrated_summary"] == "All 5 clips are loud, sharp sounds of a dog barking."
    )
    assert cls.loc[0, "adjectives"] == "loud;sharp"
    assert cls.loc[0, "open_concepts"] == "dog;barking"  # "a dog barking": a noun here
    assert cls.loc[2, "adjectives"] == "low-pitched"  # "not loud" is negated
    mlp = df[df["layer"] == "layers.0.mlp"].set_index("neuron")
    assert mlp.loc[3, "calibrated_summary"] == "" and mlp.loc[3, "adjectives"] == ""
    # Unchanged inputs: reused.
    assert C.run_stage(cfg, run) == {"neurons": "up to date"}


def test_run_stage_with_an_llm_reports_icl_and_the_slots_it_named(tmp_path, tmp_cfg, monkeypatch):
    import andlib.text.llm

    cfg, run = make_run(tmp_path, tmp_cfg)
    llm = FakeLLM(lambda m: "Answer: dog" if "Class names:" in m[-1]["content"] else "yes")
    monkeypatch.setattr(andlib.text.llm, "get_llm", lambda *a, **k: llm)
    info = C.run_stage(cfg, run)
    assert info["icl"] == "icl" and info["icl_padded_neurons"] == 6  # 6 summaries, 1 name each
    df = run.read_csv("neurons.csv")
    assert {"icl", "icl_top5", "icl_llm_slots"} <= set(df.columns)
    assert not {"icl_embedding", "icl_embedding_top5"} & set(df.columns)
    asked = df["high_summary"] != ""
    assert (df.loc[asked, "icl"] == "dog").all()
    assert (df.loc[asked, "icl_llm_slots"] == 1).all() and (
        df.loc[~asked, "icl_llm_slots"] == 0
    ).all()
    assert (df.loc[asked, "icl_top5"].str.split(";").str.len() == 5).all()  # 4 padded


def test_run_stage_reports_a_missing_input(tmp_path, tmp_cfg):
    cfg = tmp_cfg()
    run = RunDir.from_config(cfg)
    with pytest.raises(FileNotFoundError, match="summarize"):
        C.run_stage(cfg, run)


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


def test_the_concepts_stage_runs_with_every_paper_switch(tmp_path, tmp_cfg):
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
