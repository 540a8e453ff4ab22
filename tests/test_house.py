"""The package's shape: no module over :data:`MAX_LINES` lines."""

from __future__ import annotations

from pathlib import Path

import andlib

PACKAGE_DIR = Path(andlib.__file__).resolve().parent
MAX_LINES = 600
"""A module longer than this mixes things: split it along its seams."""


def module_lengths() -> dict[str, int]:
    """``{path relative to the package's parent: lines}`` of every module of ``andlib``."""
    return {
        str(path.relative_to(PACKAGE_DIR.parent)): len(
            path.read_text(encoding="utf-8").splitlines()
        )
        for path in sorted(PACKAGE_DIR.rglob("*.py"))
    }


def test_module_lengths_are_counted():
    lengths = module_lengths()
    assert "andlib/store.py" in lengths and "andlib/report/analysis.py" in lengths
    assert all(n > 0 for name, n in lengths.items() if not name.endswith("__init__.py"))


def test_no_module_is_over_600_lines():
    long = {name: n for name, n in module_lengths().items() if n > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines (split them along their seams): {long}"
