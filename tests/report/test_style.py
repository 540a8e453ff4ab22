"""andlib.report.style: one style for every figure, applied on import."""

from __future__ import annotations

import matplotlib.pyplot as plt

from andlib.report import style


def test_the_style_is_applied_and_reapplied():
    plt.rcParams["font.size"] = 3
    style.use_style()
    assert plt.rcParams["font.size"] == style.STYLE["font.size"]
    assert plt.rcParams["axes.spines.top"] is False
    colors = [c["color"] for c in plt.rcParams["axes.prop_cycle"]]
    assert colors == style.PALETTE
