"""Build ``notebooks/NN_name.ipynb`` from the percent-format sources ``notebooks/src/NN_name.py``.

Cells start at lines ``# %%`` (code), ``# %% [markdown]`` (markdown, each line prefixed
``# ``) or ``# %% tags=["parameters"]`` (the papermill parameters cell). Run
``python scripts/build_notebooks.py`` after editing a source; ``--check`` exits non-zero
when an .ipynb is out of date (the test suite runs it).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "notebooks" / "src"
OUT = ROOT / "notebooks"
HEADER = re.compile(r"^# %%(?P<md> \[markdown\])?(?: tags=(?P<tags>\[.*\]))?\s*$")


def convert(text: str) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata = {
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"},
    }
    cells: list[tuple[bool, list[str], list[str]]] = []
    for line in text.splitlines():
        m = HEADER.match(line)
        if m:
            cells.append((bool(m.group("md")), json.loads(m.group("tags") or "[]"), []))
        elif cells:
            cells[-1][2].append(line)
    for is_md, tags, lines in cells:
        while lines and not lines[-1].strip():
            lines.pop()
        while lines and not lines[0].strip():
            lines.pop(0)
        if is_md:
            body = "\n".join(re.sub(r"^# ?", "", ln) for ln in lines)
            cell = nbformat.v4.new_markdown_cell(body)
        else:
            cell = nbformat.v4.new_code_cell("\n".join(lines))
        if tags:
            cell.metadata["tags"] = tags
        cell.id = f"cell-{len(nb.cells)}"
        nb.cells.append(cell)
    return nb


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = []
    for src in sorted(SRC.glob("[0-9][0-9]_*.py")):
        nb = convert(src.read_text())
        target = OUT / f"{src.stem}.ipynb"
        text = nbformat.writes(nb) + "\n"
        if check:
            if not target.exists() or target.read_text() != text:
                stale.append(target.name)
        else:
            target.write_text(text)
            print(f"wrote {target.relative_to(ROOT)}")
    if stale:
        print("out of date (run python scripts/build_notebooks.py): " + ", ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
