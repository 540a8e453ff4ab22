"""andlib.describe.icl: Module A's in-context (ICL) concepts and their embedding fallback."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from andlib.describe import concepts as C
from andlib.describe.concepts import (
    icl_answer,
    icl_answer_marked,
    icl_concepts,
    load_concept_set,
    parse_icl_reply,
)

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


class CannedLLM:
    """A generative LLM stand-in answering from a list of canned replies, in turn."""

    generative = True

    def __init__(self, replies):
        self.replies = replies

    def complete_many(self, batch, labels=None):
        return [self.replies[i % len(self.replies)] for i in range(len(batch))]


def test_icl_replies_are_mapped_with_one_embedder_call_not_one_per_neuron():
    replies = [f"1. a barking hound number {i}\n2. drizzle {i % 7}\n3. dog" for i in range(200)]
    emb = CountingEmbedder()
    result = icl_concepts(
        [f"summary {i}" for i in range(200)], CONCEPTS, CannedLLM(replies), 3, emb
    )
    assert emb.model_calls <= 2  # the concept names, then every reply's phrases at once
    # the same lists as mapping each reply on its own
    alone = [icl_answer_marked(r, CONCEPTS, CountingEmbedder(), 3) for r in replies]
    assert result.concepts == [a for a, _ in alone]
    assert result.llm_slots == [n for _, n in alone]
