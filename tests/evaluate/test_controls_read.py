"""andlib.evaluate.controls_read: which control runs the evaluate stage reads, and reading them."""

from __future__ import annotations

import pandas as pd
import pytest

from andlib.evaluate import controls_read as cr
from andlib.store import RunDir, control_run_path


def test_the_control_captioners_leave_out_the_configured_one(tmp_cfg):
    cfg = tmp_cfg(
        {"captioner.name": "acoustic", "evaluate.captioners": ["acoustic", "tagger+acoustic"]}
    )
    assert cr.control_captioners(cfg) == ["tagger+acoustic"]
    pitch = tmp_cfg({"model.name": "crepe-tiny", "evaluate.captioners": ["tagger+acoustic"]})
    assert cr.control_captioners(pitch) == [] and cr.sweep_rates(pitch) == []


def test_the_sweep_runs_only_with_metadata_captions(tmp_cfg):
    rates = {"evaluate.caption_sweep_rates": [0.0, 0.5]}
    with_meta = tmp_cfg({**rates, "evaluate.captioners": ["metadata+acoustic"]})
    assert cr.sweep_rates(with_meta) == [0.0, 0.5]
    assert cr.sweep_rates(tmp_cfg({**rates, "evaluate.captioners": ["acoustic"]})) == []
    assert cr.sweep_control(0.25) == "sweep-0.25" and cr.sweep_control(1.0) == "sweep-1"


def test_read_controls_returns_the_classifier_rows_of_the_runs_that_exist(tmp_cfg):
    cfg = tmp_cfg(
        {"captioner.name": "acoustic", "evaluate.captioners": ["tagger+acoustic", "metadata"]}
    )
    run = RunDir(cfg.run_path)
    made = RunDir(control_run_path(run, "tagger+acoustic"))
    rows = pd.DataFrame({"layer": ["classifier", "layers.0.mlp"], "neuron": [0, 1]})
    made.write_csv("neurons.csv", rows)
    controls = cr.read_controls(cfg, run)
    assert list(controls) == ["tagger+acoustic"]  # "metadata" has no control run yet
    assert controls["tagger+acoustic"]["layer"].tolist() == ["classifier"]
    with pytest.raises(FileNotFoundError, match="control run 'metadata'"):
        cr._control_rows(controls, "metadata")
