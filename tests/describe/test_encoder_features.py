"""The tagger on an encoder's pooled features, and the refusal to caption a model with itself."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from andlib.config import ConfigError
from andlib.data.probing import load_probing_set
from andlib.describe import encoder_features as ef
from andlib.describe.captioners import audio_digest
from andlib.describe.captioning import SPEC, get_captioner
from andlib.describe.tagger import TaggerCaptioner
from andlib.models.base import TargetModel
from andlib.models.families import registry
from andlib.models.families.base import Family
from andlib.store import RunDir


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("whisper-base", "openai/whisper-base", True),
        ("whisper-base", "openai/whisper-base.en", True),
        ("whisper-tiny.en", "openai/whisper-tiny", True),
        ("whisper-base", "whisper-tiny.en", False),
        ("whisper-base", "openai/whisper-small", False),
        ("whisper-base", "trained:supervised", False),
        (
            "MIT/ast-finetuned-audioset-10-10-0.4593",
            "mit/AST-finetuned-audioset-10-10-0.4593",
            True,
        ),
    ],
)
def test_names_of_one_family_and_size_are_one_model(a, b, same):
    assert ef.same_model(a, b) is same
    assert ef.same_model(b, a) is same


@pytest.mark.parametrize("target", ["whisper-base", "openai/whisper-base"])
def test_a_tagger_on_the_targets_own_model_is_refused_naming_both(tmp_cfg, target):
    cfg = tmp_cfg(
        {
            "model.name": target,
            "captioner.name": "tagger+acoustic",
            "captioner.tagger_features": "whisper-base",
        }
    )
    with pytest.raises(ConfigError) as info:
        get_captioner(cfg)
    message = str(info.value)
    assert "\n" not in message
    assert "captioner.tagger_features: whisper-base" in message
    assert f"model.name: {target}" in message and "allow_same_model" in message


def test_the_refusal_is_lifted_on_request_and_absent_for_other_targets(tmp_cfg):
    same = {
        "model.name": "whisper-base",
        "captioner.name": "tagger+acoustic",
        "captioner.tagger_features": "whisper-base",
    }
    allowed = get_captioner(tmp_cfg({**same, "captioner.allow_same_model": True}))
    assert isinstance(allowed, TaggerCaptioner)
    for target in ("whisper-tiny.en", "trained:supervised"):
        cap = get_captioner(tmp_cfg({**same, "model.name": target}))
        assert cap.settings["tagger_features"] == "whisper-base"
        assert cap.settings["features"] == cap.acoustic.settings["features"]
        assert cap.settings["layer"] == ef.TAGGER_ENCODERS["whisper-base"]
    hand = get_captioner(tmp_cfg({**same, "captioner.tagger_features": "hand"}))
    assert "tagger_features" not in hand.settings and "layer" not in hand.settings


def test_a_transformers_captioner_on_the_targets_model_is_refused(tmp_cfg):
    cfg = tmp_cfg(
        {"model.name": "whisper-base", "captioner.name": "transformers:openai/whisper-base"}
    )
    with pytest.raises(ConfigError, match="captioner.name: openai/whisper-base"):
        get_captioner(cfg)


def test_the_caption_key_changes_with_the_tagger_features_only(tmp_cfg):
    base = {"captioner.name": "tagger+acoustic"}
    default = tmp_cfg(base)
    run = RunDir.from_config(default)
    whisper = tmp_cfg({**base, "captioner.tagger_features": "whisper-base"})
    explicit = tmp_cfg({**base, "captioner.tagger_features": "hand+extra"})
    assert SPEC.key(default, run) == SPEC.key(explicit, run)
    assert SPEC.key(default, run) != SPEC.key(whisper, run)


# --------------------------------------------------------------------------------------------
# Features through the model-family registry, cached per clip
# --------------------------------------------------------------------------------------------


class _Encoder(nn.Module):
    """Two blocks over frames of 100 samples; ``pooled_blocks`` as a Whisper target gives."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.blocks = nn.ModuleList(
            nn.Linear(100, 3) if i == 0 else nn.Linear(3, 3) for i in (0, 1)
        )

    def pooled_blocks(self, audio: torch.Tensor) -> dict[str, torch.Tensor]:
        x = audio[:, : audio.shape[1] // 100 * 100].reshape(audio.shape[0], -1, 100)
        out = {}
        for i, block in enumerate(self.blocks):
            x = torch.tanh(block(x))
            out[f"layers.{i}.out"] = x.mean(1)
        return out


LOADS: list[str] = []


def _load(cfg):
    LOADS.append(cfg.model.name)

    def preprocess(batch):
        return {"audio": torch.from_numpy(np.stack([np.asarray(a, np.float32) for a in batch]))}

    return TargetModel(_Encoder(), preprocess, 16000, cfg.model.name, None, {})


@pytest.fixture
def encoder_family():
    family = Family(name="toy-encoder", matches=lambda n: n == "toy-encoder", load=_load)
    registry.register(family)
    LOADS.clear()
    yield family
    registry.unregister("toy-encoder")


def test_features_come_from_the_registry_and_are_cached_per_clip(encoder_family, tmp_cfg):
    cfg = tmp_cfg({"data.dataset": "synthetic", "data.limit": 6, "data.duration": 0.5})
    ps = load_probing_set(cfg)
    digests = [audio_digest(a, ps.sample_rate) for a in ps.audio]
    store = ef.EncoderFeatures(cfg, "toy-encoder", layer="layers.1.out")
    x = store.get(ps.audio[:4], digests[:4], ps.sample_rate)
    assert LOADS == ["toy-encoder"] and x.shape == (4, 3)
    direct = _Encoder().pooled_blocks(torch.from_numpy(np.stack(ps.audio[:4])))["layers.1.out"]
    assert np.allclose(x, direct.detach().numpy(), atol=1e-6)
    again = ef.EncoderFeatures(cfg, "toy-encoder", layer="layers.1.out")
    assert np.array_equal(again.get(ps.audio[:4], digests[:4], ps.sample_rate), x)
    assert LOADS == ["toy-encoder"]  # every clip was cached: no model loaded
    both = again.get(ps.audio, digests, ps.sample_rate)
    assert LOADS == ["toy-encoder"] * 2 and np.array_equal(both[:4], x)
    assert store.path.parent == cfg.cache_path / "taggers"
    assert set(again.blocks(ps.audio, digests, ps.sample_rate)) == {"layers.0.out", "layers.1.out"}


def test_the_encoder_runs_as_the_tagger_needs_it_whatever_the_target(tmp_cfg):
    cfg = tmp_cfg({"model.name": "trained:supervised", "model.whisper.input": "padded"})
    sub = ef.encoder_config(cfg, "whisper-base")
    assert sub.model.name == "whisper-base" and sub.model.dtype == "float32"
    assert sub.model.whisper.input == "trimmed" and not sub.model.whisper.head
    assert cfg.model.name == "trained:supervised"  # the run's own config is untouched


@pytest.mark.slow
def test_whisper_base_features_are_its_pooled_block_output(tmp_cfg):
    from andlib.models.families.whisper import load_whisper

    cfg = tmp_cfg({"model.device": "cpu"})
    rng = np.random.default_rng(0)
    audio = [(0.1 * rng.standard_normal(16000 * n)).astype(np.float32) for n in (1, 2)]
    store = ef.EncoderFeatures(cfg, "whisper-base")
    x = store.get(audio, [audio_digest(a, 16000) for a in audio], 16000)
    target = load_whisper("whisper-base", "trimmed", "cpu", cfg.cache_path)
    with torch.inference_mode():
        one = target.module.pooled_blocks(**target.inputs(audio[1:]))["layers.2.out"]
    assert x.shape == (2, 512)
    assert np.allclose(x[1], one[0].numpy(), atol=1e-4)
