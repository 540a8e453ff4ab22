"""andlib.describe.adjectives: Module B's acoustic adjectives."""

from __future__ import annotations

import pytest

from andlib.describe import concepts as C
from andlib.describe.concepts import (
    acoustic_adjectives,
    acoustic_adjectives_many,
    extract_adjectives,
)
from andlib.text.prompts import adjective_messages


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
