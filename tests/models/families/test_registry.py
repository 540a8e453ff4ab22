"""andlib.models.families.registry: names find their family, and a new family needs no stage
edit."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from andlib.models.base import BlockPreset, ModelLoadError, TargetModel
from andlib.models.families import registry
from andlib.models.families.base import Family
from andlib.models.registry import load_target
from andlib.store import RunDir


@pytest.mark.parametrize(
    ("name", "family"),
    [
        ("whisper-tiny.en", "whisper"),
        ("whisper-base", "whisper"),
        ("openai/whisper-small", "whisper"),
        ("crepe-tiny", "pitch"),
        ("pesto@10ms", "pitch"),
        ("trained:supervised", "trained"),
        ("trained:", "trained"),
        ("MIT/ast-finetuned-audioset-10-10-0.4593", "huggingface"),
        ("whisper-huge", "huggingface"),
        ("/some/folder", "huggingface"),
    ],
)
def test_a_name_belongs_to_one_family(name, family):
    assert registry.family_of(name).name == family


def test_family_properties_replace_name_tests():
    assert registry.family_of("crepe-full").outputs == "pitch"
    assert registry.family_of("whisper-base").outputs == "classes"
    assert registry.family_of("trained:ssl-frozen").trains
    assert not registry.family_of("whisper-base").trains
    presets = registry.all_presets()
    assert {"ast", "wav2vec2", "crepe", "pesto", "whisper"} <= set(presets)
    assert registry.all_preset_aliases()["pitch"] == ("crepe", "pesto")


class _Toy(nn.Module):
    """Two blocks, each a linear layer and a ReLU, over frames of 10 samples."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.stack = nn.ModuleList(nn.Sequential(nn.Linear(10, 6), nn.ReLU()) for _ in range(2))
        self.stack[1][0] = nn.Linear(6, 6)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        x = audio[:, : audio.shape[1] // 10 * 10].reshape(audio.shape[0], -1, 10)
        for block in self.stack:
            x = block(x)
        return x


def _load_toy(cfg):
    def preprocess(batch):
        return {"audio": torch.from_numpy(np.stack([np.asarray(a, np.float32) for a in batch]))}

    return TargetModel(_Toy(), preprocess, 16000, cfg.model.name, None, {"source": "test"})


TOY = Family(
    name="toy",
    matches=lambda name: name.startswith("toy-"),
    load=_load_toy,
    names=("toy-<n>",),
    presets={"toy": BlockPreset(containers=("stack",), parts={"act": ("1",)})},
)


@pytest.fixture
def toy_family():
    registry.register(TOY)
    yield TOY
    registry.unregister("toy")


def test_a_registered_family_loads_by_name_and_records_without_a_stage_edit(toy_family, tmp_cfg):
    from andlib.models.activations import run_stage

    assert registry.family_of("toy-1") is toy_family
    cfg = tmp_cfg(
        {
            "model.name": "toy-1",
            "model.device": "cpu",
            "model.batch_size": 3,
            "record.layers": ["preset:toy"],
            "data.dataset": "synthetic",
            "data.limit": 5,
            "data.duration": 0.5,
            "k": 2,
        }
    )
    target = load_target(cfg)
    assert target.info["family"] == "toy" and target.info["model_id"] == "toy-1"
    run = RunDir.from_config(cfg)
    summary = run_stage(cfg, run)
    assert summary["clips"] == 5 and summary["neurons"] == 12
    info = json.loads((run.path / "model.json").read_text())
    assert info["layers"]["layers.1.act"] == {"module": "stack.1.1", "n_neurons": 6}
    assert info["family"] == "toy" and info["model_id"] == "toy-1"


def test_unregistered_names_fall_back_and_built_in_names_are_reserved(toy_family):
    registry.unregister("toy")
    assert registry.family_of("toy-1").name == "huggingface"
    assert "toy" not in registry.all_presets()
    with pytest.raises(ValueError, match="built in"):
        registry.register(Family(name="whisper", matches=lambda n: False, load=_load_toy))


def test_the_generic_family_reports_an_unloadable_name(tmp_cfg, tmp_path):
    cfg = tmp_cfg({"model.name": str(tmp_path / "nothing-here"), "model.device": "cpu"})
    with pytest.raises(ModelLoadError, match="nothing-here"):
        load_target(cfg)


def test_a_family_block_at_its_defaults_leaves_the_model_key_as_it_was(tmp_cfg):
    from andlib.config import stable_hash

    cfg = tmp_cfg()
    model = cfg.to_dict()["model"]
    assert model["whisper"] == {"input": "trimmed", "head": False, "head_c": 1.0}
    del model["whisper"]  # the model section as it was before families had blocks
    assert cfg.section_hash("model") == stable_hash({"parts": {"model": model}, "extra": None})
    padded = tmp_cfg({"model.whisper.input": "padded"})
    assert padded.section_hash("model") != cfg.section_hash("model")


def test_the_record_key_follows_the_whisper_block(tmp_cfg):
    from andlib.config import ConfigError
    from andlib.models.activations import SPEC

    def key(**over):
        cfg = tmp_cfg({"model.name": "whisper-tiny.en", **over})
        return SPEC.key(cfg, RunDir.from_config(cfg))

    trimmed = key()
    assert key() == trimmed
    assert key(**{"model.whisper.input": "padded"}) != trimmed
    assert key(**{"model.whisper.head": True}) != trimmed
    assert key(**{"model.whisper.head": True, "train.heldout_fold": 4}) != key(
        **{"model.whisper.head": True}
    )
    with pytest.raises(ConfigError, match="model.whisper.input"):
        tmp_cfg({"model.whisper.input": "cropped"})
