"""The one style of every figure (applied on import)."""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt

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
    from matplotlib.rcsetup import cycler

    rc: Any = plt.rcParams  # typed with literal keys only
    rc.update(STYLE)
    rc["axes.prop_cycle"] = cycler(color=PALETTE)


use_style()
