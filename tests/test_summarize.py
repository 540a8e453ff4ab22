"""Neuron summaries: the extractive summarizer, batching over neurons, and the stage."""

from __future__ import annotations

import re
import time

import pandas as pd
import pytest

import andlib.summarize as summ
from andlib.config import LLMConfig
from andlib.llm import LLM, LLMError, get_llm
from andlib.runs import RunDir
from andlib.summarize import (
    caption_attributes,
    run_stage,
    summarize_all,
    summarize_captions,
    summarize_neuron,
)
from tests.test_llm import FakeServer, cache_files, echo

# Captions in the style of the acoustic and metadata+acoustic captioners.
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


def sentences(summary: str) -> list[str]:
    return re.split(r"(?<=\.) ", summary)


def sentence_with(summary: str, marker: str) -> str:
    found = [s for s in sentences(summary) if marker in s]
    assert len(found) == 1, (marker, summary)
    return found[0]


def rare(summary: str) -> str:
    """The sentences about what only one clip has (one per kind of attribute)."""
    return " ".join(s for s in sentences(summary) if s.startswith("Only one clip"))


# ---- the extractive summarizer ---------------------------------------------------------------


def test_extractive_summary_counts_shared_and_rare_attributes():
    summary = summarize_captions(ACOUSTIC, max_items=20)
    assert sentence_with(summary, "(4 of 5)") == (
        "Most clips (4 of 5) are loud, sharp sounds with bright high-frequency content."
    )
    assert "Most clips (3 of 5) have a click." in summary
    assert "Most clips (3 of 5) are impulsive." in summary
    assert "Some clips (2 of 5) start suddenly." in summary  # verbs agree with the subject
    one = rare(summary)
    assert "Only one clip is irregular, noisy, quiet, steady, low-pitched or tonal." in one
    assert "Only one clip fades away." in one
    for part in ("a series of clicks", "a hum", "rich harmonics"):
        assert part in one
    assert "loud" not in one and "sharp" not in one and "(about" not in summary
    # Most shared first; lists longer than max_items are cut, and say so.
    assert summary.index("(4 of 5)") < summary.index("(3 of 5)") < summary.index("Only one")
    short = summarize_captions(ACOUSTIC, max_items=3)
    assert "Only one clip is irregular, noisy or quiet, among others." in short
    assert "Only one clip fades away." in short


def test_extractive_summary_sources_adverbs_and_negation():
    summary = summarize_captions(METADATA, max_items=20)
    assert "Most clips (4 of 5) are loud sounds of a dog barking." in summary  # very loud too
    assert "Most clips (3 of 5) are sharp sounds with bright high-frequency content." in summary
    assert "Some clips (2 of 5) are partly tonal." in summary  # not counted as "tonal"
    one = rare(summary)
    for part in ("the sound of rain falling", "very loud", "not tonal", "a falling pitch",
                 "grows louder"):  # fmt: skip
        assert part in one
    assert "dog" not in one


def test_extractive_summary_edge_cases():
    assert (
        summarize_captions(["A loud hum.", "A loud hum."])
        == "Both clips are loud sounds with a hum."
    )
    assert summarize_captions(["A quiet, low hum."]) == "The clip is quiet and low and has a hum."
    assert summarize_captions([]) == ""
    assert "No shared attributes" in summarize_captions(["...", "!"])
    assert "no clear pitch" in summarize_captions(["A noisy sound with no clear pitch."])


def test_extractive_summary_is_deterministic():
    first = summarize_captions(METADATA)
    summ._parsed.clear()  # parse again from scratch
    assert summarize_captions(METADATA) == first
    assert summarize_captions(list(METADATA)) == first


def test_extractive_summary_reads_as_english_for_module_b():
    """Attributes stay adjectives and sources stay nouns for the POS tagger downstream."""
    summary = summarize_captions(METADATA)
    doc = summ._spacy()(summary)
    pos = {t.text: t.pos_ for t in doc}
    assert pos["loud"] == "ADJ" and pos["sharp"] == "ADJ" and pos["percussive"] == "ADJ"
    assert pos["dog"] == "NOUN" and pos["rain"] == "NOUN"
    assert len(list(doc.sents)) >= 4


def test_extractive_summary_is_fast():
    pool = ACOUSTIC + METADATA + [f"A loud sound with {n} short bursts." for n in range(40)]
    caption_attributes(pool)  # parsing happens once per distinct caption
    t0 = time.perf_counter()
    for i in range(200):
        summarize_captions([pool[(i * 7 + j) % len(pool)] for j in range(5)])
        summarize_captions([pool[(i * 3 + j) % len(pool)] for j in range(5)])
    per_neuron_ms = (time.perf_counter() - t0) / 200 * 1000
    assert per_neuron_ms < 5.0


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
    assert row.top_clips == " ".join(f"layers.0.mlp-1h{r}" for r in range(3))
    assert row.bottom_clips == " ".join(f"layers.0.mlp-1l{r}" for r in range(3))
    assert "All 3 clips are loud and bright." in row.high_summary
    assert "quiet" in row.low_summary and "loud" not in row.low_summary

    llm = RecordingLLM()
    out = summarize_all(df, captions_for(df), llm, k=2)
    assert len(llm.batches) == 1 and len(llm.batches[0][0]) == 8  # one batch: 4 neurons x 2
    assert out.top_clips.str.split().str.len().eq(2).all()

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
    assert out.high_summary.str.contains("All 3 clips are loud and bright").all()
    assert run_stage(cfg, run) == {"summaries": 5, "reused": True}
    run.mark_done("caption", "new-captions", ["captions.csv"])  # upstream changed: redo
    assert run_stage(cfg, run)["summaries"] == 5


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
