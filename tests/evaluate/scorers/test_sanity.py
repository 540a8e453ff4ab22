"""andlib.evaluate.scorers.sanity: the sanity and baseline tables."""

from __future__ import annotations

import numpy as np
import pandas as pd

from andlib.evaluate.scorers.sanity import baseline_table, sanity_table


def test_sanity_and_baseline_tables():
    g = np.random.default_rng(0)
    rows = []
    for n in range(40):
        own = g.normal(0.5, 0.1)
        for variant, value in (
            ("own", own),
            ("missing_label", own - 0.2 + g.normal(0, 0.05)),
            ("extra_label", own + g.normal(0, 0.05)),
            ("label", own - 0.1 + g.normal(0, 0.05)),
        ):
            rows.append(("l0", n, "simulation", "pearson", variant, value, 10))
    scores = pd.DataFrame(
        rows, columns=["layer", "neuron", "scorer", "metric", "variant", "value", "n"]
    )
    sanity = sanity_table(scores).set_index("variant")
    assert (
        bool(sanity.loc["missing_label", "passes"])
        and sanity.loc["missing_label", "share_lower"] > 0.9
    )
    assert not bool(sanity.loc["extra_label", "passes"])
    assert sanity.loc["missing_label", "ci_low"] < 0.2 < sanity.loc["missing_label", "ci_high"]
    base = baseline_table(scores)
    assert set(base.layer) == {"l0", "all"} and set(base.variant) == {"label"}
    row = base[base.layer == "all"].iloc[0]
    assert row.ci_low < 0.1 < row.ci_high and row.n_neurons == 40
