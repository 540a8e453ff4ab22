"""andlib.describe.features: acoustic measurements of known signals."""

from __future__ import annotations

import numpy as np

from andlib.describe import features
from andlib.describe.features import FEATURE_COLUMNS, acoustic_features

SR = 16000


def test_features_are_complete_and_finite_even_for_odd_input():
    t = np.arange(SR) / SR
    for audio in [0.3 * np.sin(2 * np.pi * 440 * t), np.zeros(SR), np.ones(100) * 0.1]:
        f = acoustic_features(audio.astype(np.float32), SR)
        assert list(f) == FEATURE_COLUMNS
        assert all(np.isfinite(v) for v in f.values())


def test_pure_tone_measurements_match_the_signal():
    t = np.arange(2 * SR) / SR
    f = acoustic_features((0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), SR)
    assert abs(f["f0_hz"] - 440) < 5
    assert abs(f["rms_db"] - 20 * np.log10(0.5 / np.sqrt(2))) < 0.2
    assert abs(f["peak_db"] - 20 * np.log10(0.5)) < 0.1
    assert f["voiced_frac"] > 0.95 and f["tone_purity"] > 0.95 and f["silence_frac"] == 0


def test_parallel_extraction_matches_serial():
    rng = np.random.default_rng(0)
    audios = [(0.1 * rng.standard_normal(SR // 2)).astype(np.float32) for _ in range(50)]
    parallel = features.extract_features(audios, SR, num_workers=2)
    serial = features.extract_features(audios[:3], SR, num_workers=1)
    assert len(parallel) == 50 and parallel[:3] == serial
