"""The statistics of the pruning experiment (:mod:`andlib.evaluate.prune`): draws averaged per
class (:func:`average_draws`), a percentile bootstrap interval of the mean
(:func:`bootstrap_ci`) and the per-strategy summary over the same classes
(:func:`pruning_summary`, ``pruning_summary.csv``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

COLUMNS = [
    "strategy",
    "concept",
    "draw",
    "n_pruned",
    "share_pruned",
    "acted",
    "delta_a",
    "delta_r",
    "delta_a_prob",
    "delta_r_prob",
    "acc_a_before",
    "acc_a_after",
    "acc_r_before",
    "acc_r_after",
]
"""``pruning.csv``: ``draw`` numbers the random draws (0 for the other strategies), ``acted``
whether any neuron was pruned; see :func:`andlib.evaluate.prune.run_stage`."""


def bootstrap_ci(
    values: Sequence[float] | np.ndarray, n_resamples: int, seed: int, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (non-finite ones dropped).

    ``n_resamples`` resamples of ``len(values)`` draws with replacement, indices from
    ``np.random.default_rng(seed).integers(0, n, (n_resamples, n))``; the interval is the
    ``(1 − level) / 2`` and ``(1 + level) / 2`` quantiles of their means. The same seed and
    count give the same resamples, so intervals of paired values (per class) resample the
    same classes. ``(nan, nan)`` for no value.
    """
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if x.size == 0 or n_resamples < 1:
        return float("nan"), float("nan")
    idx = np.random.default_rng(seed).integers(0, x.size, size=(n_resamples, x.size))
    means = x[idx].mean(axis=1)
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return float(low), float(high)


_MEASURES = [c for c in COLUMNS if c not in ("strategy", "concept", "draw", "acted")]


def average_draws(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (strategy, concept): the measures averaged over draws, ``acted`` if any
    draw pruned a neuron, ``draws`` their number (tables without ``draw``: one each)."""
    d = df.copy()
    if "acted" not in d:
        d["acted"] = d["n_pruned"] > 0
    g = d.groupby(["strategy", "concept"], sort=False)
    out = g[[c for c in _MEASURES if c in d.columns]].mean()
    out["acted"] = g["acted"].any()
    out["draws"] = g.size()
    return out.reset_index()


SUMMARY_COLUMNS = [
    "strategy",
    "n_concepts",
    "n_pruned_mean",
    "delta_a_minus_r_mean",
    "ci_low",
    "ci_high",
    "n_acted",
    "share_pruned_mean",
    "delta_a",
    "delta_r",
    "specificity_prob",
    "acc_drop_a",
    "acc_drop_r",
    "specificity_acc",
    "vs_random_mean",
    "vs_random_ci_low",
    "vs_random_ci_high",
]


def pruning_summary(
    df: pd.DataFrame, n_resamples: int = 2000, seed: int = 0, level: float = 0.95
) -> pd.DataFrame:
    """``pruning_summary.csv``: per strategy, a paired comparison over the same classes.

    Draws are averaged per class first (:func:`average_draws`); the classes are those with a
    ΔA (a class, not a free concept) that every strategy has a row for, including classes a
    strategy pruned nothing for (ΔA = ΔR = 0 there). Columns (:data:`SUMMARY_COLUMNS`):
    ``n_concepts`` classes compared, ``n_pruned_mean`` neurons pruned per class,
    ``delta_a_minus_r_mean`` the mean per-class ΔA − ΔR (logit drops) with its
    ``level`` percentile bootstrap interval ``ci_low``/``ci_high`` (:func:`bootstrap_ci`,
    ``n_resamples``, ``seed``: the same resampled classes for every strategy); ``n_acted``
    the classes the strategy chose at least one neuron for; mean ``delta_a``, ``delta_r``,
    ``specificity_prob`` (ΔA − ΔR of probabilities), ``acc_drop_a``/``_r`` and
    ``specificity_acc`` (their difference); ``vs_random_*`` the mean and interval of the
    per-class ΔA − ΔR minus that of the random control (NaN without one).
    """
    per = average_draws(df)
    per = per[per["delta_a"].notna()]
    order = list(dict.fromkeys(df["strategy"]))
    sets = [set(per.loc[per["strategy"] == s, "concept"]) for s in order]
    classes = sorted(set.intersection(*sets)) if sets else []
    spec: dict[str, pd.Series] = {}
    tables: dict[str, pd.DataFrame] = {}
    for s in order:
        t = per[per["strategy"] == s].set_index("concept").reindex(classes)
        tables[s] = t
        spec[s] = t["delta_a"] - t["delta_r"]
    rows = []
    for s in order:
        t = tables[s]
        low, high = bootstrap_ci(spec[s].to_numpy(), n_resamples, seed, level)
        vs = spec[s] - spec["random"] if "random" in spec and s != "random" else None
        vs_low, vs_high = (
            bootstrap_ci(vs.to_numpy(), n_resamples, seed, level)
            if vs is not None
            else (float("nan"), float("nan"))
        )
        acc_a = t["acc_a_before"] - t["acc_a_after"]
        acc_r = t["acc_r_before"] - t["acc_r_after"]
        rows.append(
            {
                "strategy": s,
                "n_concepts": len(classes),
                "n_pruned_mean": t["n_pruned"].mean(),
                "share_pruned_mean": t["share_pruned"].mean() if "share_pruned" in t else np.nan,
                "delta_a_minus_r_mean": spec[s].mean(),
                "ci_low": low,
                "ci_high": high,
                "n_acted": int(t["acted"].astype(bool).sum()),
                "delta_a": t["delta_a"].mean(),
                "delta_r": t["delta_r"].mean(),
                "specificity_prob": (t["delta_a_prob"] - t["delta_r_prob"]).mean(),
                "acc_drop_a": acc_a.mean(),
                "acc_drop_r": acc_r.mean(),
                "specificity_acc": (acc_a - acc_r).mean(),
                "vs_random_mean": vs.mean() if vs is not None else float("nan"),
                "vs_random_ci_low": vs_low,
                "vs_random_ci_high": vs_high,
            }
        )
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
