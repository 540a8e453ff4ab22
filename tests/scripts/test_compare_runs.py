"""scripts/compare_runs.py: two run directories compared byte for byte, else within a float
tolerance, with every decision (name, label, count) equal."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pandas as pd
import pytest

from andlib.config import PROJECT_ROOT
from andlib.store import RunDir, encode_list


@pytest.fixture(scope="module")
def compare_runs():
    spec = importlib.util.spec_from_file_location(
        "compare_runs", PROJECT_ROOT / "scripts" / "compare_runs.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_run(path, value: float = 0.5, concept: str = "dog", key: str = "k1") -> RunDir:
    run = RunDir(path)
    run.write_csv(
        "neurons.csv",
        pd.DataFrame(
            {
                "layer": ["classifier"],
                "neuron": [0],
                "db_cos": [concept],
                "db_cos_top5_scores": [encode_list([f"{value:.9g}", "0.25"])],
                "top_clips": [encode_list(["008 - Chainsaw/3-118658-B", "a;b"])],
            }
        ),
    )
    run.write_json("last_layer.json", {"acoustic": {"db_cos": {"top1": value, "n_neurons": 4}}})
    np.save(run / "acts.npy", np.array([[value, 1.0]], dtype=np.float32))
    run.mark_done("concepts", key, outputs=[])
    run.mark_done("record", "r1", outputs=[])
    run.write_json("model.json", {"train_seconds": value})  # ignored by default
    return run


def test_identical_runs_are_the_same(compare_runs, tmp_path, capsys):
    a, b = make_run(tmp_path / "a"), make_run(tmp_path / "b")
    assert compare_runs.compare(a.path, b.path, compare_runs.DEFAULT_IGNORE, 1e-5) == 0
    out = capsys.readouterr().out
    assert "3 files identical, 0 equal within 1e-05, 0 differ" in out
    assert "stage keys moved: none" in out


def test_float_noise_is_within_tolerance_and_a_moved_key_is_listed(compare_runs, tmp_path, capsys):
    a = make_run(tmp_path / "a", value=0.5)
    b = make_run(tmp_path / "b", value=0.5000001, key="k2")
    assert compare_runs.compare(a.path, b.path, compare_runs.DEFAULT_IGNORE, 1e-5) == 0
    out = capsys.readouterr().out
    assert "equal within 1e-05: neurons.csv" in out and "equal within 1e-05: acts.npy" in out
    assert "stage keys moved: .stages/concepts.json" in out
    assert compare_runs.compare(a.path, b.path, (), 1e-5, strict_keys=True) == 1


def test_a_changed_decision_or_a_larger_difference_differs(compare_runs, tmp_path, capsys):
    a = make_run(tmp_path / "a")
    assert compare_runs.compare(a.path, make_run(tmp_path / "b", concept="cat").path, (), 1e-5)
    assert "row 1, db_cos: 'dog' != 'cat'" in capsys.readouterr().out
    assert compare_runs.compare(a.path, make_run(tmp_path / "c", value=0.51).path, (), 1e-5)
    assert "differs: last_layer.json (/acoustic/db_cos/top1: 0.5 != 0.51)" in (
        capsys.readouterr().out
    )


def test_counts_and_list_items_compare_exactly(compare_runs):
    assert compare_runs.same_text("3", "3", 1e-5) and not compare_runs.same_text("3", "4", 1e-5)
    assert compare_runs.same_text("0.1;0.2", "0.1000001;0.2", 1e-5)
    assert not compare_runs.same_text("a;b", "a;c", 1e-5)
    assert compare_runs.same_value({"n": [1, 2.0]}, {"n": [1, 2.0000001]}, 1e-5) is None
    assert compare_runs.same_value({"n": 1}, {"n": 2}, 1e-5) == "/n: 1 != 2"
    assert json.loads("NaN") != json.loads("NaN")  # NaN is never equal ...
    assert compare_runs.same_value(float("nan"), float("nan"), 1e-5) is None  # ... but the same
