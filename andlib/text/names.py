"""Names compared loosely: concept and class names, case- and separator-insensitively."""

from __future__ import annotations

import re
from typing import Any


def normalize_concept(name: Any) -> str:
    """Concept names compared case- and separator-insensitively: ``Water_Drops`` -> ``water drops``."""
    return " ".join(w for w in re.split(r"[\s_\-]+", str(name).strip().lower()) if w)
