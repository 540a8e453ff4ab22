"""andlib.evaluate.scorers.variants: the sanity variants and baselines scored in place of a
description."""

from __future__ import annotations

from andlib.config import load_config
from andlib.evaluate.scorers import variants as V

CAPTIONS = [
    "Most likely a dog barking, possibly a rooster crowing. A loud, noisy sound.",
    "The sound of a dog barking. A short burst.",
    "Most likely rain falling. A steady hiss.",
    "Most likely a siren wailing. A high-pitched tone.",
    "A quiet hum with short silences.",
]


CATEGORIES = ["dog", "dog", "rain", "siren", ""]


def test_source_vocabulary_and_class_phrases():
    vocab = V.source_vocabulary(CAPTIONS, ["dog", "water_drops"])
    assert {"dog barking", "rooster crowing", "rain falling", "siren wailing"} <= set(vocab)
    assert "water drops" in vocab and "dog" in vocab
    assert vocab == sorted(vocab, key=lambda p: (-len(p), p))
    phrases = V.class_phrases(CAPTIONS, CATEGORIES)
    assert phrases == {"dog": "a dog barking", "rain": "rain falling", "siren": "a siren wailing"}


def test_missing_label_removes_the_source_phrase_only():
    pattern = V.source_pattern(V.source_vocabulary(CAPTIONS, ["dog"]))
    text = (
        "A dog barking (all 5 clips) or possibly a rooster crowing (3 of 5). Noisy sounds (4 of 5)."
    )
    assert V.remove_source(text, pattern) == (
        "Possibly a rooster crowing (3 of 5). Noisy sounds (4 of 5)."
    )
    assert V.remove_source("Rain falling (4 of 5 clips). Steady (3 of 5).", pattern) == (
        "Steady (3 of 5)."
    )
    assert V.remove_source("A dog barking (all 5 clips).", pattern) == V.EMPTY_DESCRIPTION
    assert V.remove_source("Noisy sounds (4 of 5); with bursts.", pattern) == ""  # names none


def test_sanity_variants_are_seeded_and_add_a_wrong_source():
    cfg = load_config(None, {})
    phrases = V.class_phrases(CAPTIONS, CATEGORIES)
    vocab = V.source_vocabulary(CAPTIONS, ["dog", "rain", "siren"])
    descs = ["A dog barking (all 5 clips). Loud (4 of 5).", "Noisy sounds (4 of 5)."] * 10
    majority = ["dog", "rain"] * 10
    missing, extra, reasons = V.sanity_variants(cfg, "l", descs, majority, phrases, vocab)
    again = V.sanity_variants(cfg, "l", descs, majority, phrases, vocab)
    assert (missing, extra) == again[:2]
    other = V.sanity_variants(load_config(None, {"seed": 1}), "l", descs, majority, phrases, vocab)
    assert extra != other[1]
    assert missing[0] == "Loud (4 of 5)." and missing[1] == ""
    assert reasons["missing_label"] == "the description names no source"
    for d, e, own in zip(descs, extra, majority, strict=True):
        assert e.startswith(d) and e != d
        added = e[len(d) :].strip().rstrip(".").lower()
        assert added in {p.lower() for c, p in phrases.items() if c != own}
        if "dog barking" in d.lower():
            assert "dog barking" not in added  # never a source the description names
    # without classes, the wrong source comes from the captions' source phrases
    _, extra2, _ = V.sanity_variants(cfg, "l", descs[:2], ["", ""], {}, vocab)
    assert all(e and e != d for e, d in zip(extra2, descs[:2], strict=True))


def test_majority_class_and_label_text():
    cat = {"a": "dog", "b": "rain", "c": "rain", "d": ""}
    assert V.majority_class(["a", "b", "c"], cat) == "rain"
    assert V.majority_class(["a", "b"], cat) == "dog"  # first on ties
    assert V.majority_class(["d"], cat) == ""
    assert V.label_texts(["water_drops", ""]) == ["water drops", ""]
