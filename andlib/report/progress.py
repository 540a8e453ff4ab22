"""Progress you can see while ``reproduce`` runs the notebooks, and its closing summary.

papermill runs each notebook in a kernel of its own; by default nothing it prints reaches the
terminal until the notebook ends. :func:`reproduce <andlib.pipeline.reproduce>` therefore

- starts each kernel with :func:`kernel_setup` (IPython ``exec_lines``, see
  :func:`kernel_arguments`): andlib's log lines (training epochs with loss and held-out
  accuracy, recording, captioning, summaries, evaluation, pruning, the atlas) go to the
  kernel's stderr, and ``tqdm.auto`` bars are plain text bars (rate and ETA) instead of
  widgets, updated at most every ``$TQDM_MININTERVAL`` seconds (default 2);
- streams the kernel's stdout and stderr to the terminal as they arrive (papermill's
  ``stdout_file`` / ``stderr_file``), each line prefixed with the notebook's number
  (:class:`PrefixedStream`);
- ends with :func:`closing_summary`: where the outputs, notebooks, figures and atlas are, and
  the headline numbers of each run directory (:func:`andlib.report.atlas.headline`).

``ANDLIB_PROGRESS=0`` turns the streaming off (one line per notebook, as before).
"""

from __future__ import annotations

import io
import logging
import os
import re
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TextIO

LOG_FORMAT = "%(asctime)s %(message)s"


def enabled() -> bool:
    """Whether ``reproduce`` streams the kernels' output (``ANDLIB_PROGRESS`` not ``0``)."""
    return os.environ.get("ANDLIB_PROGRESS", "1").strip().lower() not in ("0", "false", "no")


def kernel_setup(level: int = logging.INFO) -> None:
    """Run inside each notebook kernel before its first cell: andlib's loggers write to stderr
    at ``level`` (no other library's), and ``tqdm.auto`` is the text ``tqdm``."""
    os.environ.setdefault("TQDM_MININTERVAL", "2")  # read by tqdm when it is imported
    logger = logging.getLogger("andlib")
    if not any(getattr(h, "_andlib_progress", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        handler._andlib_progress = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False  # a notebook's own show_logs() would print every line twice
    import tqdm.auto
    import tqdm.std

    tqdm.auto.tqdm = tqdm.std.tqdm  # type: ignore[misc]
    tqdm.auto.trange = tqdm.std.trange  # type: ignore[assignment]


def kernel_arguments() -> list[str]:
    """Kernel command-line arguments that run :func:`kernel_setup` at start-up (and keep the
    kernel's own start-up warnings, such as "running over TCP without encryption", quiet)."""
    return [
        "--IPKernelApp.exec_lines=import andlib.report.progress as _p; _p.kernel_setup(); del _p",
        "--IPKernelApp.log_level=ERROR",
    ]


def streams(notebook: str) -> dict[str, Any]:
    """``papermill.execute_notebook`` keyword arguments that stream a notebook's output to
    this process's stdout and stderr, each line prefixed with the notebook's number, from a
    kernel set up by :func:`kernel_setup`. papermill's own per-notebook INFO lines are
    silenced (``reproduce`` prints one line per notebook itself)."""
    logging.getLogger("papermill").setLevel(logging.WARNING)
    prefix = f"  {Path(notebook).name[:2]} | "
    return {
        "stdout_file": PrefixedStream(sys.stdout, prefix),
        "stderr_file": PrefixedStream(sys.stderr, prefix),
        "extra_arguments": kernel_arguments(),
    }


class PrefixedStream(io.TextIOBase):
    """A text stream that writes to ``stream`` with ``prefix`` at the start of every line
    (also after a carriage return, so a tqdm bar keeps its prefix)."""

    def __init__(self, stream: TextIO, prefix: str):
        self.stream = stream
        self.prefix = prefix
        self._line_start = True

    def write(self, text: str) -> int:
        out = []
        for piece in re.split(r"([\r\n])", text):
            if not piece:
                continue
            if piece in "\r\n":
                out.append(piece)
                self._line_start = True
                continue
            if self._line_start:
                out.append(self.prefix)
                self._line_start = False
            out.append(piece)
        self.stream.write("".join(out))
        return len(text)

    def flush(self) -> None:
        self.stream.flush()


def _pct(x: Any) -> str:
    return f"{100 * x:.1f} %" if isinstance(x, (int, float)) else "n/a"


def _num(x: Any) -> str:
    return f"{x:.3f}" if isinstance(x, (int, float)) else "n/a"


def _figures_dir(overrides: Iterable[str], default: Path) -> Path:
    for item in overrides:
        if item.startswith("figures_dir="):
            return Path(item.split("=", 1)[1])
    return default


def headline_lines(run_path: Path) -> list[str]:
    """The headline numbers of one run directory, a line each (only those it has)."""
    from andlib.report.atlas import headline

    h = headline(run_path)
    lines = []
    if h["heldout_accuracy"] is not None or h["caption_top1"] is not None:
        parts = []
        if h["heldout_accuracy"] is not None:
            parts.append(f"held-out accuracy {_pct(h['heldout_accuracy'])}")
        if h["caption_top1"] is not None:
            parts.append(f"tagger top-1 {_pct(h['caption_top1'])}")
        lines.append(" · ".join(parts))
    if h["last_layer_top1"]:
        per = ", ".join(f"{c} {_pct(v)}" for c, v in h["last_layer_top1"].items())
        lines.append(f"last-layer top-1 ({h['primary_method']}): {per}")
    sim = h["simulation"]
    if sim:
        extra = ", ".join(
            f"{m.replace('_', ' ')} {_num(v)}"
            for m, v in sim.items()
            if m not in ("description", "random_description")
        )
        lines.append(
            f"simulation r: description {_num(sim.get('description'))} vs random description "
            f"{_num(sim.get('random_description'))}" + (f" ({extra})" if extra else "")
        )
    if h["pruning"]:
        per = ", ".join(f"{s} {_num(v)}" for s, v in h["pruning"].items())
        lines.append(f"pruning ΔA−ΔR: {per}")
    return lines


def closing_summary(
    plan: list[tuple[Path, list[str], Path]], figures_default: Path, seconds: float
) -> str:
    """Where each run directory of a reproduction plan put its outputs, notebooks, figures and
    atlas, and its headline numbers."""
    n = len(plan)
    lines = [f"reproduce: {n} notebook{'' if n == 1 else 's'} in {seconds:.0f} s"]
    seen: dict[Path, list[str]] = {}
    for _nb, overrides, folder in plan:
        seen.setdefault(folder.parent, list(overrides))
    for run_path, overrides in seen.items():
        lines.append(f"  outputs:   {run_path}")
        lines.append(f"  notebooks: {run_path / 'notebooks'}")
        figures = _figures_dir(overrides, figures_default)
        if figures.exists():
            lines.append(f"  figures:   {figures}")
        atlas = run_path / "atlas" / "index.html"
        if atlas.exists():
            lines.append(f"  atlas:     {atlas}  (open it in a browser; no server needed)")
        lines += [f"  {line}" for line in headline_lines(run_path)]
    return "\n".join(lines)
