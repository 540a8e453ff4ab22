"""Per-neuron summaries: what the captions of a neuron's top-K high and low clips share.

For every recorded neuron the captions of its K most highly and K most lowly activating clips
are summarized separately (the paper's "highly" and "lowly" summaries; Module B later drops
the high-summary sentences that the low summary repeats).

With a generative backend (``openai``, ``transformers:<model>``) each summary is one LLM call
with :func:`andlib.text.prompts.summarize_messages`, all neurons sent as one batch so the backend
can run them concurrently. With the default ``extractive`` backend there is **no language
model**: :func:`summarize_captions` counts, deterministically, which sources (the phrases of a
caption's source sentence, "Most likely a dog barking, possibly a rooster crowing." or "The
sound of a dog barking.") and which qualities (adjectives, noun phrases and verbs of the rest)
the captions share, and states only what at least ``llm.summary_min_share`` of the clips have
(default: half), the shared source first, then the shared qualities, each with its count::

    A dog barking (4 of 5 clips). Loud, sharp sounds with bright high-frequency content
    (all 5); impulsive (3 of 5).

or, when the clips share little, "The clips share no clear source or quality." The phrases
are the captions' own ("a dog barking", "loud, sharp sounds"), with no "Most clips are ..."
subject before them: a sentence embedder then matches a summary to the captions of clips like
it rather than to every summary (this raised the simulation score, see the README).
Adjectives stay adjectives and sources stay nouns, so Module B's sentence matching (counts
stripped), its sentence weights (the counts) and its adjective/noun extraction work on these
summaries as on an LLM's.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import pandas as pd

from andlib.config import Config
from andlib.store import RunDir, Stage, caption_of, encode_list, read_summaries, read_topk
from andlib.text.caption_parse import caption_attributes
from andlib.text.extractive import source_phrases, summarize_captions
from andlib.text.llm import LLM, get_llm
from andlib.text.prompts import summarize_messages

STAGE = "summarize"
SUMMARY_VERSION = 4
"""Bump when the extractive summaries' rules or wording or the file's format change: it
enters the stage key, so cached ``summaries.csv`` files are recomputed (2: only what the clips
share, sources first; 3: the captions' own phrases first, counts after them; 4: the clip ids
of ``top_clips``/``bottom_clips`` in the store's list codec, :func:`andlib.store.encode_list`)."""
COLUMNS = ["layer", "neuron", "top_clips", "bottom_clips", "high_summary", "low_summary"]

# --------------------------------------------------------------------------------------------
# Summaries of neurons
# --------------------------------------------------------------------------------------------


def summarize_neuron(
    high_captions: Sequence[str],
    low_captions: Sequence[str],
    llm: LLM,
    label: str = "neuron",
) -> tuple[str, str]:
    """``(high_summary, low_summary)`` of one neuron's top-K high and low clip captions.

    ``label`` names the neuron in error messages. An empty caption list gives ``""``.
    """
    return _summarize_pairs([(list(high_captions), list(low_captions))], llm, [label])[0]


def _summarize_pairs(
    pairs: list[tuple[list[str], list[str]]], llm: LLM, labels: list[str]
) -> list[tuple[str, str]]:
    groups = [caps for pair in pairs for caps in pair]
    if not llm.generative:
        # Parse every distinct caption in one go (without its source sentence, as summarizing
        # does): 10^5 groups of K captions hold only as many captions as the probing set.
        distinct = dict.fromkeys(c for caps in groups for c in caps)
        caption_attributes(source_phrases(c)[1] for c in distinct)
        cfg = getattr(llm, "cfg", None)
        share = getattr(cfg, "summary_min_share", None)
        src = getattr(cfg, "summary_source_share", None)
        out = [
            summarize_captions(caps, min_share=share, source_share=src) if caps else ""
            for caps in groups
        ]
    else:
        names = [f"{label} ({end})" for label in labels for end in ("high", "low")]
        asked = [i for i, caps in enumerate(groups) if caps]
        replies = llm.complete_many(
            [summarize_messages(groups[i]) for i in asked], [names[i] for i in asked]
        )
        out = [""] * len(groups)
        for i, reply in zip(asked, replies, strict=True):
            out[i] = reply
    return [(out[2 * n], out[2 * n + 1]) for n in range(len(pairs))]


def summarize_all(
    topk_table: pd.DataFrame,
    captions_by_clip: dict[str, str],
    llm: LLM,
    k: int | None = None,
) -> pd.DataFrame:
    """Summaries of every neuron in ``topk_table`` (the record stage's ``neuron_topk.csv``).

    All neurons go to the backend as one batch (the openai backend runs them concurrently).
    Returns one row per neuron, in the table's order, with the columns of ``summaries.csv``:
    ``layer, neuron, top_clips, bottom_clips`` (clip ids in rank order, one list cell each:
    :func:`andlib.store.encode_list`),
    ``high_summary, low_summary``. ``k`` keeps ranks ``< k`` only.
    """
    missing_cols = {"layer", "neuron", "end", "rank", "clip_id"} - set(topk_table.columns)
    if missing_cols:
        raise ValueError(f"top-K table lacks columns {sorted(missing_cols)}")
    table = topk_table
    if k is not None:
        table = table[table["rank"] < k]
    table = table.sort_values("rank", kind="stable")
    ends = set(table["end"].unique()) - {"high", "low"}
    if ends:
        raise ValueError(f"top-K table: 'end' must be high or low, found {sorted(ends)}")
    clips: dict[tuple[str, int], tuple[list[str], list[str]]] = {}
    for layer, neuron, end, clip in zip(
        table["layer"].astype(str),
        table["neuron"].astype(int),
        table["end"],
        table["clip_id"].astype(str),
        strict=True,
    ):
        high, low = clips.setdefault((layer, neuron), ([], []))
        (high if end == "high" else low).append(clip)
    captions = {str(c): str(t) for c, t in captions_by_clip.items()}
    missing = sorted({c for pair in clips.values() for ids in pair for c in ids} - set(captions))
    if missing:
        raise ValueError(
            f"{len(missing)} top-K clips have no caption (e.g. {', '.join(missing[:5])}): "
            "re-run the caption stage"
        )
    pairs = [([captions[c] for c in hi], [captions[c] for c in lo]) for hi, lo in clips.values()]
    labels = [f"{layer} neuron {neuron}" for layer, neuron in clips]
    summaries = _summarize_pairs(pairs, llm, labels)
    rows = [
        (layer, neuron, encode_list(hi), encode_list(lo), high_s, low_s)
        for ((layer, neuron), (hi, lo)), (high_s, low_s) in zip(
            clips.items(), summaries, strict=True
        )
    ]
    return pd.DataFrame(rows, columns=COLUMNS)


SPEC = Stage(
    STAGE,
    sections=("llm", "k"),
    upstream=("record", "caption"),
    resources=("prompts:summarize",),
    version=SUMMARY_VERSION,
)
"""The summarize stage's cache key (see :func:`run_stage`)."""


def run_stage(cfg: Config, run: RunDir) -> dict[str, Any]:
    """Write ``summaries.csv``: high and low summaries of every neuron in ``neuron_topk.csv``.

    Reads ``neuron_topk.csv`` (record stage) and ``captions.csv`` (caption stage). Keyed by the
    ``llm`` settings (``llm.summary_min_share`` among them), ``k``, :data:`SUMMARY_VERSION`,
    the summarize prompt (:func:`andlib.store.resource_digest`) and both upstream stage keys;
    reused when none changed. Every LLM
    reply is cached on disk as soon as it arrives, so after an interruption (or an
    :class:`~andlib.text.llm.LLMError`) a re-run re-issues only the calls that had not finished.
    """
    key = SPEC.key(cfg, run)
    if run.is_fresh(STAGE, key):
        return {"summaries": len(read_summaries(run)), "reused": True}
    log = run.logger(STAGE)
    topk = read_topk(run)
    captions = caption_of(run)
    llm = get_llm(cfg.llm, cfg.cache_path)
    t0 = time.time()
    df = summarize_all(topk, captions, llm, cfg.k)
    seconds = time.time() - t0
    run.write_csv("summaries.csv", df)
    log.info(
        "%d neurons summarized with %r in %.1f s (%d LLM calls, %d cached)",
        len(df), llm, seconds, llm.calls, llm.cache_hits,
    )  # fmt: skip
    run.mark_done(STAGE, key, outputs=["summaries.csv"], backend=llm.backend, model=llm.model)
    return {
        "summaries": len(df),
        "llm": f"{llm.backend}:{llm.model}",
        "llm_calls": llm.calls,
        "llm_cached": llm.cache_hits,
    }
