"""andlib.models.families.trained: the project's trained model is loaded, never trained."""

from __future__ import annotations

import shutil

import pytest

from andlib.models import registry as models
from andlib.models import train
from andlib.models.base import ModelLoadError


@pytest.fixture
def saved_ast(tiny_ast, tmp_path):
    model, extractor = tiny_ast
    path = tmp_path / "tiny-ast"
    model.save_pretrained(path)
    extractor.save_pretrained(path)
    return path


def test_load_target_loads_the_trained_model_and_never_trains(tmp_cfg, saved_ast, monkeypatch):
    cfg = tmp_cfg({"model.name": "trained:ssl-frozen", "model.device": "cpu"})

    def must_not_train(*args, **kwargs):
        raise AssertionError("loading trained a model")

    monkeypatch.setattr(train, "train_model", must_not_train)
    with pytest.raises(ModelLoadError, match=r"not trained yet .*python -m andlib train --config"):
        models.load_target(cfg)
    dest = train.model_dir(cfg, "ssl-frozen")
    shutil.copytree(saved_ast, dest)
    (dest / train.METRICS_FILE).write_text('{"strategy": "ssl-frozen"}')
    target = models.load_target(cfg)
    assert target.info["model_id"] == "trained:ssl-frozen" and target.label_names[0] == "class_0"
