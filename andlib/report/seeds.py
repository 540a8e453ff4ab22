"""The strategies over training seeds: does an ordering survive a retrain?

:func:`run_measures` gives one run's scalar measures with their within-run intervals,
:func:`seed_measures` those of every run of a comparison config, :func:`seed_summary` the mean
and spread between seeds per model and measure, :func:`seed_orderings` which orderings hold in
every seed, and :func:`seed_verdict` says so in words.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import numpy as np
import pandas as pd

from andlib.layout import (
    read_table,
)
from andlib.report.measures import measure_label, measure_order
from andlib.report.tables import (
    linear_trend,
)
from andlib.store import (
    RunDir,
    decode_list,
    encode_list,
    read_model_info,
    read_scores,
)

# --------------------------------------------------------------------------------------------
# The strategies over training seeds: does an ordering survive a retrain?
# --------------------------------------------------------------------------------------------

MIN_SEEDS = 2
"""An ordering is stated only when at least one of the two models has this many seeds."""
TIE = 1e-6
"""Two seeds' values closer than this are tied, not ordered: measures move at float precision
(a slope of 0.0015625 came out as 0.0015625000000000036 in one seed and exactly in another)."""


def _per_neuron(run: RunDir, table: str, column: str) -> pd.DataFrame | None:
    """A per-neuron analysis table with ``block`` (the ``layers.<i>`` index, NaN for the
    classifier and other layers) and ``value`` (``column`` as float)."""
    df = read_table(run, table)
    if df is None:
        return None
    block = df["layer"].astype(str).str.extract(r"^layers\.(\d+)\.", expand=False)
    return df.assign(block=pd.to_numeric(block), value=df[column].astype(float))


PER_NEURON_MEASURES = (
    ("class_purity", "class_purity.csv", "purity"),
    ("polysemantic", "neuron_polysemanticity.csv", "polysemantic"),
)
"""``(measure, table, column)``: the per-neuron measures the depth trends regress on depth."""


def per_neuron_measures(run: RunDir) -> Iterator[tuple[str, pd.DataFrame]]:
    """``(measure, table)`` of each of :data:`PER_NEURON_MEASURES` the run has (tables as
    :func:`_per_neuron` reads them; hidden-layer rows are those with a ``block``)."""
    for measure, table, column in PER_NEURON_MEASURES:
        df = _per_neuron(run, table, column)
        if df is not None:
            yield measure, df


def _mean_interval(values: Iterable[float], confidence: float) -> dict[str, Any]:
    """Mean with a t interval over the values (``n`` of them; NaN bounds below two)."""
    from scipy import stats

    v = np.asarray([x for x in values if np.isfinite(x)], dtype=float)
    n = len(v)
    mean = float(v.mean()) if n else float("nan")
    half = float("nan")
    if n > 1:
        half = float(stats.t.ppf((1 + confidence) / 2, n - 1) * v.std(ddof=1) / np.sqrt(n))
    return {"value": mean, "ci_low": mean - half, "ci_high": mean + half, "n": n}


def wilson_interval(p: float, n: int | None, confidence: float) -> dict[str, Any]:
    """A proportion ``p`` of ``n`` trials with its Wilson score interval."""
    from scipy import stats

    if not n or not np.isfinite(p):
        return {"value": p, "ci_low": float("nan"), "ci_high": float("nan"), "n": n or 0}
    z = float(stats.norm.ppf((1 + confidence) / 2))
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return {"value": p, "ci_low": centre - half, "ci_high": centre + half, "n": int(n)}


def run_measures(run: RunDir, confidence: float = 0.95) -> pd.DataFrame:
    """One run's scalar measures, each with its within-run interval:
    ``measure, value, ci_low, ci_high, n, interval``.

    :data:`MEASURES`: held-out accuracy (Wilson interval over the held-out clips of
    ``model.json``), mean class purity and polysemantic fraction of the hidden-layer neurons
    (``layers.<i>.*``; t interval over neurons) and their slopes per block (the regression
    interval of :func:`depth_trends`), class purity of the classifier neurons, the mean
    simulation score of the descriptions (t interval over the scored neurons); and per
    captioner and method the last-layer top-1 accuracy (Wilson over the class neurons).
    Missing inputs add no rows.
    """
    rows: list[dict[str, Any]] = []

    def add(measure: str, interval: str, stats_: dict[str, Any]) -> None:
        rows.append({"measure": measure, **stats_, "interval": interval})

    info = read_model_info(run)
    held = info.get("heldout_accuracy")
    if held is not None:
        add(
            "heldout_accuracy",
            "wilson",
            wilson_interval(float(held), info.get("n_heldout"), confidence),
        )
    for name, df in per_neuron_measures(run):
        hidden = df.dropna(subset=["block", "value"])
        add(f"{name}_hidden", "t over neurons", _mean_interval(hidden["value"], confidence))
        fit = linear_trend(hidden["block"], hidden["value"], confidence)
        add(
            f"{name}_slope",
            "regression",
            {
                "value": fit["slope"],
                "ci_low": fit["ci_low"],
                "ci_high": fit["ci_high"],
                "n": fit["n"],
            },
        )
        if name == "class_purity":
            classifier = df.loc[df["layer"].astype(str) == "classifier", "value"]
            if len(classifier):
                add(
                    "class_purity_classifier",
                    "t over neurons",
                    _mean_interval(classifier, confidence),
                )
    sim = read_scores(run, scorer="simulation", metric="pearson", variant="own")
    if sim is not None:
        add("simulation_pearson", "t over neurons", _mean_interval(sim["value"], confidence))
    if run.exists("last_layer.json"):
        for captioner, methods in run.read_json("last_layer.json").items():
            for method, scores in methods.items():
                if isinstance(scores, dict) and scores.get("top1") is not None:
                    add(
                        f"last_layer_top1: {captioner} / {method}",
                        "wilson",
                        wilson_interval(float(scores["top1"]), scores.get("n_neurons"), confidence),
                    )
    columns = ["measure", "value", "ci_low", "ci_high", "n", "interval"]
    return pd.DataFrame(rows, columns=columns)


def seed_measures(
    runs: Mapping[str, Mapping[int | None, RunDir]], confidence: float = 0.95
) -> pd.DataFrame:
    """:func:`run_measures` of every run of every model: ``model, seed, measure, value,
    ci_low, ci_high, n, interval`` (``seed`` empty for a model with one run that no seed
    changes, e.g. a checkpoint)."""
    frames = []
    for model, by_seed in runs.items():
        for seed, run in by_seed.items():
            m = run_measures(run, confidence)
            m.insert(0, "model", model)
            m.insert(1, "seed", pd.array([seed] * len(m), dtype="Int64"))
            frames.append(m)
    columns = ["model", "seed", "measure", "value", "ci_low", "ci_high", "n", "interval"]
    if not frames:
        return pd.DataFrame(columns=columns)
    return pd.concat(frames, ignore_index=True)[columns]


def seed_orderings(per_seed: pd.DataFrame) -> pd.DataFrame:
    """Per measure and pair of models, which is higher and whether that holds in every seed.

    ``measure, higher, lower, higher_mean, lower_mean, n_higher, n_lower, share_of_pairs,
    holds_in_every_seed``: ``higher`` is the model with the larger mean over its seeds;
    ``share_of_pairs`` the share of (seed of ``higher``, seed of ``lower``) pairs in which
    ``higher`` is above by more than :data:`TIE`. The ordering holds in every seed when every
    seed of ``higher`` is above every seed of ``lower`` (their seed ranges do not overlap, so
    it holds however the seeds are paired) and at least one of the two has :data:`MIN_SEEDS`
    seeds.
    """
    rows = []
    data = per_seed.dropna(subset=["value"])
    for measure in measure_order(data["measure"]):
        sub = data[data["measure"] == measure]
        values = {m: g["value"].to_numpy(dtype=float) for m, g in sub.groupby("model", sort=False)}
        models = list(values)
        for i, a in enumerate(models):
            for b in models[i + 1 :]:
                hi, lo = (a, b) if values[a].mean() >= values[b].mean() else (b, a)
                above = values[hi][:, None] - values[lo][None, :] > TIE
                enough = max(len(values[hi]), len(values[lo])) >= MIN_SEEDS
                rows.append(
                    {
                        "measure": measure,
                        "higher": hi,
                        "lower": lo,
                        "higher_mean": float(values[hi].mean()),
                        "lower_mean": float(values[lo].mean()),
                        "n_higher": len(values[hi]),
                        "n_lower": len(values[lo]),
                        "share_of_pairs": float(above.mean()),
                        "holds_in_every_seed": bool(enough and above.all()),
                    }
                )
    columns = [
        "measure",
        "higher",
        "lower",
        "higher_mean",
        "lower_mean",
        "n_higher",
        "n_lower",
        "share_of_pairs",
        "holds_in_every_seed",
    ]
    return pd.DataFrame(rows, columns=columns)


def _format_values(values: Iterable[float]) -> str:
    return encode_list(f"{v:.4g}" for v in values)


def seed_summary(per_seed: pd.DataFrame, orderings: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per model and measure: the mean over its seeds, the spread between seeds and
    the within-run interval beside it.

    ``model, measure, n_seeds, seeds, values, mean, sd, min, max, spread, within_half_width,
    holds_in_every_seed, rank``: ``sd`` is the standard deviation between seeds (NaN for one),
    ``spread`` = ``max - min``, ``within_half_width`` the mean half-width of the seeds'
    within-run intervals (:func:`run_measures`); ``holds_in_every_seed``: the model's order
    against every other model on this measure holds in every seed (:func:`seed_orderings`),
    and then ``rank`` is its place (1 = highest), else NaN.
    """
    orderings = seed_orderings(per_seed) if orderings is None else orderings
    rows = []
    data = per_seed.dropna(subset=["value"])
    for measure in measure_order(data["measure"]):
        sub = data[data["measure"] == measure]
        pairs = orderings[orderings["measure"] == measure]
        for model, g in sub.groupby("model", sort=False):
            v = g["value"].to_numpy(dtype=float)
            mine = pairs[(pairs["higher"] == model) | (pairs["lower"] == model)]
            holds = bool(len(mine)) and bool(mine["holds_in_every_seed"].all())
            half = ((g["ci_high"] - g["ci_low"]) / 2).astype(float)
            seeds = g["seed"]
            rows.append(
                {
                    "model": model,
                    "measure": measure,
                    "n_seeds": len(v),
                    "seeds": encode_list(str(s) for s in seeds.dropna()) or "one run",
                    "values": _format_values(v),
                    "mean": float(v.mean()),
                    "sd": float(v.std(ddof=1)) if len(v) > 1 else float("nan"),
                    "min": float(v.min()),
                    "max": float(v.max()),
                    "spread": float(v.max() - v.min()),
                    "within_half_width": float(half.mean()) if half.notna().any() else np.nan,
                    "holds_in_every_seed": holds,
                    "rank": float(1 + (mine["lower"] == model).sum()) if holds else np.nan,
                }
            )
    columns = [
        "model",
        "measure",
        "n_seeds",
        "seeds",
        "values",
        "mean",
        "sd",
        "min",
        "max",
        "spread",
        "within_half_width",
        "holds_in_every_seed",
        "rank",
    ]
    return pd.DataFrame(rows, columns=columns)


def seed_verdict(summary: pd.DataFrame, orderings: pd.DataFrame) -> str:
    """The comparison in plain language: per measure, the orderings that hold in every seed
    (with each model's mean and range over its seeds), or that none does."""
    if summary.empty:
        return "No strategy runs to compare yet."
    n_max = int(summary["n_seeds"].max())
    if n_max < MIN_SEEDS:
        return (
            "One run per model: no ordering is stated, since a single run cannot tell an "
            "effect from the spread between retrains. Set seeds (e.g. seeds: [0, 1, 2]) to "
            "train and dissect every trained strategy several times."
        )
    stats_ = summary.set_index(["model", "measure"])

    def describe(model: str, measure: str) -> str:
        row = stats_.loc[(model, measure)]
        if row["n_seeds"] < 2:
            return f"{model} ({row['mean']:.3g}, one run)"
        return (
            f"{model} (mean {row['mean']:.3g}, seeds {row['min']:.3g} to {row['max']:.3g}, "
            f"SD {row['sd']:.2g})"
        )

    seeds = sorted(
        {s for cell in summary["seeds"] for s in decode_list(cell) if s.isdigit()}, key=int
    )
    lines = [
        f"Over training seeds {', '.join(seeds)} (an ordering is stated only where it holds "
        "in every seed):"
    ]
    for measure in measure_order(summary["measure"]):
        pairs = orderings[orderings["measure"] == measure]
        held = pairs[pairs["holds_in_every_seed"]]
        label = measure_label(measure)
        if held.empty:
            lines.append(f"- {label}: no ordering holds in every seed.")
            continue
        stated = "; ".join(
            f"{describe(r.higher, measure)} > {describe(r.lower, measure)}"
            for r in held.itertuples()
        )
        rest = pairs[~pairs["holds_in_every_seed"]]
        tail = ""
        if len(rest):
            tail = "; not in every seed: " + ", ".join(
                f"{r.higher} vs {r.lower}" for r in rest.itertuples()
            )
        lines.append(f"- {label}: {stated}{tail}.")
    return "\n".join(lines)
