"""The extractive summarizer's old import path: it lives in :mod:`andlib.text.extractive`
(what captions share) and :mod:`andlib.text.caption_parse` (the parse of one caption)."""

from andlib.text.caption_parse import Attribute as Attribute
from andlib.text.caption_parse import caption_attributes as caption_attributes
from andlib.text.caption_parse import hyphenated_spans as hyphenated_spans
from andlib.text.extractive import NOTHING_SHARED as NOTHING_SHARED
from andlib.text.extractive import shared_pitch as shared_pitch
from andlib.text.extractive import source_phrases as source_phrases
from andlib.text.extractive import summarize_captions as summarize_captions
