"""Cost in operations of the describe stages at scale (issue #16): work done once per
distinct text, never once per neuron, with results unchanged."""

from __future__ import annotations

import hashlib

import numpy as np

import andlib.text.extractive as extractive
from andlib.describe.concepts import icl_answer_marked, icl_concepts

CONCEPTS = ["dog", "rain", "water_drops", "church_bells", "clock_tick", "wind"]


class CountingEmbedder:
    """Deterministic unit vectors from a hash of the text; counts the texts it embeds and
    the calls that had something new to embed (a model call of the real embedder)."""

    def __init__(self) -> None:
        self.memo: dict[str, np.ndarray] = {}
        self.model_calls = 0

    def encode(self, texts):
        new = sorted({t for t in texts if t not in self.memo})
        if new:
            self.model_calls += 1
        for t in new:
            seed = int(hashlib.sha256(t.encode()).hexdigest()[:8], 16)
            v = np.random.default_rng(seed).standard_normal(16).astype(np.float32)
            self.memo[t] = v / np.linalg.norm(v)
        return np.stack([self.memo[t] for t in texts]) if texts else np.zeros((0, 16))


class FakeLLM:
    generative = True

    def __init__(self, replies):
        self.replies = replies

    def complete_many(self, batch, labels=None):
        return [self.replies[i % len(self.replies)] for i in range(len(batch))]


def test_icl_replies_are_mapped_with_one_embedder_call_not_one_per_neuron():
    replies = [f"1. a barking hound number {i}\n2. drizzle {i % 7}\n3. dog" for i in range(200)]
    emb = CountingEmbedder()
    result = icl_concepts([f"summary {i}" for i in range(200)], CONCEPTS, FakeLLM(replies), 3, emb)
    assert emb.model_calls <= 2  # the concept names, then every reply's phrases at once
    # the same lists as mapping each reply on its own
    alone = [icl_answer_marked(r, CONCEPTS, CountingEmbedder(), 3) for r in replies]
    assert result.concepts == [a for a, _ in alone]
    assert result.llm_slots == [n for _, n in alone]


def test_each_caption_is_split_and_normalized_once(monkeypatch):
    pool = [
        "Most likely a dog barking, possibly a rooster crowing. A loud, sharp, impulsive sound.",
        "The sound of rain falling. A quiet, steady, noisy hiss with dull low-frequency content.",
        "A loud sound with 3 short bursts and short silences between them.",
        "Perhaps a clock ticking or a dog barking; the source is unclear. A mid-pitched sound.",
        "A quiet, steady, low-pitched, tonal hum (about 110 Hz). It has rich harmonics.",
    ] + [f"A sharp click repeated {n} times, with bright high-frequency content." for n in range(9)]
    rs = np.random.default_rng(0)
    groups = [[pool[i] for i in rs.integers(0, len(pool), 5)] for _ in range(300)]
    extractive._items.clear()
    fast = [extractive.summarize_captions(g) for g in groups]

    calls = []
    real = extractive.source_phrases
    monkeypatch.setattr(extractive, "source_phrases", lambda c: calls.append(c) or real(c))
    extractive._items.clear()
    again = [extractive.summarize_captions(g) for g in groups]
    assert again == fast and len(calls) == len(set(calls)) == len(pool)

    # the code path before the memo: every caption worked out again for every group
    memo = extractive._caption_items

    def every_time(captions):
        extractive._items.clear()
        return memo(captions)

    monkeypatch.setattr(extractive, "_caption_items", every_time)
    assert [extractive.summarize_captions(g) for g in groups] == fast
