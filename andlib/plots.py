"""Figures in one consistent style; each written to ``figures/`` as PNG and PDF.

Every figure function takes tidy data (a DataFrame or arrays produced by another stage) and
returns a ``matplotlib.figure.Figure``; :func:`save_figure` writes it under a stable name.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt

from andlib.config import Config

STYLE = {
    "figure.dpi": 110,
    "savefig.dpi": 200,
    "savefig.bbox": "tight",
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "legend.frameon": False,
}
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]


def use_style() -> None:
    plt.rcParams.update(STYLE)
    plt.rcParams["axes.prop_cycle"] = matplotlib.cycler(color=PALETTE)


def save_figure(fig: plt.Figure, name: str, cfg: Config | str | Path) -> list[Path]:
    """Write ``<figures_dir>/<name>.png`` and ``.pdf``; return both paths."""
    folder = cfg.figures_path if isinstance(cfg, Config) else Path(cfg)
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{name}.png", folder / f"{name}.pdf"]
    for p in paths:
        fig.savefig(p)
    return paths


use_style()

# --- evaluation & pruning figures (andlib.evaluate / andlib.prune) ---

# --- analysis figures (andlib.analysis) ---
