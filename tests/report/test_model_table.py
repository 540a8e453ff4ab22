"""The models table: each model's measures read from its own run's files."""

from __future__ import annotations

import logging

import pandas as pd
import pytest

from andlib.config import Config, ConfigError, load_config
from andlib.report.model_table import model_table, models_layers, reference_runs
from andlib.store import RunDir


def _run(tmp_path, name: str, held: float, hidden: float, prune: float) -> RunDir:
    run = RunDir(tmp_path / name)
    run.path.mkdir(parents=True, exist_ok=True)
    run.write_json("model.json", {"model_id": name, "heldout_accuracy": held})
    run.write_json(
        "last_layer.json",
        {"tagger+acoustic": {"db_wpmi": {"top1": 0.9}, "db_cos": {"top1": 0.1}}},
    )
    run.write_csv(
        "hidden_layer_accuracy.csv",
        pd.DataFrame(
            {
                "layer": ["h", "all hidden", "all hidden"],
                "method": ["db_wpmi", "db_wpmi", "db_cos"],
                "top1": [0.0, hidden, 0.2],
                "chance_top1": [0.0, 0.05, 0.05],
            }
        ),
    )
    run.write_csv(
        "pruning_summary.csv",
        pd.DataFrame(
            {
                "strategy": ["db", "random"],
                "vs_random_mean": [prune, None],
                "vs_random_ci_low": [prune - 0.1, None],
                "vs_random_ci_high": [prune + 0.1, None],
                "share_pruned_mean": [0.03, 0.03],
            }
        ),
    )
    (run.path / "analysis").mkdir()
    pd.DataFrame(
        {
            "layer": ["a", "b", "classifier"],
            "depth": [0, 2, 3],
            "mean_purity": [0.4, 0.6, 0.9],
            "chance": [0.2, 0.2, 0.2],
        }
    ).to_csv(run.path / "analysis/class_purity_per_layer.csv", index=False)
    pd.DataFrame({"layer": ["a", "b", "classifier"], "fraction": [0.5, 0.3, 0.0]}).to_csv(
        run.path / "analysis/polysemantic_per_layer.csv", index=False
    )
    return run


def test_model_table_reads_each_measure_of_the_default_db_function(tmp_path):
    runs = {"m1": _run(tmp_path, "m1", 0.5, 0.8, 0.4), "m2": _run(tmp_path, "m2", 0.8, 0.7, 0.2)}
    table = model_table(runs, "wpmi").set_index("model")
    assert table.loc["m1", "heldout_accuracy"] == 0.5
    assert table.loc["m2", "table2_tagger+acoustic"] == 0.9
    assert table.loc["m1", "hidden_top1"] == 0.8 and table.loc["m2", "hidden_top1"] == 0.7
    assert table.loc["m2", "prune_db_vs_random"] == 0.2
    assert table.loc["m2", "prune_ci_low"] == pytest.approx(0.1)
    # hidden layers only: the classifier's purity is left out of the mean
    assert table.loc["m1", "class_purity"] == pytest.approx(0.5)
    assert table.loc["m1", "polysemantic_share"] == pytest.approx(0.4)


def test_models_layers_put_models_of_different_depth_on_one_axis(tmp_path):
    layers = models_layers({"m1": _run(tmp_path, "m1", 0.5, 0.8, 0.4)})
    assert layers["layer"].tolist() == ["a", "b"]
    assert layers["relative_depth"].tolist() == [0.0, 1.0]


def test_a_missing_reference_run_is_left_out_with_the_command_that_makes_it(tmp_path, caplog):
    ref = tmp_path / "ref.yaml"
    ref.write_text(f"name: ref\nrun_dir: {tmp_path / 'nowhere'}\n")
    cfg = Config(strategies=["supervised"], reference_runs={"ast": str(ref)})
    with caplog.at_level(logging.WARNING):
        assert reference_runs(cfg) == {}
    assert f"make reproduce CONFIG={ref}" in caplog.text


def test_an_existing_reference_run_is_read_from_its_own_directory(tmp_path):
    run = _run(tmp_path, "ast", 0.5, 0.8, 0.4)
    (run.path / "neurons.csv").write_text("layer,neuron\n")
    ref = tmp_path / "ref.yaml"
    ref.write_text(f"name: ref\nrun_dir: {run.path}\n")
    cfg = Config(strategies=["supervised"], reference_runs={"ast": str(ref)})
    assert reference_runs(cfg)["ast"].path == run.path


def test_reference_runs_must_name_config_files(tmp_path):
    bad = tmp_path / "c.yaml"
    bad.write_text("strategies: [supervised]\nreference_runs: {ast: 3}\n")
    with pytest.raises(ConfigError, match="reference_runs.ast"):
        load_config(bad)
