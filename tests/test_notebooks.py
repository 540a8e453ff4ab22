"""Notebooks: built from their sources, parameters cell first, only call andlib."""

import json
import subprocess
import sys

import pytest

from andlib.config import PROJECT_ROOT

NOTEBOOKS = sorted((PROJECT_ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def test_notebooks_are_in_sync_with_their_sources():
    res = subprocess.run(
        [sys.executable, "scripts/build_notebooks.py", "--check"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_has_a_parameters_cell_mapping_onto_the_config(path):
    nb = json.loads(path.read_text())
    params = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(params) == 1, "exactly one papermill parameters cell"
    src = "".join(params[0]["source"])
    assert "config_path" in src and "overrides" in src
    code = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
    assert "load_config(config_path, overrides)" in code
