"""The package's shape: no module over :data:`MAX_LINES` lines, and tests that mirror it."""

from __future__ import annotations

from pathlib import Path

import andlib

PACKAGE_DIR = Path(andlib.__file__).resolve().parent
TESTS_DIR = PACKAGE_DIR.parent / "tests"
MAX_LINES = 600
"""A module longer than this mixes things: split it along its seams."""
CROSS_CUTTING = {
    "test_house.py": "the package's shape",
    "test_imports.py": "the import graph",
    "test_notebooks.py": "the notebooks and their sources",
    "test_runs.py": "what every stage's key covers",
    "test_scale_equivalence.py": "the smoke run's outputs before and after the speed-ups",
    "test_atlas_browser.py": "the atlas in a real browser",
}
"""Test files at the top of ``tests/`` that check several modules at once."""


def module_lengths() -> dict[str, int]:
    """``{path relative to the package's parent: lines}`` of every module of ``andlib``."""
    return {
        str(path.relative_to(PACKAGE_DIR.parent)): len(
            path.read_text(encoding="utf-8").splitlines()
        )
        for path in sorted(PACKAGE_DIR.rglob("*.py"))
    }


def mirror_of(module: Path) -> Path:
    """``andlib/<sub>/<name>.py`` -> ``tests/<sub>/test_<name>.py``."""
    rel = module.relative_to(PACKAGE_DIR)
    return TESTS_DIR / rel.parent / f"test_{rel.name}"


def modules() -> list[Path]:
    """Every module of ``andlib`` that holds code (not ``__init__`` or ``__main__``)."""
    return [
        p for p in sorted(PACKAGE_DIR.rglob("*.py")) if p.name not in ("__init__.py", "__main__.py")
    ]


def test_module_lengths_are_counted():
    lengths = module_lengths()
    assert "andlib/store.py" in lengths and "andlib/report/analysis.py" in lengths
    assert all(n > 0 for name, n in lengths.items() if not name.endswith("__init__.py"))


def test_no_module_is_over_600_lines():
    long = {name: n for name, n in module_lengths().items() if n > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines (split them along their seams): {long}"


def test_a_modules_test_file_mirrors_its_path():
    assert mirror_of(PACKAGE_DIR / "store.py") == TESTS_DIR / "test_store.py"
    assert mirror_of(PACKAGE_DIR / "evaluate" / "scorers" / "metrics.py") == (
        TESTS_DIR / "evaluate" / "scorers" / "test_metrics.py"
    )


def test_every_module_has_its_own_test_file():
    missing = [
        str(mirror_of(m).relative_to(TESTS_DIR.parent))
        for m in modules()
        if not mirror_of(m).is_file()
    ]
    assert not missing, f"modules without their test file: {missing}"


def test_every_test_file_mirrors_a_module_or_is_cross_cutting():
    mirrored = {mirror_of(m) for m in modules()}
    scripts = TESTS_DIR.parent / "scripts"
    mirrored |= {TESTS_DIR / "scripts" / f"test_{p.name}" for p in scripts.glob("*.py")}
    stray = [
        str(p.relative_to(TESTS_DIR.parent))
        for p in sorted(TESTS_DIR.rglob("test_*.py"))
        if p not in mirrored and not (p.parent == TESTS_DIR and p.name in CROSS_CUTTING)
    ]
    assert not stray, f"test files that mirror no module (move or split them): {stray}"
