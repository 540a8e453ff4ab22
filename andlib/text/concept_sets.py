"""Closed concept sets: a shipped set by name (``esc50``) or a text file, one concept per line."""

from __future__ import annotations

import os
import re
from pathlib import Path

from andlib.store import resource_path

SHIPPED_CONCEPT_SETS = {"esc50": "esc50_concepts.txt"}
"""Concept sets shipped with andlib: name -> file in :func:`andlib.store.resource_dir`."""


def concept_set_resource(name_or_path: str | os.PathLike) -> str:
    """The name :func:`andlib.store.resource_digest` hashes a concept set under: a shipped
    set's file name, else the path as configured."""
    key = str(name_or_path).strip()
    return SHIPPED_CONCEPT_SETS.get(key.lower(), key)


def concept_set_path(name_or_path: str | os.PathLike) -> Path:
    """The file of a shipped set (``"esc50"``) or of a concept-set path
    (:func:`andlib.store.resource_path`: relative ones in the working directory, then the
    project root)."""
    return resource_path(concept_set_resource(name_or_path))


def load_concept_set(name_or_path: str | os.PathLike) -> list[str]:
    """The concepts of a shipped set (``"esc50"``) or of a text file, one concept per line.

    Blank lines and lines starting with ``#`` are ignored; duplicates are dropped (first kept).
    A relative path is looked up in the working directory, then in the project root. Names
    are returned as written (``water_drops``); :func:`display_name` gives ``water drops``.
    """
    key = str(name_or_path).strip()
    path = concept_set_path(key)
    if not path.is_file():
        raise FileNotFoundError(
            f"concept set {key!r}: no such file ({path}); use a shipped set "
            f"({', '.join(SHIPPED_CONCEPT_SETS)}) or a text file with one concept per line"
        )
    lines = (ln.strip() for ln in path.read_text(encoding="utf-8").splitlines())
    concepts = list(dict.fromkeys(ln for ln in lines if ln and not ln.startswith("#")))
    if not concepts:
        raise ValueError(f"concept set {key!r} ({path}) holds no concepts")
    return concepts


def display_name(concept: str) -> str:
    """How a concept is shown and embedded: ``water_drops`` -> ``water drops``."""
    return " ".join(re.sub(r"[_]+", " ", str(concept)).split())
