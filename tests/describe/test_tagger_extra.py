"""describe/tagger_extra.py: the 347 extra hand statistics, cached per clip beside the tagger's
own, and the ``captioner.tagger_features: hand+extra`` option that feeds both to the tagger."""

from __future__ import annotations

import numpy as np
import pytest

from andlib.config import ConfigError, load_config
from andlib.describe.captioning import SPEC, get_captioner
from andlib.describe.tagger import TaggerCaptioner, tagger_features
from andlib.describe.tagger_extra import N_EXTRA, ExtendedFeatures, extra_features
from andlib.store import RunDir

SR = 16000


def _tone(f0: float, seconds: float) -> np.ndarray:
    t = np.arange(int(SR * seconds)) / SR
    return (0.3 * np.sin(2 * np.pi * f0 * t)).astype(np.float32)


def test_extra_features_are_347_finite_numbers_for_long_and_very_short_clips():
    for audio in (_tone(440, 2.0), _tone(440, 0.05)):
        x = extra_features(audio, SR)
        assert x.shape == (N_EXTRA,) == (347,)
        assert np.isfinite(x).all()


def test_extra_features_differ_between_a_tone_and_noise():
    noise = np.random.default_rng(0).normal(0, 0.1, 2 * SR).astype(np.float32)
    assert not np.allclose(extra_features(_tone(440, 2.0), SR), extra_features(noise, SR))


def test_extended_features_put_the_hand_statistics_first_and_cache_both(tmp_path, monkeypatch):
    audio = [_tone(300, 1.0), _tone(900, 1.0)]
    digests = ["a", "b"]
    x = ExtendedFeatures(tmp_path).get(audio, digests, SR)
    assert x.shape == (2, 542 + N_EXTRA)
    np.testing.assert_array_equal(x[0, :542], tagger_features(audio[0], SR))
    np.testing.assert_array_equal(x[1, 542:], extra_features(audio[1], SR))

    def refuse(audio, sr):
        raise AssertionError("a cached clip was measured again")

    again = ExtendedFeatures(tmp_path)
    monkeypatch.setattr(again.hand, "measure", refuse)
    monkeypatch.setattr(again.extra, "measure", refuse)
    np.testing.assert_array_equal(again.get(audio, digests, SR), x)


def test_hand_plus_extra_is_the_default_tagger_and_hand_alone_has_its_own_caption_key(tmp_cfg):
    base = {"captioner.name": "tagger+acoustic"}
    cfg = tmp_cfg(base)
    assert load_config("configs/default.yaml").captioner.tagger_features == "hand+extra"
    tagger = get_captioner(cfg)
    assert isinstance(tagger, TaggerCaptioner)
    assert isinstance(tagger.features, ExtendedFeatures)
    assert tagger.settings["tagger_features"] == "hand+extra"
    hand = tmp_cfg({**base, "captioner.tagger_features": "hand"})
    assert not isinstance(get_captioner(hand).features, ExtendedFeatures)
    run = RunDir.from_config(hand)
    assert SPEC.key(hand, run) != SPEC.key(cfg, run)


def test_an_unknown_tagger_feature_set_is_a_config_error():
    with pytest.raises(ConfigError, match="captioner.tagger_features"):
        load_config("configs/default.yaml", ["captioner.tagger_features=hand+more"])
