"""andlib.report.figures: the figures stage draws what the run's tables hold, nothing more."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
import pytest

from andlib.evaluate.prune_stats import COLUMNS, pruning_summary
from andlib.report import figures
from andlib.store import RunDir


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def pruning_rows() -> pd.DataFrame:
    rows = []
    for strategy, delta_a in (("ocp", 0.8), ("db", 0.5), ("random", 0.1)):
        for concept in ("dog", "rain", "water_drops"):
            rows.append(
                {
                    "strategy": strategy,
                    "concept": concept,
                    "draw": 0,
                    "n_pruned": 3,
                    "share_pruned": 0.1,
                    "acted": True,
                    "delta_a": delta_a,
                    "delta_r": 0.1,
                    "delta_a_prob": delta_a / 2,
                    "delta_r_prob": 0.05,
                    "acc_a_before": 0.9,
                    "acc_a_after": 0.9 - delta_a / 2,
                    "acc_r_before": 0.8,
                    "acc_r_after": 0.78,
                }
            )
    return pd.DataFrame(rows, columns=COLUMNS)


def test_an_empty_run_draws_nothing(tmp_cfg):
    cfg = tmp_cfg()
    assert figures.run_stage(cfg, RunDir(cfg.run_path)) == {"figures": []}


def test_the_pruning_figures_are_drawn_from_the_prune_stages_tables(tmp_cfg):
    cfg = tmp_cfg({"prune.concept": "water_drops"})
    run = RunDir(cfg.run_path)
    df = pruning_rows()
    run.write_csv("pruning.csv", df)
    run.write_csv("pruning_summary.csv", pruning_summary(df, n_resamples=50))
    drawn = figures.run_stage(cfg, run)["figures"]
    assert drawn == ["pruning_summary", "pruning_water_drops"]
    assert (cfg.figures_path / "pruning_summary.png").is_file()
    assert (cfg.figures_path / "pruning_water_drops.pdf").is_file()
