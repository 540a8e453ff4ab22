"""Modules A, B, C: concept sets, DB/TAB/ICL, calibration, adjectives, open concepts, the stage."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from andlib.describe import concepts as C
from andlib.describe.concepts import (
    ClapScorer,
    acoustic_adjectives,
    acoustic_adjectives_many,
    calibrate,
    comparable,
    db_concepts,
    display_name,
    extract_adjectives,
    icl_answer,
    icl_concepts,
    load_concept_set,
    open_concepts,
    parse_icl_reply,
    split_sentences,
    tab_concepts,
)
from andlib.store import RunDir
from tests.conftest import requires_esc50

ESC50 = load_concept_set("esc50")


@pytest.fixture(scope="module")
def embedder():
    from andlib.text.embeddings import get_embedder

    return get_embedder()


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


class NonGenerativeLLM:
    generative = False

    def complete_many(self, batch, labels=None):  # pragma: no cover - must not be called
        raise AssertionError("the extractive backend must not be asked")


# --------------------------------------------------------------------------------------------
# Concept sets
# --------------------------------------------------------------------------------------------


def test_shipped_esc50_set():
    assert len(ESC50) == 50 and ESC50[:3] == ["dog", "rooster", "pig"]
    assert "water_drops" in ESC50 and ESC50[-1] == "hand_saw"
    assert display_name("water_drops") == "water drops"


@requires_esc50
def test_esc50_set_is_in_target_order():
    from andlib.data.esc50 import SHARED_ESC50

    meta = pd.read_csv(SHARED_ESC50 / "meta" / "esc50.csv")
    by_target = meta.drop_duplicates("target").set_index("target")["category"].sort_index()
    assert ESC50 == by_target.tolist()


def test_concept_file_ignores_blanks_comments_and_duplicates(tmp_path):
    f = tmp_path / "set.txt"
    f.write_text("# my concepts\n\ndog\n  water_drops  \n# more\ndog\nsiren\n")
    assert load_concept_set(f) == ["dog", "water_drops", "siren"]
    assert load_concept_set(str(f)) == ["dog", "water_drops", "siren"]


def test_missing_or_empty_concept_set_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.txt.*shipped set"):
        load_concept_set(tmp_path / "nope.txt")
    (tmp_path / "empty.txt").write_text("# nothing\n\n")
    with pytest.raises(ValueError, match="no concepts"):
        load_concept_set(tmp_path / "empty.txt")


# --------------------------------------------------------------------------------------------
# Module A: DB and TAB
# --------------------------------------------------------------------------------------------

GROUPS = {
    "dog": "A dog barks loudly several times.",
    "rain": "Heavy rain is falling on a roof.",
    "engine": "A car engine is running and idling.",
}


def planted_case(n_per_group=150, seed=0):
    """Clips of three kinds; neuron i fires for kind i, neuron 3 is noise."""
    rng = np.random.default_rng(seed)
    kinds = np.repeat(np.arange(3), n_per_group)
    captions = [list(GROUPS.values())[k] for k in kinds]
    acts = rng.normal(0, 0.1, (len(kinds), 4)).astype(np.float32)
    for k in range(3):
        acts[kinds == k, k] += 2.0
    return captions, acts


def test_db_finds_the_planted_concept_with_every_similarity(embedder):
    captions, acts = planted_case()
    fns = ["soft_wpmi", "wpmi", "cos3", "rank_reorder"]
    out = db_concepts(captions, ESC50, acts, embedder, similarity=fns, top=5)
    assert set(out) == set(fns)
    for fn in fns:
        assert [row[0] for row in out[fn][:3]] == ["dog", "rain", "engine"], fn
        assert all(len(row) == 5 and len(set(row)) == 5 for row in out[fn])
    # Plain cosine ignores a concept column's scale, so with AND's sharp softmax (x100) a
    # concept improbable everywhere but least so on dog clips ties with "dog"; a milder
    # softmax makes the columns comparable.
    out = db_concepts(captions, ESC50, acts, embedder, similarity="cos", logit_scale=10)
    assert [row[0] for row in out["cos"][:3]] == ["dog", "rain", "engine"]


def test_db_checks_row_count(embedder):
    with pytest.raises(ValueError, match="2 captions for 3"):
        db_concepts(["a", "b"], ESC50, np.zeros((3, 1)), embedder)


def test_tab_skipped_without_a_clap_model(capsys):
    assert tab_concepts(["x.wav"], ESC50, np.zeros((1, 2)), clap=None) is None
    assert "no CLAP model is configured" in capsys.readouterr().out


def test_tab_a_configured_clap_model_that_cannot_load_is_an_error_naming_it(tmp_path):
    from andlib.cli import project_error

    missing = str(tmp_path / "no-such-clap")
    with pytest.raises(C.ClapLoadError, match="no-such-clap") as err:
        tab_concepts(["x.wav"], ESC50, np.zeros((1, 2)), clap=missing)
    assert "concepts.clap_model" in str(err.value)
    assert project_error(err.value)  # the CLI reports it in one line


class PlantedClap(ClapScorer):
    """TAB's scoring with given CLAP probabilities (no model)."""

    def __init__(self, probs):
        self.probs = probs

    def concept_probs(self, clips, concepts):
        return self.probs


def test_tab_scores_given_clap_probabilities():
    captions, acts = planted_case(n_per_group=50)
    kinds = np.repeat(np.arange(3), 50)
    probs = np.full((150, 50), 0.1 / 49, dtype=np.float32)
    for k, name in enumerate(["dog", "rain", "engine"]):
        probs[kinds == k] = 0.1 / 49
        probs[kinds == k, ESC50.index(name)] = 0.9
    out = tab_concepts([f"clip{i}" for i in range(150)], ESC50, acts, PlantedClap(probs))
    assert [row[0] for row in out[:3]] == ["dog", "rain", "engine"]


@pytest.fixture(scope="module")
def tiny_clap():
    """A tiny random-weight CLAP with a real feature extractor and a byte-level tokenizer."""
    from transformers import (
        ClapConfig,
        ClapFeatureExtractor,
        ClapModel,
        ClapProcessor,
        RobertaTokenizer,
    )
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    special = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    vocab = {t: i for i, t in enumerate(special + list(bytes_to_unicode().values()))}
    tokenizer = RobertaTokenizer(vocab=vocab, merges=[])
    cfg = ClapConfig(
        text_config=dict(
            vocab_size=len(vocab), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
            intermediate_size=37, max_position_embeddings=80, pad_token_id=1, bos_token_id=0,
            eos_token_id=2,
        ),
        audio_config=dict(
            depths=[1, 1], num_attention_heads=[1, 2], patch_embeds_hidden_size=16,
            hidden_size=32, num_hidden_layers=2,
        ),
        projection_dim=16,
    )  # fmt: skip
    import torch

    torch.manual_seed(0)
    processor = ClapProcessor(feature_extractor=ClapFeatureExtractor(), tokenizer=tokenizer)
    return ClapModel(cfg).eval(), processor


def test_tab_runs_a_clap_model_on_files_and_waveforms(tiny_clap, tmp_path):
    from tests.conftest import write_tone

    model, processor = tiny_clap
    files = [write_tone(tmp_path / f"t{i}.wav", freq=200 * (i + 1), seconds=0.5) for i in range(3)]
    scorer = ClapScorer(model, processor, name="tiny", batch_size=2, cache_dir=tmp_path / "c")
    emb = scorer.audio_embeddings(files)
    assert emb.shape == (3, 16)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, rtol=1e-5)
    assert len(list((tmp_path / "c" / "clap").glob("*.npy"))) == 3  # cached on disk
    again = ClapScorer(model, processor, name="tiny", cache_dir=tmp_path / "c")
    np.testing.assert_allclose(again.audio_embeddings(files), emb, rtol=1e-6)
    waves = scorer.audio_embeddings([np.zeros(48000, np.float32)])
    assert waves.shape == (1, 16)
    probs = scorer.concept_probs(files, ESC50[:4])
    assert probs.shape == (3, 4)
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-5)
    acts = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]], dtype=np.float32)
    out = tab_concepts(files, ESC50[:4], acts, scorer, similarity="cos", top=3)
    assert len(out) == 2 and all(len(r) == 3 and set(r) <= set(ESC50[:4]) for r in out)


def test_tab_leaves_an_unreadable_clip_out_instead_of_scoring_silence(tiny_clap, tmp_path):
    from tests.conftest import write_tone

    model, processor = tiny_clap
    good = [write_tone(tmp_path / f"t{i}.wav", freq=300 * (i + 1), seconds=0.5) for i in range(2)]
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"not audio at all")
    scorer = ClapScorer(model, processor, name="tiny", batch_size=2)
    skipped: list = []
    emb = scorer.audio_embeddings([good[0], broken, good[1]], skipped)
    assert [i for i, _ in skipped] == [1] and skipped[0][1]  # (row, reason)
    assert np.isnan(emb[1]).all() and np.isfinite(emb[[0, 2]]).all()
    silence = scorer.audio_embeddings([np.zeros(48000, np.float32)])[0]
    assert not np.allclose(np.nan_to_num(emb[1]), silence)  # not the embedding of silence
    np.testing.assert_allclose(emb[[0, 2]], scorer.audio_embeddings(good), rtol=1e-5)
    # tab_concepts scores the readable clips only: as if the broken one were not there.
    acts = np.array([[1.0, 0.0], [5.0, 5.0], [0.0, 1.0]], dtype=np.float32)
    with_broken = tab_concepts([good[0], broken, good[1]], ESC50[:4], acts, scorer, "cos", 3)
    assert with_broken == tab_concepts(good, ESC50[:4], acts[[0, 2]], scorer, "cos", 3)


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


# --------------------------------------------------------------------------------------------
# Module A: ICL
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "reply, expected",
    [
        ("dog", ["dog"]),
        ("Dog.", ["dog"]),
        ("Answer: dog", ["dog"]),
        ("The answer is: CHURCH_BELLS", ["church bells"]),
        ("answer:   'snoring'", ["snoring"]),
        (
            "Based on the description, the most suitable classname would be 'snoring' or "
            "'zombie growling'. But that is not in the set. So the answer is 'snoring'\n"
            "Answer: snoring",
            ["snoring"],
        ),
        ("1. dog\n2. cat\n3) rooster\n4. crying_baby\n5. Water Drops", ["dog", "cat", "rooster", "crying baby", "water drops"]),
        ("- **Water drops**\n- Rain\n* pouring water", ["water drops", "rain", "pouring water"]),
        ("dog, cat, sheep, cow, frog", ["dog", "cat", "sheep", "cow", "frog"]),
        ('"Crackling fire"', ["crackling fire"]),
        ("Answer:\n1. keyboard typing - because of the clicks\n2. mouse click (fast)", ["keyboard typing", "mouse click"]),
        ("Sure! Here are the class names:\n1) siren\n2) car horn\n3) clock alarm", ["siren", "car horn", "clock alarm"]),
        ("I think these clips are most likely a chainsaw, or maybe an engine.", ["chainsaw", "engine"]),
        ("The clips feature dogs barking loudly.", ["dog"]),
        ("Answer: dog and cat", ["dog", "cat"]),
        ("", []),
    ],
)  # fmt: skip
def test_parse_icl_reply(reply, expected):
    assert parse_icl_reply(reply, ESC50) == expected


@pytest.mark.parametrize(
    "reply, first",
    [
        ("Water_Drops", "water_drops"),
        ("dogs", "dog"),
        ("a dog barking in the distance", "dog"),
        ("Answer: water droplets", "water_drops"),  # by embedding similarity
        ("barking puppy", "dog"),
    ],
)
def test_icl_answer_maps_onto_the_concept_set(reply, first, embedder):
    out = icl_answer(reply, ESC50, embedder, top=5)
    assert out[0] == first and len(out) == 5 and len(set(out)) == 5 and set(out) <= set(ESC50)


def test_icl_with_a_generative_llm(embedder):
    llm = FakeLLM(lambda m: "Answer: 1. Dog\n2. cat" if "bark" in m[-1]["content"] else "rain")
    res = icl_concepts(
        ["Dogs barking.", "", "Water falling from the sky."], ESC50, llm, 5, embedder
    )
    assert res.method == "icl"
    assert res.concepts[0][:2] == ["dog", "cat"] and len(res.concepts[0]) == 5
    assert res.concepts[1] == []  # empty summary: not asked
    assert res.concepts[2][0] == "rain"
    assert len(llm.requests) == 2
    assert "water drops" in llm.requests[0][-1]["content"]  # concepts shown as display names


def test_icl_counts_the_slots_the_llm_named_and_those_padded_by_embeddings(embedder):
    replies = {  # by a word of the summary that the prompt does not hold otherwise
        "woof": "Answer: dog",
        "sky": "1. rain\n2. thunderstorm",
        "zzz": ", ".join(ESC50[:6]),
    }
    llm = FakeLLM(lambda m: next(r for k, r in replies.items() if k in m[-1]["content"]))
    summaries = ["A woof sound.", "Water from the sky.", "zzz", ""]
    res = icl_concepts(summaries, ESC50, llm, 5, embedder)
    assert res.method == "icl"
    assert res.llm_slots == [1, 2, 5, 0]
    assert res.concepts[0][0] == "dog" and len(res.concepts[0]) == 5  # 4 slots padded
    assert res.concepts[1][:2] == ["rain", "thunderstorm"] and len(res.concepts[1]) == 5
    assert res.concepts[2] == ESC50[:5] and res.concepts[3] == []
    assert C.map_to_concepts_marked(["dog"], ESC50, embedder, 5)[1] == 1
    assert C.map_to_concepts_marked(["dog", "dog"], ESC50, embedder, 5)[1] == 1  # one concept


def test_fallback_weighs_sentences_by_the_clips_they_speak_for(embedder):
    assert C.sentence_weight("Most clips (4 of 5) are loud.") == 4
    assert C.sentence_weight("All 5 clips are loud.") == 5
    assert C.sentence_weight("Only one clip is the sound of wind.") == 1
    # The extractive summarizer's own wording: the first count of the sentence.
    assert C.sentence_weight("A dog barking (4 of 5 clips).") == 4
    assert C.sentence_weight("Loud sounds (all 5); sharp (3 of 5).") == 5
    assert C.sentence_weight("Loud sounds with a hum (both clips).") == 2
    hen = "Most clips (4 of 5) are sounds of a hen clucking. Only one clip is the sound of wind."
    wind = "Only one clip is the sound of a hen clucking. Most clips (4 of 5) are sounds of wind."
    ranked = C.rank_by_embedding([hen, wind], ESC50, embedder)
    assert ranked[0][0] == "hen" and ranked[1][0] == "wind"
    emb = C.embed_summaries([hen, ""], embedder)
    assert emb.shape == (2, 384) and not emb[1].any()
    np.testing.assert_allclose(np.linalg.norm(emb[0]), 1.0, rtol=1e-5)


def test_icl_falls_back_to_embeddings_without_a_generative_llm(embedder):
    summaries = ["Most clips are the sound of a dog barking.", "A siren wails loudly.", ""]
    for llm in (NonGenerativeLLM(), None):
        res = icl_concepts(summaries, ESC50, llm, top=5, embedder=embedder)
        assert res.method == "icl_embedding" and res.llm_slots is None
        assert res.concepts[0][0] == "dog" and res.concepts[1][0] == "siren"
        assert res.concepts[2] == []


# --------------------------------------------------------------------------------------------
# Module B: calibration and adjectives
# --------------------------------------------------------------------------------------------


def test_split_sentences_and_subject():
    text = "Most clips (4 of 5) are loud. Some clips (2 of 5) have short silences!\n- Only one clip is tonal"
    assert split_sentences(text) == [
        "Most clips (4 of 5) are loud.",
        "Some clips (2 of 5) have short silences!",
        "Only one clip is tonal",
    ]
    assert comparable("Most clips (4 of 5) are loud.") == "are loud."
    assert comparable("All 5 clips are loud.") == "are loud."
    assert comparable("The audio clips feature a dog.") == "feature a dog."
    assert comparable("Dogs bark.") == "Dogs bark."
    # Counts never make two sentences alike: "(4 of 5 clips)", "(all 5)", "(both)" go.
    assert comparable("Loud sounds (4 of 5 clips); sharp (all 5).") == "Loud sounds; sharp."
    assert comparable("A dog barking (both clips).") == "A dog barking."


def test_calibration_drops_shared_sentences_and_keeps_distinct_ones(embedder):
    high = (
        "The audio clips feature a dog barking loudly. "
        "The recordings are of poor quality with distortion."
    )
    low = "The clips contain birds chirping. The audio quality is poor, with some distortion."
    assert calibrate(high, low, embedder) == "The audio clips feature a dog barking loudly."
    assert calibrate(high, "", embedder) == high  # nothing to compare with
    assert calibrate("", low, embedder) == ""
    assert calibrate("Sure, here is a summary. Dogs bark.", "", embedder) == "Dogs bark."


def test_calibration_keeps_contrasting_sound_adjectives(embedder):
    high, low = "All 5 clips are loud.", "All 5 clips are quiet."
    assert calibrate(high, low, embedder) == high
    assert calibrate(high, low, embedder, keep_contrasts=False) == ""  # AND's plain rule
    assert calibrate(high, "All 5 clips are loud.", embedder) == ""
    # a higher threshold keeps more
    assert calibrate(high, low, embedder, threshold=0.99, keep_contrasts=False) == high
    # Template sentences look alike on their wording alone (cosine 0.74 here); a source
    # named only in the high sentence keeps it when the concept names are given.
    high = "Some clips (2 of 5) are sounds of dogs with broadband energy."
    low = "Some clips (2 of 5) are bright sounds with broadband energy."
    assert calibrate(high, low, embedder) == ""  # no sound adjective of its own
    assert calibrate(high, low, embedder, concepts=ESC50) == high
    assert calibrate(high, low.replace("bright", "dog"), embedder, concepts=ESC50) == ""


def test_adjectives_hyphens_negation_stop_list_and_lexicon():
    text = (
        "The clips feature high-pitched, shrill barking. The sound is not loud and has no "
        "clear pitch. Metallic clanging, muffled and distorted. Other clips are different, "
        "beautiful and important. They are louder than the rest but not harsh."
    )
    candidates = extract_adjectives([text])[0]
    assert candidates[:2] == ["high-pitched", "shrill"]
    assert "loud" in candidates  # "louder" -> loud (the negated "not loud" is skipped)
    for skipped in ("clear", "harsh", "other", "different"):
        assert skipped not in candidates
    assert {"beautiful", "important"} <= set(candidates)  # adjectives, but not about sound
    assert acoustic_adjectives(text) == [
        "high-pitched", "shrill", "metallic", "muffled", "distorted", "loud",
    ]  # fmt: skip


def test_negated_adjectives_in_one_clause_only():
    assert acoustic_adjectives("It is not loud, just harsh.") == ["harsh"]
    assert acoustic_adjectives("It is never shrill but always steady.") == ["steady"]
    assert acoustic_adjectives("A rumble without any sharp attack.") == []


def test_adjectives_judged_by_a_generative_llm_once_per_word():
    llm = FakeLLM(lambda m: "Yes." if "beautiful" in m[-1]["content"] else "no, it is not")
    out = acoustic_adjectives_many(["A beautiful, loud sound.", "Loud and beautiful!"], llm=llm)
    assert out == [["beautiful"], ["beautiful"]]
    asked = sorted(m[-1]["content"].split('"')[1] for m in llm.requests)
    assert asked == ["beautiful", "loud"]  # distinct words, one request each


def test_non_generative_llm_uses_the_lexicon(tmp_path):
    assert acoustic_adjectives("A beautiful, loud sound.", llm=NonGenerativeLLM()) == ["loud"]
    lex = tmp_path / "lex.txt"
    lex.write_text("# custom\nbeautiful\n")
    lexicon = C.load_adjective_lexicon(lex)
    assert acoustic_adjectives("A beautiful, loud sound.", lexicon=lexicon) == ["beautiful"]
    assert C.is_sound_adjective("very-loud", C.load_adjective_lexicon())
    assert C.is_sound_adjective("medium-toned", C.load_adjective_lexicon())


def test_shipped_lexicon():
    lexicon = C.load_adjective_lexicon()
    assert len(lexicon) >= 150
    for word in ("loud", "quiet", "high-pitched", "low-pitched", "muffled", "metallic", "tonal"):
        assert word in lexicon
    assert not {"beautiful", "important", "other", "green"} & lexicon


# --------------------------------------------------------------------------------------------
# Module C: open concepts
# --------------------------------------------------------------------------------------------


def test_open_concepts_are_lemmatized_nouns_and_verbs():
    text = (
        "Dogs are barking loudly near the engines. The sound of the clips contains no speech "
        "and some background noise. Church bells ring."
    )
    got = open_concepts(text)
    assert got[:3] == ["dog", "bark", "engine"]
    assert "bell" in got and "ring" in got
    for generic in ("sound", "clip", "noise", "contain", "speech", "background"):
        assert generic not in got
    assert open_concepts("") == []
    assert len(got) == len(set(got))


# --------------------------------------------------------------------------------------------
# The stage on a small hand-made run directory
# --------------------------------------------------------------------------------------------


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


def test_clap_scorer_runs_its_model_on_the_device_it_is_given(tiny_clap, tmp_path):
    from tests.conftest import write_tone

    model, processor = tiny_clap
    moved: list[str] = []
    real_to = model.to

    def to(device):
        moved.append(str(device))
        return real_to(device)

    model.to = to  # type: ignore[method-assign]
    scorer = ClapScorer(model, processor, name="tiny", device="cpu")
    assert moved == ["cpu"] and scorer.device == "cpu"
    wav = write_tone(tmp_path / "t.wav", freq=300, seconds=0.5)
    emb = scorer.audio_embeddings([wav])
    assert isinstance(emb, np.ndarray) and emb.shape == (1, 16)  # back on the host
