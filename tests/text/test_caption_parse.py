"""andlib.text.caption_parse: a caption parsed into the countable things it says."""

from __future__ import annotations

from andlib.text import caption_parse as cp


def kinds(attrs) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for a in attrs:
        out.setdefault(a.kind, set()).add(a.key)
    return out


def test_a_caption_gives_its_source_adjectives_and_phrases():
    caption = "The sound of a dog barking. A loud, sharp sound with rich harmonics."
    (attrs,) = cp.caption_attributes([caption])
    found = kinds(attrs)
    assert any("dog" in key for key in found["source"])
    assert {"loud", "sharp"} <= found["adj"]
    assert any("harmonic" in key for key in found.get("phrase", set()))
    assert cp.is_parsed(caption) and not cp.is_parsed("never parsed, this one")


def test_a_parse_is_memoized_and_equal_captions_agree():
    a, b = cp.caption_attributes(["A quiet hum.", "A quiet hum."])
    assert a == b and kinds(a)["adj"] == {"quiet"}


def test_hyphenated_compounds_are_found_as_one_span():
    doc = cp._spacy()("A high-pitched, low-frequency tone.")
    spans = [doc[s:e].text for s, e in cp.hyphenated_spans(doc)]
    assert spans == ["high-pitched", "low-frequency"]
