"""andlib.evaluate.prune_stats: bootstrap intervals and the pruning summary."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from andlib.evaluate.prune import (
    bootstrap_ci,
    pruning_summary,
)


def test_bootstrap_ci_hand_made_cases():
    low, high = bootstrap_ci([2.0] * 7, 500, seed=3)
    assert low == high == pytest.approx(2.0)
    values = np.array([0.1, -0.4, 0.25, 1.0, 0.0])
    gen = np.random.default_rng(11)
    means = values[gen.integers(0, 5, size=(2000, 5))].mean(axis=1)
    expected = np.quantile(means, [0.05, 0.95])
    assert bootstrap_ci(values, 2000, seed=11, level=0.90) == pytest.approx(tuple(expected))
    assert bootstrap_ci(list(values) + [np.nan], 2000, 11, 0.90) == pytest.approx(tuple(expected))
    wide, narrow = bootstrap_ci(values, 2000, 11, 0.99), bootstrap_ci(values, 2000, 11, 0.5)
    assert wide[0] < narrow[0] < narrow[1] < wide[1]
    assert all(np.isnan(bootstrap_ci([], 100, 0)))


def test_summary_averages_draws_and_compares_the_same_classes():
    rows = []
    for concept, (a, r) in {"dog": (1.0, 0.2), "rain": (0.5, 0.5), "sea": (0.0, 0.0)}.items():
        rows.append(("db", concept, 0, 10 if concept != "sea" else 0, a, r))
        for draw in range(3):  # random: ΔA − ΔR of 0, 0.3, 0.6 -> mean 0.3 per class
            rows.append(("random", concept, draw, 10, 0.1 * draw, -0.2 * draw))
    rows.append(("db", "not_a_class", 0, 4, np.nan, 0.1))  # no ΔA: not in the comparison
    df = pd.DataFrame(
        rows, columns=["strategy", "concept", "draw", "n_pruned", "delta_a", "delta_r"]
    )
    for col in ["delta_a_prob", "delta_r_prob", "acc_a_before", "acc_a_after"]:
        df[col] = 0.0
    df["acc_r_before"] = df["acc_r_after"] = 1.0
    table = pruning_summary(df, 1000, seed=0).set_index("strategy")
    assert table.loc["db", "n_concepts"] == table.loc["random", "n_concepts"] == 3
    assert table.loc["db", "n_acted"] == 2 and table.loc["random", "n_acted"] == 3
    assert table.loc["db", "delta_a_minus_r_mean"] == pytest.approx((0.8 + 0 + 0) / 3)
    assert table.loc["random", "delta_a_minus_r_mean"] == pytest.approx(0.3)
    assert table.loc["random", "ci_low"] == pytest.approx(0.3)  # every class: 0.3
    assert table.loc["db", "n_pruned_mean"] == pytest.approx(20 / 3)
    assert table.loc["db", "vs_random_mean"] == pytest.approx(0.8 / 3 - 0.3)
    assert np.isnan(table.loc["random", "vs_random_mean"])
