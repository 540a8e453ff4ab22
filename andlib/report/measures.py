"""The scalar measures of a run (:func:`andlib.report.seeds.run_measures`), their
plain-language labels and their order: shared by the analyses and the plots."""

from __future__ import annotations

from collections.abc import Iterable

MEASURES = {
    "heldout_accuracy": "held-out classification accuracy",
    "class_purity_hidden": "class purity of the top-K clips, hidden layers",
    "class_purity_slope": "class purity, slope per block (hidden layers)",
    "class_purity_classifier": "class purity, classifier neurons",
    "polysemantic_hidden": "polysemantic fraction, hidden layers",
    "polysemantic_slope": "polysemantic fraction, slope per block (hidden layers)",
    "simulation_pearson": "simulation score (mean Pearson r of descriptions), all layers",
}
"""The scalar measures of one run (:func:`run_measures`) and their labels; the run's
last-layer accuracies add ``last_layer_top1: <captioner> / <method>``, the per-seed tables
(:mod:`andlib.report.seed_tables`) ``hidden_top1: <method>`` and ``pruning: <selection>``."""


def measure_label(measure: str) -> str:
    """A plain-language name of a measure of :func:`run_measures`."""
    if measure.startswith("last_layer_top1: "):
        return f"last-layer description accuracy (top-1), {measure.split(': ', 1)[1]}"
    if measure.startswith("hidden_top1: "):
        return f"hidden-layer description accuracy (top-1), {measure.split(': ', 1)[1]}"
    if measure.startswith("pruning: "):
        return f"pruning ΔA − ΔR (logits), {measure.split(': ', 1)[1]} neurons"
    return MEASURES.get(measure, measure)


def measure_order(measures: Iterable[str]) -> list[str]:
    """Distinct measures, those of :data:`MEASURES` first in its order, then the rest sorted."""
    known = list(MEASURES)
    return sorted(set(measures), key=lambda m: (known.index(m) if m in known else len(known), m))
