"""andlib.report.pitch: pitch networks compared per relative depth from their runs' tables."""

from __future__ import annotations

import pandas as pd

from andlib.report import pitch
from andlib.store import RunDir


def pitch_run(path, selectivity: float) -> RunDir:
    run = RunDir(path)
    run.write_csv(
        "pitch_layers.csv",
        pd.DataFrame(
            {
                "layer": ["layers.0", "classifier"],
                "depth": [0.0, 1.0],
                "selectivity_semitones": [selectivity, selectivity / 2],
                "top_attribute": ["f0", "f0"],
            }
        ),
    )
    run.write_json(
        "pitch_last_layer.json",
        {"methods": {"calibrated": {"within_1_semitone": selectivity / 10, "n_neurons": 4}}},
    )
    return run


def test_comparison_tables_are_long_per_layer_and_wide_per_method(tmp_path):
    runs = {"crepe": pitch_run(tmp_path / "a", 4.0), "pesto": pitch_run(tmp_path / "b", 2.0)}
    runs["empty"] = RunDir(tmp_path / "c")  # not scored yet: left out
    comparison, last = pitch.comparison_tables(runs)
    assert list(comparison.columns) == ["model", "layer", "depth", "metric", "value"]
    assert set(comparison["model"]) == {"crepe", "pesto"}
    assert set(comparison["metric"]) == {"selectivity_semitones"}  # top_attribute is text
    crepe = comparison[(comparison["model"] == "crepe") & (comparison["depth"] == 1.0)]
    assert crepe["value"].tolist() == [2.0]
    assert last.set_index("model")["within_1_semitone"].to_dict() == {"crepe": 0.4, "pesto": 0.2}


def test_a_single_networks_run_has_nothing_to_compare(tmp_cfg):
    cfg = tmp_cfg()
    assert pitch.run_stage(cfg, RunDir(cfg.run_path)) == {}
