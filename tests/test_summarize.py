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

ACOUSTIC = [
    "A loud, impulsive sound with bright high-frequency content and short silences.",
    "A loud, impulsive sound with bright high-frequency content.",
    "A loud, noisy sound with bright high-frequency content and short silences.",
    "A loud, impulsive sound with bright high-frequency content.",
    "A quiet, tonal sound with a steady low-pitched hum.",
]
METADATA = [
    "The sound of a dog barking. Loud and impulsive, with fast irregular onsets.",
    "The sound of a dog barking. Loud and bright.",
    "The sound of a dog barking. Loud and harmonic; it is not tonal.",
    "The sound of rain. Quiet, noisy and broadband; no clear pitch.",
    "The sound of a dog barking. Loud and impulsive.",
]


def sentences(summary: str) -> list[str]:
    return re.split(r"(?<=\.) ", summary)


def sentence_with(summary: str, marker: str) -> str:
    found = [s for s in sentences(summary) if marker in s]
    assert len(found) == 1, (marker, summary)
    return found[0]


# ---- the extractive summarizer ---------------------------------------------------------------


def test_extractive_summary_counts_shared_and_rare_attributes():
    summary = summarize_captions(ACOUSTIC)
    most = sentence_with(summary, "(4 of 5)")
    assert "loud" in most and "bright high-frequency content" in most
    assert "impulsive" in sentence_with(summary, "(3 of 5)")
    assert "short silences" in sentence_with(summary, "(2 of 5)")
    rare = sentence_with(summary, "Only one clip")
    assert all(w in rare for w in ("noisy", "quiet", "tonal", "steady low-pitched hum"))
    assert "loud" not in rare and "impulsive" not in rare
    # Shared attributes come first, one sentence per group of clips.
    assert summary.index("(4 of 5)") < summary.index("(3 of 5)") < summary.index("Only one")


def test_extractive_summary_sources_negations_and_all():
    summary = summarize_captions(METADATA)
    assert "Most clips (4 of 5) are loud sounds of a dog barking." in summary
    assert "Some clips (2 of 5) are impulsive." in summary
    assert sentence_with(summary, "Only one clip").endswith(", among others.")  # 9 > 8 items
    rare = sentence_with(summarize_captions(METADATA, max_items=20), "Only one clip")
    for part in ("rain", "not tonal", "no clear pitch", "bright", "harmonic", "broadband"):
        assert part in rare
    assert "loud" not in rare and "dog" not in rare
    same = summarize_captions(["A loud click train.", "A loud click train."])
    assert same == "Both clips are loud and have a loud click train." or "Both clips" in same
    assert summarize_captions(["A soft, low hum."]).startswith("The clip ")
    assert summarize_captions([]) == ""
    assert "No shared attributes" in summarize_captions(["...", "!"])


def test_extractive_summary_is_deterministic():
    first = summarize_captions(METADATA)
    summ._parsed.clear()  # parse again from scratch
    assert summarize_captions(METADATA) == first
    assert summarize_captions(list(METADATA)) == first


def test_extractive_summary_reads_as_english_for_module_b():
    """Attributes stay adjectives and sources stay nouns for the POS tagger downstream."""
    doc = summ._spacy()(summarize_captions(METADATA))
    pos = {t.text: t.pos_ for t in doc}
    assert pos["loud"] == "ADJ" and pos["impulsive"] == "ADJ"
    assert pos["dog"] == "NOUN" and pos["rain"] == "NOUN"
    assert len(list(doc.sents)) >= 3


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
    high, low = summarize_neuron(ACOUSTIC, METADATA, get_llm(LLMConfig()))
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
    out = summarize_all(df, captions_for(df), get_llm(LLMConfig()))
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
    assert run_stage(cfg, run) == {"summaries": "up to date"}
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
