"""The tables read off ``scores.csv``: the sanity tests (``score_sanity.csv``) and the
baselines (``score_baselines.csv``).

**Sanity** (:func:`sanity_table`): a wrong description must score lower than the true one.
Per scorer and metric, for ``missing_label`` and ``extra_label``: over the neurons scored with
both, the share where the variant scores lower (``share_lower``), the mean drop (own minus
variant) with its paired 95 % t interval, and ``passes``: the interval lies above zero and
most neurons drop. ``n_left_out`` counts the neurons scored with their own description but
not with the variant (it did not apply).

**Baselines** (:func:`baseline_table`): per layer (and ``all``), scorer and metric, how far
the description scores above each baseline (own minus baseline, paired 95 % t interval over
the neurons scored with both): against ``label`` it says how much the description explains
beyond the class name.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from andlib.evaluate.scorers.base import BASELINES, SANITY, VARIANTS
from andlib.evaluate.scorers.metrics import paired_interval

SANITY_COLUMNS = [
    "scorer",
    "metric",
    "variant",
    "n_neurons",
    "n_left_out",
    "share_lower",
    "mean_drop",
    "ci_low",
    "ci_high",
    "passes",
]
BASELINE_COLUMNS = [
    "layer",
    "scorer",
    "metric",
    "variant",
    "n_neurons",
    "own_mean",
    "baseline_mean",
    "difference",
    "ci_low",
    "ci_high",
]
KEY = ["layer", "neuron", "scorer", "metric"]


def paired(scores: pd.DataFrame, variant: str) -> pd.DataFrame:
    """Rows of ``own`` joined with ``variant`` on ``layer, neuron, scorer, metric``: columns
    ``own``, ``other`` (NaN where the variant was not scored)."""
    s = scores.assign(value=pd.to_numeric(scores["value"], errors="coerce"))
    own = s[s["variant"] == "own"][[*KEY, "value"]].rename(columns={"value": "own"})
    other = s[s["variant"] == variant][[*KEY, "value"]].rename(columns={"value": "other"})
    own = own.assign(neuron=own["neuron"].astype(int), layer=own["layer"].astype(str))
    other = other.assign(neuron=other["neuron"].astype(int), layer=other["layer"].astype(str))
    return own.merge(other, on=KEY, how="left")


def sanity_table(scores: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """``score_sanity.csv`` (see the module docstring); one row per scorer, metric and variant."""
    records = []
    for variant in SANITY:
        pairs = paired(scores, variant)
        for (scorer, metric), g in pairs.groupby(["scorer", "metric"], sort=False):
            if g["other"].notna().sum() == 0:
                continue
            both = g[np.isfinite(g["own"]) & np.isfinite(g["other"])]
            drop = (both["own"] - both["other"]).to_numpy()
            ci = paired_interval(drop, confidence)
            share = float((drop > 0).mean()) if len(drop) else np.nan
            records.append(
                {
                    "scorer": scorer,
                    "metric": metric,
                    "variant": variant,
                    "n_neurons": len(both),
                    "n_left_out": int(np.isfinite(g["own"]).sum() - len(both)),
                    "share_lower": share,
                    "mean_drop": ci["mean"],
                    "ci_low": ci["ci_low"],
                    "ci_high": ci["ci_high"],
                    "passes": bool(ci["ci_low"] > 0 and share > 0.5),
                }
            )
    return pd.DataFrame(records, columns=SANITY_COLUMNS)


def baseline_table(scores: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """``score_baselines.csv`` (see the module docstring); layers in ``scores`` order, then
    ``all``."""
    records = []
    order = list(dict.fromkeys(scores["layer"].astype(str)))
    for variant in BASELINES:
        pairs = paired(scores, variant)
        pairs = pairs[np.isfinite(pairs["own"]) & np.isfinite(pairs["other"])]
        if pairs.empty:
            continue
        groups = [(layer, pairs[pairs["layer"] == layer]) for layer in order]
        groups.append(("all", pairs))
        for layer, part in groups:
            for (scorer, metric), g in part.groupby(["scorer", "metric"], sort=False):
                ci = paired_interval((g["own"] - g["other"]).to_numpy(), confidence)
                records.append(
                    {
                        "layer": layer,
                        "scorer": scorer,
                        "metric": metric,
                        "variant": variant,
                        "n_neurons": len(g),
                        "own_mean": float(g["own"].mean()),
                        "baseline_mean": float(g["other"].mean()),
                        "difference": ci["mean"],
                        "ci_low": ci["ci_low"],
                        "ci_high": ci["ci_high"],
                    }
                )
    return pd.DataFrame(records, columns=BASELINE_COLUMNS)


def score_summary(scores: pd.DataFrame) -> pd.DataFrame:
    """Mean value per scorer, metric and variant over all scored neurons (a wide table: one
    column per variant)."""
    s = scores.assign(value=pd.to_numeric(scores["value"], errors="coerce"))
    out = s.pivot_table(
        index=["scorer", "metric"], columns="variant", values="value", aggfunc="mean", sort=False
    )
    return out[[v for v in VARIANTS if v in out.columns]]
