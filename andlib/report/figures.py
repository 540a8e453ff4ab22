"""The figures stage: draws the evaluation's and the pruning's figures from their tables.

The evaluate and prune stages write tables only; this stage, which the pipeline runs after
each of them, draws what their tables hold (:data:`FIGURES`) into ``figures_dir``. Every
figure is drawn from the run's files each time, so a deleted figure is drawn again and a
figure always shows the table beside it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from andlib.config import Config
from andlib.store import RunDir, read_pruning, read_pruning_summary, read_scores, read_table
from andlib.text.names import normalize_concept

STAGE = "figures"


def _last_layer(cfg: Config, run: RunDir) -> list[str]:
    from andlib.report import plots

    results = run.read_json("last_layer.json") if run.exists("last_layer.json") else {}
    if not results:
        return []
    plots.save_and_close(plots.last_layer_table(results), "last_layer_accuracy", cfg)
    return ["last_layer_accuracy"]


def _caption_quality(cfg: Config, run: RunDir) -> list[str]:
    from andlib.report import plots

    if not run.exists("caption_quality.csv"):
        return []
    sweep = read_table(run, "caption_quality.csv")
    if sweep.empty:
        return []
    plots.save_and_close(plots.caption_quality(sweep), "caption_quality", cfg)
    return ["caption_quality"]


def _simulation(cfg: Config, run: RunDir) -> list[str]:
    from andlib.report import plots

    scores = read_scores(run) if run.exists("scores.csv") else None
    if scores is None or not (scores["scorer"] == "simulation").any():
        return []
    plots.save_and_close(plots.simulation_by_layer(scores), "simulation_scores", cfg)
    return ["simulation_scores"]


def _pruning(cfg: Config, run: RunDir) -> list[str]:
    from andlib.evaluate.prune import average_draws
    from andlib.report import plots

    summary = read_pruning_summary(run)
    if summary is None:
        return []
    drawn = []
    if not summary.empty:
        plots.save_and_close(plots.pruning_summary_bars(summary), "pruning_summary", cfg)
        drawn.append("pruning_summary")
    df = read_pruning(run)
    named = df[df["concept"].map(normalize_concept) == normalize_concept(cfg.prune.concept)]
    if not named.empty:
        fig = plots.pruning_concept_bars(average_draws(named), cfg.prune.concept)
        plots.save_and_close(fig, f"pruning_{cfg.prune.concept}", cfg)
        drawn.append(f"pruning_{cfg.prune.concept}")
    return drawn


FIGURES: dict[str, Callable[[Config, RunDir], list[str]]] = {
    "last_layer.json": _last_layer,
    "caption_quality.csv": _caption_quality,
    "scores.csv": _simulation,
    "pruning_summary.csv": _pruning,
}
"""The table each figure is drawn from -> the function that draws it (returns the figure names)."""


def run_stage(cfg: Config, run: RunDir) -> dict[str, Any]:
    """Draw every figure whose table the run holds; ``{"figures": [names]}``."""
    drawn = [name for draw in FIGURES.values() for name in draw(cfg, run)]
    run.logger(STAGE).info("figures: %s -> %s", ", ".join(drawn) or "none", cfg.figures_path)
    return {"figures": drawn}
