"""andlib.describe.open_set: Module C's open-set concepts."""

from __future__ import annotations

from andlib.describe import concepts as C
from andlib.describe.concepts import (
    open_concepts,
)


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


def test_open_concepts_without_verbs_keep_the_nouns_only():
    text = "A dog is barking."
    assert C.open_concepts(text) == ["dog", "bark"]
    assert C.open_concepts(text, verbs=False) == ["dog"]
    assert C.open_concepts_many([text, text], verbs=False) == [["dog"], ["dog"]]
