"""Compare the CSV and JSON outputs of two run directories byte for byte.

    python scripts/compare_runs.py runs/smoke /tmp/after/runs/smoke

Walks both trees (hidden folders such as ``.stages`` and the executed ``notebooks/`` folder are
left out: they hold stage keys, timestamps and kernel output), and prints every ``.csv`` /
``.json`` file that is missing on one side or differs, with the first differing line. Files
that legitimately record when or how long something ran (``--ignore``, fnmatch patterns on the
relative path; ``model.json`` and ``timings.json`` by default) are listed separately and not
counted. Exits 0 when everything compared is identical, 1 otherwise.
"""

from __future__ import annotations

import argparse
import fnmatch
import sys
from pathlib import Path

DEFAULT_IGNORE = ("*model.json", "*timings*.json")


def outputs(root: Path) -> set[str]:
    found = set()
    for p in root.rglob("*"):
        rel = p.relative_to(root)
        if not p.is_file() or p.suffix not in {".csv", ".json"}:
            continue
        if any(part.startswith(".") for part in rel.parts) or rel.parts[0] == "notebooks":
            continue
        found.add(rel.as_posix())
    return found


def first_difference(a: bytes, b: bytes) -> str:
    la, lb = a.decode(errors="replace").splitlines(), b.decode(errors="replace").splitlines()
    for i, (x, y) in enumerate(zip(la, lb, strict=False), 1):
        if x != y:
            return f"line {i}:\n    - {x[:200]}\n    + {y[:200]}"
    return f"{len(la)} lines against {len(lb)}"


def compare(before: Path, after: Path, ignore: tuple[str, ...]) -> int:
    a, b = outputs(before), outputs(after)
    skipped = sorted(n for n in a | b if any(fnmatch.fnmatch(n, pat) for pat in ignore))
    bad = 0
    for name in sorted((a | b) - set(skipped)):
        if name not in b:
            print(f"only in {before}: {name}")
            bad += 1
        elif name not in a:
            print(f"only in {after}: {name}")
            bad += 1
        else:
            x, y = (before / name).read_bytes(), (after / name).read_bytes()
            if x != y:
                print(f"differs: {name} ({first_difference(x, y)})")
                bad += 1
    same = len((a & b) - set(skipped)) - sum(
        1 for n in (a & b) - set(skipped) if (before / n).read_bytes() != (after / n).read_bytes()
    )
    print(
        f"{same} files identical, {bad} differ or are missing; not compared: {', '.join(skipped)}"
    )
    return 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("before", type=Path)
    ap.add_argument("after", type=Path)
    ap.add_argument("--ignore", nargs="*", default=list(DEFAULT_IGNORE))
    args = ap.parse_args(argv)
    for d in (args.before, args.after):
        if not d.is_dir():
            print(f"not a run directory: {d}", file=sys.stderr)
            return 2
    return compare(args.before, args.after, tuple(args.ignore))


if __name__ == "__main__":
    sys.exit(main())
