"""Notebooks: paired with their sources by jupytext, parameters cell first, only call andlib."""

import ast
import json

import pytest

from andlib.config import PROJECT_ROOT

NOTEBOOKS = sorted((PROJECT_ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
# What a notebook may import: the package itself, and plotting, display and table libraries.
# Anything else (numerics, audio, the standard library) belongs in andlib, where it is tested.
ALLOWED_IMPORTS = {"andlib", "matplotlib", "IPython", "ipywidgets", "numpy", "pandas"}


def imported_modules(source: str) -> list[tuple[int, str]]:
    """``(line, module)`` of every import statement in ``source`` (relative ones as ``.x``)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            found.append((node.lineno, "." * node.level + (node.module or "")))
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name | ast.Attribute)
            and getattr(node.func, "id", getattr(node.func, "attr", None))
            in ("__import__", "import_module")
        ):
            found.append((node.lineno, f"<dynamic import: {ast.unparse(node)}>"))
    return found


def disallowed_imports(source: str) -> list[str]:
    return [
        f"line {line}: {module}"
        for line, module in imported_modules(source)
        if module.split(".")[0] not in ALLOWED_IMPORTS
    ]


def test_import_check_names_what_is_not_allowed():
    src = "import numpy as np\nfrom andlib.report.plots import save_figure\nimport os, librosa\n"
    assert disallowed_imports(src) == ["line 3: os", "line 3: librosa"]
    assert disallowed_imports("from . import x") == ["line 1: ."]
    assert disallowed_imports("m = __import__('torch')") == [
        "line 1: <dynamic import: __import__('torch')>"
    ]
    allowed = "import matplotlib.pyplot as plt\nfrom IPython.display import Audio\n"
    assert disallowed_imports(allowed) == []


def test_every_notebook_source_is_built():
    sources = sorted((PROJECT_ROOT / "notebooks" / "src").glob("[0-9][0-9]_*.py"))
    assert sources and [p.stem for p in NOTEBOOKS] == [p.stem for p in sources]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_imports_only_andlib_and_display_libraries(path):
    nb = json.loads(path.read_text())
    cells = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert cells, f"{path.name} has no code cells"
    bad = []
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "code":
            continue
        try:
            bad += [f"cell {i} {b}" for b in disallowed_imports("".join(cell["source"]))]
        except SyntaxError as exc:  # e.g. a shell escape or magic, which hides what it runs
            bad.append(f"cell {i} is not plain Python ({exc.msg}, line {exc.lineno})")
    assert not bad, f"{path.name} imports beyond {sorted(ALLOWED_IMPORTS)}: " + "; ".join(bad)


def cell_contents(nb) -> list[tuple[str, str, list[str]]]:
    """What a jupytext pair must agree on: each cell's type, source and tags, in order."""
    return [(c.cell_type, c.source, list(c.metadata.get("tags", []))) for c in nb.cells]


def out_of_sync(source_py, notebook) -> list[str]:
    """The differences between a percent-format source and its paired notebook (empty when in
    sync), read both through jupytext as `make notebooks` (``jupytext --sync``) writes them."""
    import jupytext

    src, nb = cell_contents(jupytext.read(source_py)), cell_contents(jupytext.read(notebook))
    pairs = enumerate(zip(src, nb, strict=False))
    diffs = [f"cell {i}: {a!r} != {b!r}" for i, (a, b) in pairs if a != b]
    if len(src) != len(nb):
        diffs.append(f"{len(src)} cells in the source, {len(nb)} in the notebook")
    return diffs


def test_the_sync_check_notices_an_edited_source(tmp_path):
    path = NOTEBOOKS[0]
    source = PROJECT_ROOT / "notebooks" / "src" / f"{path.stem}.py"
    edited = tmp_path / source.name
    edited.write_text(source.read_text() + "\n# %%\nprint('a cell the notebook lacks')\n")
    assert out_of_sync(source, path) == []
    assert out_of_sync(edited, path)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_is_in_sync_with_its_jupytext_source(path):
    source = PROJECT_ROOT / "notebooks" / "src" / f"{path.stem}.py"
    diffs = out_of_sync(source, path)
    assert not diffs, f"{path.name} is out of sync with {source.name} (run make notebooks): " + (
        "; ".join(diffs[:3])
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_has_a_parameters_cell_mapping_onto_the_config(path):
    nb = json.loads(path.read_text())
    params = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(params) == 1, "exactly one papermill parameters cell"
    src = "".join(params[0]["source"])
    assert "config_path" in src and "overrides" in src
    code = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
    assert "load_config(config_path, overrides)" in code


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_names_its_kernel_language_for_papermill(path):
    kernelspec = json.loads(path.read_text())["metadata"].get("kernelspec", {})
    assert kernelspec.get("language") == "python" and kernelspec.get("name") == "python3"


NOTEBOOK_STAGES = {
    "00": "train",
    "01": "record",
    "02": "caption",
    "03": "summarize",
    "04": "evaluate",
    "05": "prune",
    "06": "analyze",
    "07": "atlas",
    "08": "pitch",
}
"""The CLI stage (``andlib.pipeline.STAGES``) each numbered notebook runs."""


def stage_calls(source: str) -> tuple[list[str], list[str]]:
    """``(stages run through pipeline.run_stage, other run_stage-like calls)`` in ``source``."""
    through, around = [], []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute | ast.Name):
            continue
        name = getattr(node.func, "attr", getattr(node.func, "id", ""))
        owner = node.func.value if isinstance(node.func, ast.Attribute) else None
        if name == "run_stage" and isinstance(owner, ast.Name) and owner.id == "pipeline":
            arg = node.args[0] if node.args else None
            through.append(arg.value if isinstance(arg, ast.Constant) else ast.unparse(node))
        elif name in ("run_stage", "build_atlas", "run_controls", "compare"):
            around.append(ast.unparse(node))
    return through, around


def test_stage_check_tells_pipeline_calls_from_direct_ones():
    src = 'pipeline.run_stage("atlas", cfg)\nbuild_atlas(run, cfg)\nscores.run_stage(cfg, run)\n'
    assert stage_calls(src) == (["atlas"], ["build_atlas(run, cfg)", "scores.run_stage(cfg, run)"])


def test_every_numbered_notebook_has_a_stage():
    assert sorted(NOTEBOOK_STAGES) == [p.name[:2] for p in NOTEBOOKS]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs_its_stage_through_the_pipeline(path):
    from andlib.pipeline import STAGES

    source = (PROJECT_ROOT / "notebooks" / "src" / f"{path.stem}.py").read_text()
    through, around = stage_calls(source)
    stage = NOTEBOOK_STAGES[path.name[:2]]
    assert stage in STAGES and through == [stage], (
        f"runs {through}, not pipeline.run_stage({stage!r})"
    )
    assert not around, f"runs stages around the pipeline: {around}"
