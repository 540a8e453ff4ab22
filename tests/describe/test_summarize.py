"""Neuron summaries: the extractive summarizer, batching over neurons, and the stage."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pandas as pd
import pytest

import andlib.describe.summarize as summ
import andlib.text.caption_parse as caption_parse
from andlib.config import LLMConfig
from andlib.describe.concepts import comparable, sentence_weight, split_sentences
from andlib.describe.features import FEATURE_COLUMNS
from andlib.describe.summarize import run_stage, summarize_all, summarize_neuron
from andlib.describe.wording import SetNorms, describe
from andlib.store import RunDir, decode_list
from andlib.text.extractive import NOTHING_SHARED, source_phrases, summarize_captions
from andlib.text.llm import LLM, LLMError, get_llm
from tests.text.test_llm import FakeServer, cache_files, echo

# Captions in the style of the acoustic, metadata+acoustic and tagger+acoustic captioners.
ACOUSTIC = [
    "A loud, sharp, impulsive click with bright high-frequency content, and it starts suddenly.",
    "A loud, sharp, irregular, impulsive series of clicks with bright high-frequency content "
    "and short silences between them.",
    "A loud, sharp, impulsive click. It has bright high-frequency content, and it starts suddenly.",
    "A click that is loud, sharp and noisy, with bright high-frequency content.",
    "A quiet, steady, low-pitched, tonal hum (about 110 Hz). It has rich harmonics and "
    "low-frequency content, and it fades away.",
]
METADATA = [
    "The sound of a dog barking. A very loud, sharp, irregular, percussive sound with bright "
    "high-frequency content.",
    "The sound of a dog barking. A loud, sharp, intermittent, partly tonal sound with bright "
    "high-frequency content and short silences between bursts.",
    "The sound of a dog barking. A loud, fluctuating, mid-pitched (about 600 Hz), partly tonal "
    "sound. It has rich harmonics and a falling pitch.",
    "The sound of rain falling. A quiet, steady, noisy hiss with dull low-frequency content, "
    "and it is not tonal.",
    "The sound of a dog barking. A sound that is loud, sharp and percussive, with bright "
    "high-frequency content; it grows louder.",
]


TAGGER = [
    "Most likely a dog barking, possibly a rooster crowing. A loud, sharp, intermittent, partly "
    "tonal sound with bright high-frequency content.",
    "Most likely a dog barking. A loud, sharp, irregular, partly tonal sound. It has bright "
    "high-frequency content and short silences between bursts.",
    "Perhaps a rooster crowing or a dog barking; the source is unclear. A loud, mid-pitched, "
    "partly tonal sound (about 700 Hz) with a falling pitch.",
    "Most likely a rooster crowing, possibly a hen clucking. A loud, intermittent, "
    "high-pitched, tonal sound with rich harmonics.",
    "Most likely rain falling. A quiet, steady, noisy hiss with bright high-frequency content.",
]


def words(text: str) -> int:
    return len(text.split())


# ---- realistic captions: andlib.describe.captioning.describe on varied measurements -------------------

BASE = {c: 0.0 for c in FEATURE_COLUMNS} | {
    "duration_s": 5.0, "loudness_db": -20.0, "n_events": 1.0, "event_s": 5.0,
    "level_std_db": 1.0, "centroid_hz": 1000.0, "bandwidth_hz": 500.0, "tone_purity": 0.5,
    "low_ratio": 0.3, "high_ratio": 0.05,
}  # fmt: skip
ARCHETYPES = {
    "a dog barking": {
        "loudness_db": -9, "voiced_frac": 0.3, "harmonicity": 0.5, "f0_hz": 650, "n_events": 3,
        "silence_frac": 0.4, "gap_s": 0.3, "event_s": 0.4, "attack_db": 28,
        "impulsiveness": 0.15, "onset_rate": 0.8, "centroid_hz": 2000, "high_ratio": 0.3,
        "level_std_db": 9,
    },
    "rain falling": {
        "flatness": 0.5, "bandwidth_hz": 3000, "centroid_hz": 4000, "high_ratio": 0.65,
        "loudness_db": -25, "low_ratio": 0.05,
    },
    "an engine running": {
        "voiced_frac": 0.9, "harmonicity": 0.8, "f0_hz": 90, "low_ratio": 0.8,
        "centroid_hz": 250, "loudness_db": -15,
    },
    "a clock ticking": {
        "impulsiveness": 0.9, "onset_rate": 2, "onset_regularity": 0.9, "n_events": 10,
        "silence_frac": 0.5, "gap_s": 0.4, "event_s": 0.05, "attack_db": 35,
        "centroid_hz": 3000, "loudness_db": -30,
    },
    "a siren wailing": {
        "voiced_frac": 1, "harmonicity": 0.95, "f0_hz": 900, "tone_purity": 0.9,
        "pitch_spread_oct": 0.4, "loudness_db": -10, "centroid_hz": 900,
    },
    "birds chirping": {
        "voiced_frac": 0.6, "harmonicity": 0.7, "f0_hz": 4000, "tone_purity": 0.9, "n_events": 6,
        "silence_frac": 0.5, "gap_s": 0.3, "event_s": 0.2, "centroid_hz": 4000,
        "high_ratio": 0.7, "onset_rate": 1.5, "pitch_trend_oct": 0.6, "low_ratio": 0.0,
    },
}  # fmt: skip
ADJECTIVES = ("loud", "quiet", "steady", "tonal", "noisy", "intermittent", "sharp", "impulsive",
              "percussive", "repetitive", "irregular", "slow", "bright", "dull", "low-pitched",
              "mid-pitched", "high-pitched")  # fmt: skip
SHARES = ("voiced_frac", "harmonicity", "tone_purity", "low_ratio", "high_ratio", "flatness",
          "impulsiveness", "onset_regularity", "silence_frac")  # fmt: skip


def realistic_neurons() -> list[list[str]]:
    """36 neurons x 5 captions in the three caption styles (acoustic, metadata+acoustic,
    tagger+acoustic): each neuron's clips are mostly of one kind of sound, as top clips are."""
    rng = np.random.default_rng(0)
    names = list(ARCHETYPES)
    clips: list[tuple[str, dict[str, float]]] = []
    for i, name in enumerate(names):  # 4 clips of a kind, then 2 of the next kinds
        for src in [name] * 4 + [names[(i + 1) % 6], names[(i + 2) % 6]]:
            f = {c: v * float(rng.uniform(0.8, 1.25)) for c, v in (BASE | ARCHETYPES[src]).items()}
            f["n_events"] = float(max(1, round(f["n_events"])))
            f |= {c: min(f[c], 1.0) for c in SHARES}
            clips.append((src, f))
    norms = SetNorms(pd.DataFrame([f for _, f in clips]))
    acoustic = [describe(f, norms, variant=j) for j, (_, f) in enumerate(clips)]
    metadata = [f"The sound of {src}. {c}" for (src, _), c in zip(clips, acoustic, strict=True)]
    tagger = [
        (f"Most likely {src}, possibly {names[j % 6]}." if j % 3 else
         f"Perhaps {names[j % 6]} or {src}; the source is unclear.") + f" {c}"
        for j, ((src, _), c) in enumerate(zip(clips, acoustic, strict=True))
    ]  # fmt: skip
    n = len(clips)
    return [
        [style[(start + j) % n] for j in range(5)]
        for start in range(0, n, 3)
        for style in (acoustic, metadata, tagger)
    ]


# ---- the extractive summarizer ---------------------------------------------------------------


def test_extractive_summary_states_only_what_most_clips_share():
    summary = summarize_captions(ACOUSTIC)
    assert summary == (
        "Loud, sharp sounds with bright high-frequency content (4 of 5 clips); "
        "with a click (3 of 5); impulsive (3 of 5)."
    )
    # What fewer than half the clips have is left out: the hum, "starts suddenly", "quiet".
    for rare in ("hum", "start", "quiet", "fades", "harmonics", "Only one"):
        assert rare not in summary
    # "high-frequency content" is said by "bright high-frequency content": not repeated.
    assert summary.count("high-frequency") == 1


def test_extractive_summary_puts_the_shared_source_first():
    summary = summarize_captions(METADATA)
    assert summary == (
        "A dog barking (4 of 5 clips). Loud sounds (4 of 5); "
        "sharp, with bright high-frequency content (3 of 5)."
    )  # "very loud" counts as loud; "partly tonal" (2 of 5) and the rain (1 of 5) are left out
    assert "rain" not in summary and "tonal" not in summary


def test_extractive_summary_reads_the_taggers_source_sentences():
    # Counted wherever a clip's source sentence names it; "possibly" where mostly hedged.
    summary = summarize_captions(TAGGER)
    first, second = re.split(r"(?<=\.) ", summary)
    assert first == "A dog barking (3 of 5 clips) or possibly a rooster crowing (3 of 5)."
    assert second == (
        "Loud sounds (4 of 5); with bright high-frequency content (3 of 5); partly tonal (3 of 5)."
    )
    assert "hen" not in summary and "rain" not in summary
    hedged = [
        "Perhaps a rooster crowing or a hen clucking; the source is unclear. A loud sound.",
        "Most likely a cat meowing, possibly a rooster crowing. A loud sound.",
        "Most likely rain falling. A quiet hiss.",
    ]
    assert summarize_captions(hedged) == (
        "Possibly a rooster crowing (2 of 3 clips). Loud sounds (2 of 3)."
    )
    assert summarize_captions(TAGGER, max_sources=1).startswith(
        "A dog barking (3 of 5 clips). Loud"  # ties: more clips lead with it
    )


def test_source_phrases():
    assert source_phrases("Most likely a dog barking, possibly a rooster crowing. A loud hum.") == (
        [("a dog barking", True), ("a rooster crowing", False)],
        "A loud hum.",
    )
    assert source_phrases("Perhaps a dog barking or a hen clucking; the source is unclear.") == (
        [("a dog barking", False), ("a hen clucking", False)],
        "",
    )
    assert source_phrases("The sound of someone drinking and sipping. Quiet.") == (
        [("someone drinking and sipping", True)],
        "Quiet.",
    )
    assert source_phrases("Perhaps the sound of rain, with thunder.") == ([("rain", False)], "")
    assert source_phrases("A loud sound. Most likely a dog.") == (
        [],
        "A loud sound. Most likely a dog.",
    )


def test_extractive_summary_min_share():
    assert summarize_captions(ACOUSTIC, min_share=1.0) == NOTHING_SHARED
    assert summarize_captions(ACOUSTIC[:4], min_share=1.0) == (
        "Loud, sharp sounds with bright high-frequency content (all 4 clips)."
    )
    lenient = summarize_captions(METADATA, min_share=0.4)  # 2 of 5 is enough now
    assert "percussive (2 of 5)" in lenient and "partly tonal (2 of 5)" in lenient
    assert "rain" not in summarize_captions(METADATA, min_share=0.01)  # one clip shares nothing
    with pytest.raises(ValueError, match="summary_min_share"):
        summarize_captions(ACOUSTIC, min_share=0.0)
    with pytest.raises(ValueError, match="summary_min_share"):
        summarize_captions(ACOUSTIC, min_share=1.5)


def test_extractive_summary_source_share_names_sources_fewer_clips_agree_on():
    # Two of five clips naming the same source is said at source_share 0.4, with its count;
    # the qualities still need min_share.
    two = summarize_captions(METADATA[:2] + ACOUSTIC[:3], min_share=0.5)
    assert "dog barking" not in two
    lenient = summarize_captions(METADATA[:2] + ACOUSTIC[:3], min_share=0.5, source_share=0.4)
    assert lenient.startswith("A dog barking (2 of 5 clips).")
    assert lenient.split(". ", 1)[1] == two.replace(" clips)", ")")
    with pytest.raises(ValueError, match="summary_source_share"):
        summarize_captions(ACOUSTIC, source_share=0.0)


def test_extractive_summary_edge_cases():
    assert (
        summarize_captions(["A loud hum.", "A loud hum."]) == "Loud sounds with a hum (both clips)."
    )
    assert summarize_captions(["A quiet, low hum."]) == "A quiet, low sound with a hum."
    assert summarize_captions(["The sound of a dog barking."]) == "A dog barking."
    assert summarize_captions([]) == ""
    assert summarize_captions(["...", "!"]) == NOTHING_SHARED
    assert summarize_captions(["A loud hum.", "A quiet whistle."]) == NOTHING_SHARED
    assert summarize_captions(["!"]) == "The clip has no clear source or quality."
    assert "no clear pitch" in summarize_captions(["A noisy sound with no clear pitch."])
    # Equivalent wordings of the acoustic captioner count as one.
    assert summarize_captions(["A hiss with bright energy.", "A hiss with bright content."]) == (
        "Sounds with a hiss and bright energy (both clips)."
    )


def test_extractive_summaries_of_realistic_captions_are_short():
    neurons = realistic_neurons()
    assert len(neurons) == 36 and all(len(n) == 5 for n in neurons)
    summaries = [summarize_captions(n) for n in neurons]
    lengths = [words(s) for s in summaries]
    assert sum(lengths) / len(lengths) <= 30, summaries
    assert max(lengths) <= 45, summaries
    assert all(s and s.endswith(".") for s in summaries)
    # Counts are honest: every listed adjective or source is in at least that many captions.
    checked = 0
    for captions, summary in zip(neurons, summaries, strict=True):
        for clause in re.split(r"(?<=\.) |; ", summary):
            m = re.search(r"\((\d) of 5\b|\(all (5)\b", clause)
            if m is None:
                continue
            n = int(m.group(1) or m.group(2))
            assert n >= 3, summary  # at least half of the 5 clips
            said = [w for w in ADJECTIVES if re.search(rf"(?<![\w-]){w}(?![\w-])", clause)]
            said += [src for src in ARCHETYPES if re.search(rf"\b{src} \(", clause, re.I)]
            for w in said:
                having = sum(
                    re.search(rf"(?<![\w-]){w}(?![\w-])", c.lower()) is not None for c in captions
                )
                assert having >= n, (w, clause, captions)
                checked += 1
    assert checked >= 50
    # Sources come first wherever a source is shared.
    first_source = [
        min(s.lower().find(src) for src in ARCHETYPES if src in s.lower())
        for s in summaries
        if any(src in s.lower() for src in ARCHETYPES)
    ]
    with_source = [s for s in summaries if any(src in s.lower() for src in ARCHETYPES)]
    assert with_source and all(
        i < s.index(".") for i, s in zip(first_source, with_source, strict=True)
    )


def test_extractive_summary_is_deterministic():
    first = summarize_captions(METADATA + TAGGER)
    caption_parse._parsed.clear()  # parse again from scratch
    assert summarize_captions(METADATA + TAGGER) == first
    assert summarize_captions(list(METADATA + TAGGER)) == first


def test_extractive_summary_reads_as_english_for_module_b():
    """Attributes stay adjectives and sources stay nouns for the POS tagger downstream, and
    every sentence has the clip count Module B strips and weighs."""
    summary = summarize_captions(METADATA)
    doc = caption_parse._spacy()(summary)
    pos = {t.lower_: t.pos_ for t in doc}
    assert pos["loud"] == "ADJ" and pos["sharp"] == "ADJ" and pos["bright"] == "ADJ"
    assert pos["dog"] == "NOUN"
    for sentence in split_sentences(summary):
        assert comparable(sentence) != sentence and sentence_weight(sentence) == 4


def test_extractive_summary_parses_each_caption_once(monkeypatch):
    """Cost in operations, not seconds: one parse per distinct caption clause, ever."""
    real = caption_parse._spacy()
    parsed: list[str] = []

    class Counting:
        def pipe(self, texts, batch_size=256):
            texts = list(texts)
            parsed.extend(texts)
            return real.pipe(texts, batch_size=batch_size)

    monkeypatch.setattr(caption_parse, "_spacy", lambda: Counting())
    monkeypatch.setattr(caption_parse, "_parsed", {})
    pool = (
        ACOUSTIC + METADATA + TAGGER + [f"A loud sound with {n} short bursts." for n in range(40)]
    )
    for i in range(200):
        summarize_captions([pool[(i * 7 + j) % len(pool)] for j in range(5)])
        summarize_captions([pool[(i * 3 + j) % len(pool)] for j in range(5)])
    assert len(parsed) == len(set(parsed))  # never a clause twice
    assert len(parsed) <= 3 * len(pool)  # at most three clauses per caption here
    assert not any(p.startswith(("most likely", "perhaps", "the sound of")) for p in parsed)
    before = len(parsed)
    summarize_captions(pool[:5])
    assert len(parsed) == before  # all cached


# ---- summarize_neuron / summarize_all --------------------------------------------------------


class RecordingLLM(LLM):
    """A generative stand-in that records every batch it is asked."""

    backend = "recording"
    model = "echo"

    def __init__(self):
        super().__init__(LLMConfig(), None)
        self.batches: list[tuple[list, list[str]]] = []

    def _generate(self, batch, labels, on_reply):
        self.batches.append((batch, labels))
        for j, messages in enumerate(batch):
            on_reply(j, f"reply {len(messages[-1]['content'])}")


def topk_table(neurons, k: int = 3, shuffle: bool = True) -> pd.DataFrame:
    rows = []
    for layer, neuron in neurons:
        for end in ("high", "low"):
            for rank in range(k):
                rows.append((layer, neuron, end, rank, f"{layer}-{neuron}{end[0]}{rank}", 1.0))
    df = pd.DataFrame(rows, columns=["layer", "neuron", "end", "rank", "clip_id", "activation"])
    if not shuffle:
        return df
    return df.sample(frac=1.0, random_state=0).reset_index(drop=True)  # order must not matter


def captions_for(df: pd.DataFrame) -> dict[str, str]:
    loud = {c: f"A loud, bright sound ({c})." for c in df.clip_id if c[-2] == "h"}
    quiet = {c: f"A quiet, dark hum ({c})." for c in df.clip_id if c[-2] == "l"}
    return loud | quiet


def test_summarize_neuron_with_both_kinds_of_backend():
    high, low = summarize_neuron(ACOUSTIC, METADATA, get_llm(LLMConfig(), None))
    assert high == summarize_captions(ACOUSTIC) and low == summarize_captions(METADATA)

    llm = RecordingLLM()
    high, low = summarize_neuron(ACOUSTIC, METADATA, llm, label="layers.1.mlp neuron 5")
    assert high.startswith("reply") and low.startswith("reply")
    ((batch, labels),) = llm.batches
    assert labels == ["layers.1.mlp neuron 5 (high)", "layers.1.mlp neuron 5 (low)"]
    assert ACOUSTIC[0] in batch[0][-1]["content"] and METADATA[0] in batch[1][-1]["content"]


def test_summarize_all_orders_clips_and_batches_every_neuron():
    neurons = [("layers.0.mlp", 0), ("layers.0.mlp", 1), ("layers.1.mlp", 0), ("classifier", 7)]
    df = topk_table(neurons)
    out = summarize_all(df, captions_for(df), get_llm(LLMConfig(), None))
    assert list(out.columns) == summ.COLUMNS
    assert len(out) == 4 and set(zip(out.layer, out.neuron, strict=True)) == set(neurons)
    row = out[(out.layer == "layers.0.mlp") & (out.neuron == 1)].iloc[0]
    assert row.top_clips == ";".join(f"layers.0.mlp-1h{r}" for r in range(3))
    assert decode_list(row.bottom_clips) == [f"layers.0.mlp-1l{r}" for r in range(3)]
    assert "Loud, bright sounds (all 3 clips)." in row.high_summary
    assert "quiet" in row.low_summary.lower() and "loud" not in row.low_summary.lower()

    llm = RecordingLLM()
    out = summarize_all(df, captions_for(df), llm, k=2)
    assert len(llm.batches) == 1 and len(llm.batches[0][0]) == 8  # one batch: 4 neurons x 2
    assert out.top_clips.map(decode_list).str.len().eq(2).all()

    with pytest.raises(ValueError, match="no caption"):
        summarize_all(df, {}, llm)


# ---- the stage -------------------------------------------------------------------------------


def make_run(cfg, neurons, shuffle: bool = True) -> RunDir:
    run = RunDir(cfg.run_path)
    df = topk_table(neurons, k=cfg.k, shuffle=shuffle)
    run.write_csv("neuron_topk.csv", df)
    caps = captions_for(df)
    run.write_csv(
        "captions.csv", pd.DataFrame({"clip_id": list(caps), "caption": list(caps.values())})
    )
    run.mark_done("record", "record-key", ["neuron_topk.csv"])
    run.mark_done("caption", "caption-key", ["captions.csv"])
    return run


def test_run_stage_extractive(tmp_cfg):
    cfg = tmp_cfg({"k": 3})
    neurons = [("layers.0.mlp", n) for n in range(5)]
    run = make_run(cfg, neurons)
    info = run_stage(cfg, run)
    assert info["summaries"] == 5 and info["llm_calls"] == 0
    out = run.read_csv("summaries.csv")
    assert list(out.columns) == summ.COLUMNS and len(out) == 5
    assert out.high_summary.str.contains("Loud, bright sounds (all 3 clips)", regex=False).all()
    assert run_stage(cfg, run) == {"summaries": 5, "reused": True}
    run.mark_done("caption", "new-captions", ["captions.csv"])  # upstream changed: redo
    assert run_stage(cfg, run)["summaries"] == 5


def test_run_stage_is_keyed_by_the_share_and_the_summary_version(tmp_cfg, monkeypatch):
    cfg = tmp_cfg({"k": 3})
    run = make_run(cfg, [("layers.0.mlp", n) for n in range(2)])
    run_stage(cfg, run)
    assert run_stage(cfg, run).get("reused")
    strict = tmp_cfg({"k": 3, "llm.summary_min_share": 1.0})
    assert strict.llm.summary_min_share == 1.0
    assert not run_stage(strict, run).get("reused")  # the share enters the key
    assert run_stage(strict, run).get("reused")
    assert summ.SPEC.version == summ.SUMMARY_VERSION
    bumped = dataclasses.replace(summ.SPEC, version=summ.SUMMARY_VERSION + 1)
    monkeypatch.setattr(summ, "SPEC", bumped)
    assert not run_stage(strict, run).get("reused")  # so does the summarizer's version


def test_the_configured_share_reaches_the_extractive_summarizer():
    strict = get_llm(LLMConfig(summary_min_share=1.0), None)
    high, low = summarize_neuron(ACOUSTIC, ACOUSTIC[:4], strict)
    assert high == NOTHING_SHARED and low == summarize_captions(ACOUSTIC[:4], min_share=1.0)
    assert low.startswith("Loud, sharp sounds") and low.endswith("(all 4 clips).")


def test_run_stage_openai_resumes_from_the_cache(tmp_cfg):
    failing = {"on": True}

    def respond(n, body):
        if failing["on"] and "(layers.3.mlp-4h" in body["messages"][-1]["content"]:
            return 400, {"error": {"message": "refused"}}
        return echo(n, body)

    srv = FakeServer(respond)
    try:
        cfg = tmp_cfg(
            {"k": 2, "llm.backend": "openai", "llm.model": "fake", "llm.base_url": srv.url,
             "llm.concurrency": 1, "llm.retry_backoff": 0.01}
        )  # fmt: skip
        neurons = [("layers.3.mlp", n) for n in range(5)]  # neuron 4's high clips fail
        run = make_run(cfg, neurons, shuffle=False)  # asked in order, one at a time
        with pytest.raises(LLMError, match="layers.3.mlp neuron 4 \\(high\\)"):
            run_stage(cfg, run)
        assert not run.exists("summaries.csv")
        done_before = len(cache_files(cfg.cache_path))
        assert done_before >= 8  # the four neurons before it are kept

        failing["on"] = False
        asked = srv.count
        info = run_stage(cfg, run)
        assert info["summaries"] == 5 and info["llm_calls"] == 10 - done_before
        assert srv.count - asked == 10 - done_before
        out = run.read_csv("summaries.csv")
        assert out.high_summary.str.startswith("summary of:").all()

        run.invalidate("summarize")
        info = run_stage(cfg, run)  # recomputed from the cache alone
        assert info["llm_calls"] == 0 and info["llm_cached"] == 10
    finally:
        srv.close()
