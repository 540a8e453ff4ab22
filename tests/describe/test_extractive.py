"""andlib.describe.extractive: the old import path of the extractive summarizer."""

from __future__ import annotations

from andlib.describe import extractive
from andlib.text import caption_parse
from andlib.text import extractive as text_extractive


def test_it_re_exports_the_text_packages_functions():
    assert extractive.summarize_captions is text_extractive.summarize_captions
    assert extractive.source_phrases is text_extractive.source_phrases
    assert extractive.hyphenated_spans is caption_parse.hyphenated_spans
    assert extractive.Attribute is caption_parse.Attribute


def test_the_summary_states_what_most_captions_share():
    captions = ["The sound of a dog barking. A loud, sharp sound."] * 3 + ["A quiet hum."]
    summary = extractive.summarize_captions(captions)
    assert "dog barking" in summary.lower() and summary != extractive.NOTHING_SHARED
