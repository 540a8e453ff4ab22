"""andlib.models.registry: load_target asks the model's family."""

from __future__ import annotations

import pytest

from andlib.models.registry import load_target


@pytest.fixture
def saved_ast(tiny_ast, tmp_path):
    model, extractor = tiny_ast
    path = tmp_path / "tiny-ast"
    model.save_pretrained(path)
    extractor.save_pretrained(path)
    return path


def test_load_target_uses_a_local_folder_and_records_the_model_id(tmp_cfg, saved_ast):
    cfg = tmp_cfg({"model.name": str(saved_ast), "model.device": "cpu"})
    target = load_target(cfg)
    assert target.info["model_id"] == str(saved_ast) and target.label_names[0] == "class_0"
