"""scripts/tagger_extra_features.py: the extra hand statistics are 347 finite numbers per clip,
for a long clip and for one shorter than an analysis frame, and they tell sounds apart."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from andlib.config import PROJECT_ROOT

SR = 16000


@pytest.fixture(scope="module")
def extra():
    spec = importlib.util.spec_from_file_location(
        "tagger_extra_features", PROJECT_ROOT / "scripts" / "tagger_extra_features.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.extra_features


def _tone(f0: float, seconds: float) -> np.ndarray:
    t = np.arange(int(SR * seconds)) / SR
    return (0.3 * np.sin(2 * np.pi * f0 * t)).astype(np.float32)


def test_extra_features_are_347_finite_numbers_for_long_and_very_short_clips(extra):
    for audio in (_tone(440, 2.0), _tone(440, 0.05)):
        x = extra(audio, SR)
        assert x.shape == (347,)
        assert np.isfinite(x).all()


def test_extra_features_differ_between_a_tone_and_noise(extra):
    noise = np.random.default_rng(0).normal(0, 0.1, 2 * SR).astype(np.float32)
    assert not np.allclose(extra(_tone(440, 2.0), SR), extra(noise, SR))
