"""andlib.models.train_stage: the train stage trains each planned model once, reuses the cache,
is keyed by the model folders it makes, and has nothing to do for a hub model."""

from __future__ import annotations

import json

import pytest

from andlib.models import train, train_stage
from andlib.store import RunDir
from tests.conftest import requires_esc50

pytestmark = pytest.mark.usefixtures("one_thread")


@requires_esc50
def test_ensure_trained_reuses_the_cached_model(tiny_cfg, monkeypatch):
    cfg = tiny_cfg()
    path = train.ensure_trained(cfg, "supervised")
    stamp = (path / train.METRICS_FILE).stat().st_mtime_ns

    def must_not_train(*args, **kwargs):
        raise AssertionError("trained again")

    monkeypatch.setattr(train, "train_model", must_not_train)
    assert train.ensure_trained(cfg, "supervised") == path
    assert (path / train.METRICS_FILE).stat().st_mtime_ns == stamp
    assert train_stage.run_stage(cfg, RunDir(cfg.run_path))["model_dir"] == str(path)


def test_run_stage_trains_every_strategy_once_per_seed(tiny_cfg, monkeypatch, tmp_path):
    cfg = tiny_cfg(strategies=["supervised", "ssl-frozen"], seeds=[0, 3])
    trained = []

    def fake_ensure_trained(c, strategy):
        trained.append((strategy, c.train.seed))
        path = tmp_path / f"{strategy}-{c.train.seed}"
        path.mkdir()
        (path / train.METRICS_FILE).write_text(json.dumps({"heldout_accuracy": 0.5}))
        return path

    monkeypatch.setattr(train, "ensure_trained", fake_ensure_trained)
    summary = train_stage.run_stage(cfg, RunDir(cfg.run_path))
    assert sorted(trained) == [
        ("ssl-frozen", 0),
        ("ssl-frozen", 3),
        ("supervised", 0),
        ("supervised", 3),
    ]
    assert summary["ssl-frozen.seed3.model_dir"] == str(tmp_path / "ssl-frozen-3")
    assert summary["supervised.seed0.heldout_accuracy"] == 0.5


def test_the_train_stage_is_keyed_by_the_model_folders_it_makes(tiny_cfg, monkeypatch, tmp_path):
    def fake_ensure_trained(c, strategy):
        path = tmp_path / "models" / train.model_dir(c, strategy).name
        path.mkdir(parents=True, exist_ok=True)
        (path / train.METRICS_FILE).write_text("{}")
        return path

    monkeypatch.setattr(train, "ensure_trained", fake_ensure_trained)
    cfg = tiny_cfg()
    run = RunDir(cfg.run_path)
    train_stage.run_stage(cfg, run)
    key = run.stage_key("train")
    assert key == train_stage.SPEC.key(cfg, run) and run.is_fresh("train", key)
    # a setting the supervised model does not read keeps the key; one it reads moves it
    assert train_stage.SPEC.key(tiny_cfg(**{"train.pretrain_epochs": 9}), run) == key
    assert train_stage.SPEC.key(tiny_cfg(**{"train.lr": 0.01}), run) != key
    assert train_stage.SPEC.key(tiny_cfg(**{"k": 9, "prune.max_concepts": 1}), run) == key


def test_run_stage_has_nothing_to_train_for_a_hub_model(tiny_cfg):
    cfg = tiny_cfg(**{"model.name": "MIT/ast-finetuned-audioset-10-10-0.4593"})
    assert "nothing to train" in train_stage.run_stage(cfg, RunDir(cfg.run_path))["train"]
