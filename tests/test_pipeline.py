"""End to end: `reproduce` runs every numbered notebook with papermill on the smoke config."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from andlib.config import load_config
from andlib.pipeline import NotebookFailed, notebooks, reproduce, reproduction_plan
from tests.conftest import requires_esc50


def test_reproduction_plan_runs_each_strategy_then_the_comparison():
    cfg = load_config("configs/strategies.yaml")
    plan = reproduction_plan(cfg, [])
    books = notebooks()
    assert len(plan) == 3 * len(books) + 1
    first = plan[0][1]
    assert "model.name=trained:supervised" in first and "strategies=[]" in first
    assert any(o.startswith("run_dir=") and o.endswith("/supervised") for o in first)
    last_nb, last_overrides, last_folder = plan[-1]
    assert (
        last_nb.name.startswith("06_")
        and last_overrides == []
        and last_folder == cfg.run_path / "notebooks"
    )


def test_reproduction_plan_targets_the_checkpoint_a_strategy_maps_to():
    from andlib.train import strategies_to_train

    cfg = load_config("configs/strategies-online.yaml")
    plan = reproduction_plan(cfg, [])
    by_strategy = {
        Path(o.split("=", 1)[1]).name: ov
        for _, ov, _ in plan
        for o in ov
        if o.startswith("run_dir=")
    }
    assert (
        "model.name=shreyahegde/ast-finetuned-audioset-10-10-0.450_ESC50"
        in by_strategy["supervised"]
    )
    assert "model.name=trained:ssl-frozen" in by_strategy["ssl-frozen"]
    sub = load_config("configs/strategies-online.yaml", by_strategy["ssl-frozen"])
    assert sub.strategies == [] and sub.strategy_models == {}
    assert sub.train.init == "facebook/hubert-base-ls960"
    assert strategies_to_train(cfg) == ["ssl-frozen", "ssl-finetuned"]


@pytest.mark.slow
@requires_esc50
def test_reproduce_executes_every_notebook_on_the_smoke_config(tmp_path):
    overrides = [f"cache_dir={tmp_path / 'cache'}", f"figures_dir={tmp_path / 'figures'}"]
    out = reproduce("configs/smoke.yaml", overrides, out=str(tmp_path / "run"))
    executed = sorted(p.name for p in (out / "notebooks").glob("*.ipynb"))
    assert executed == [p.name for p in notebooks()]
    model = json.loads((out / "model.json").read_text())
    assert model["model_id"] == "trained:supervised" and "heldout_accuracy" in model
    neurons = pd.read_csv(out / "neurons.csv")
    topk = pd.read_csv(out / "neuron_topk.csv")
    assert len(neurons) == len(topk[["layer", "neuron"]].drop_duplicates())
    assert (out / "last_layer.json").exists() and (out / "pruning.csv").exists()
    assert (out / "simulation_scores.csv").exists()
    figures = {p.stem for p in (tmp_path / "figures").glob("*.png")}
    assert {
        "adjective_distribution",
        "adjectives_per_layer",
        "polysemantic_neurons",
        "last_layer_accuracy",
    } <= figures


def test_reproduce_names_the_failing_notebook_and_cell(tmp_path, monkeypatch):
    import andlib.pipeline as pipeline

    bad = tmp_path / "nb"
    bad.mkdir()
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata = {
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
    }
    params = nbformat.v4.new_code_cell("config_path = ''\noverrides = []")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell("raise ValueError('boom')")]
    nbformat.write(nb, str(bad / "00_fails.ipynb"))
    monkeypatch.setattr(pipeline, "NOTEBOOK_DIR", bad)
    with pytest.raises(NotebookFailed, match=r"00_fails\.ipynb failed in cell .*ValueError: boom"):
        reproduce("configs/smoke.yaml", [f"cache_dir={tmp_path / 'c'}"], out=str(tmp_path / "run"))
