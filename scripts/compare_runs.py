"""Compare the outputs of two run directories: byte for byte, else cell by cell.

    python scripts/compare_runs.py runs/smoke /tmp/after/runs/smoke [--tol 1e-5]

Walks both trees (hidden folders such as ``.stages`` and the executed ``notebooks/`` folder are
left out of the outputs: they hold stage keys, timestamps and kernel output) and compares
every ``.csv``, ``.json`` and ``.npy`` file:

- byte-identical files are identical;
- otherwise a CSV is read as text and compared cell by cell, a JSON file value by value and an
  array element by element: two numbers that are not both integers may differ by at most
  ``--tol`` (relative to their size when that is above 1), a list cell (``a;b;c``) is compared
  item by item, and everything else (names, labels, counts, flags: the run's decisions) must
  be equal. Such a file is "equal within tolerance" and counts as the same;
- anything else differs, and the first differing cell is printed.

Files that legitimately record when or how long something ran (``--ignore``, fnmatch
patterns on the relative path; ``model.json`` and ``timings.json`` by default) are listed and
not compared. The stage keys of both runs (``.stages/<stage>.json``, control runs included)
are compared too and the stages whose key moved are listed (``--strict-keys``: a moved key
counts as a difference). Exits 0 when everything compared is the same, 1 otherwise, 2 for a
bad argument.
"""

from __future__ import annotations

import argparse
import csv
import fnmatch
import io
import json
import math
import sys
from pathlib import Path
from typing import Any

DEFAULT_IGNORE = ("*model.json", "*timings*.json")
SUFFIXES = {".csv", ".json", ".npy"}


def outputs(root: Path) -> set[str]:
    found = set()
    for p in root.rglob("*"):
        rel = p.relative_to(root)
        if not p.is_file() or p.suffix not in SUFFIXES:
            continue
        if any(part.startswith(".") for part in rel.parts) or rel.parts[0] == "notebooks":
            continue
        found.add(rel.as_posix())
    return found


def stage_keys(root: Path) -> dict[str, str | None]:
    """``{run-relative stage record: its key}`` of every ``.stages/*.json`` under ``root``."""
    keys = {}
    for p in sorted(root.rglob(".stages/*.json")):
        try:
            keys[p.relative_to(root).as_posix()] = json.loads(p.read_text()).get("key")
        except (json.JSONDecodeError, OSError):
            keys[p.relative_to(root).as_posix()] = None
    return keys


# --------------------------------------------------------------------------------------------
# Values compared with a float tolerance
# --------------------------------------------------------------------------------------------


def _number(text: str) -> float | int | None:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return None


def _close(a: float, b: float, tol: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    if math.isinf(a) or math.isinf(b):
        return a == b
    return abs(a - b) <= tol * max(1.0, abs(a), abs(b))


def _split_list(cell: str) -> list[str]:
    """A ``;``-joined list cell (``\\`` escapes) as items; the codec of :mod:`andlib.store`."""
    items, current, chars = [], [], iter(cell)
    for ch in chars:
        if ch == "\\":
            current.append(next(chars, "\\"))
        elif ch == ";":
            items.append("".join(current))
            current = []
        else:
            current.append(ch)
    items.append("".join(current))
    return items


def same_text(a: str, b: str, tol: float) -> bool:
    """Two cells: equal, or numbers within ``tol`` (integers exactly), or list cells whose
    items are."""
    if a == b:
        return True
    x, y = _number(a), _number(b)
    if x is not None and y is not None:
        if isinstance(x, int) and isinstance(y, int):
            return x == y
        return _close(float(x), float(y), tol)
    if ";" in a and ";" in b:
        xs, ys = _split_list(a), _split_list(b)
        return len(xs) == len(ys) and all(same_text(p, q, tol) for p, q in zip(xs, ys, strict=True))
    return False


def same_value(a: Any, b: Any, tol: float, where: str = "") -> str | None:
    """``None`` when two JSON values are the same within ``tol``, else where they differ."""
    if isinstance(a, bool) or isinstance(b, bool) or a is None or b is None:
        return None if a == b else f"{where or '/'}: {a!r} != {b!r}"
    if isinstance(a, int | float) and isinstance(b, int | float):
        if isinstance(a, int) and isinstance(b, int):
            return None if a == b else f"{where or '/'}: {a} != {b}"
        return None if _close(float(a), float(b), tol) else f"{where or '/'}: {a} != {b}"
    if isinstance(a, str) and isinstance(b, str):
        return None if same_text(a, b, tol) else f"{where or '/'}: {a!r} != {b!r}"
    if isinstance(a, dict) and isinstance(b, dict):
        if list(a) != list(b):
            return f"{where or '/'}: keys {sorted(set(a) ^ set(b)) or 'in another order'}"
        for k in a:
            found = same_value(a[k], b[k], tol, f"{where}/{k}")
            if found:
                return found
        return None
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return f"{where or '/'}: {len(a)} items != {len(b)}"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            found = same_value(x, y, tol, f"{where}[{i}]")
            if found:
                return found
        return None
    return f"{where or '/'}: {type(a).__name__} != {type(b).__name__}"


def csv_difference(a: bytes, b: bytes, tol: float) -> str | None:
    ra = list(csv.reader(io.StringIO(a.decode("utf-8"))))
    rb = list(csv.reader(io.StringIO(b.decode("utf-8"))))
    if len(ra) != len(rb):
        return f"{len(ra)} rows != {len(rb)}"
    header = ra[0] if ra else []
    for i, (x, y) in enumerate(zip(ra, rb, strict=True)):
        if len(x) != len(y):
            return f"row {i}: {len(x)} cells != {len(y)}"
        for j, (p, q) in enumerate(zip(x, y, strict=True)):
            if not same_text(p, q, tol):
                column = header[j] if i and j < len(header) else f"column {j}"
                return f"row {i}, {column}: {p[:120]!r} != {q[:120]!r}"
    return None


def npy_difference(pa: Path, pb: Path, tol: float) -> str | None:
    import numpy as np

    x, y = np.load(pa), np.load(pb)
    if x.shape != y.shape or x.dtype != y.dtype:
        return f"{x.shape} {x.dtype} != {y.shape} {y.dtype}"
    if x.dtype.kind in "fc":
        scale = np.maximum(1.0, np.maximum(np.abs(x), np.abs(y)))
        bad = ~((np.abs(x - y) <= tol * scale) | (np.isnan(x) & np.isnan(y)))
    else:
        bad = x != y
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        return f"{int(bad.sum())} elements, first at {idx}: {x[idx]} != {y[idx]}"
    return None


def difference(pa: Path, pb: Path, tol: float) -> str | None:
    """``None`` when two output files are the same within ``tol``, else the first difference."""
    if pa.suffix == ".npy":
        return npy_difference(pa, pb, tol)
    a, b = pa.read_bytes(), pb.read_bytes()
    if pa.suffix == ".json":
        return same_value(json.loads(a), json.loads(b), tol)
    return csv_difference(a, b, tol)


# --------------------------------------------------------------------------------------------


def compare(
    before: Path, after: Path, ignore: tuple[str, ...], tol: float, strict_keys: bool = False
) -> int:
    a, b = outputs(before), outputs(after)
    skipped = sorted(n for n in a | b if any(fnmatch.fnmatch(n, pat) for pat in ignore))
    identical, within, bad = 0, [], 0
    for name in sorted((a | b) - set(skipped)):
        if name not in b:
            print(f"only in {before}: {name}")
            bad += 1
        elif name not in a:
            print(f"only in {after}: {name}")
            bad += 1
        elif (before / name).read_bytes() == (after / name).read_bytes():
            identical += 1
        else:
            found = difference(before / name, after / name, tol)
            if found:
                print(f"differs: {name} ({found})")
                bad += 1
            else:
                within.append(name)
    for name in within:
        print(f"equal within {tol:g}: {name}")
    ka, kb = stage_keys(before), stage_keys(after)
    moved = sorted(s for s in ka.keys() & kb.keys() if ka[s] != kb[s])
    kept = sorted(s for s in ka.keys() & kb.keys() if ka[s] == kb[s])
    only = sorted(ka.keys() ^ kb.keys())
    print(f"stage keys moved: {', '.join(moved) or 'none'}")
    print(f"stage keys kept: {', '.join(kept) or 'none'}")
    if only:
        print(f"stage records in one run only: {', '.join(only)}")
    if strict_keys:
        bad += len(moved)
    print(
        f"{identical} files identical, {len(within)} equal within {tol:g}, "
        f"{bad} differ or are missing; not compared: {', '.join(skipped) or 'none'}"
    )
    return 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("before", type=Path)
    ap.add_argument("after", type=Path)
    ap.add_argument("--ignore", nargs="*", default=list(DEFAULT_IGNORE))
    ap.add_argument("--tol", type=float, default=1e-5, help="float tolerance (default 1e-5)")
    ap.add_argument("--strict-keys", action="store_true", help="a moved stage key is a difference")
    args = ap.parse_args(argv)
    for d in (args.before, args.after):
        if not d.is_dir():
            print(f"not a run directory: {d}", file=sys.stderr)
            return 2
    return compare(args.before, args.after, tuple(args.ignore), args.tol, args.strict_keys)


if __name__ == "__main__":
    sys.exit(main())
