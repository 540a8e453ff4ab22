"""andlib.describe.wording: the words a caption uses for known signals."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from andlib.config import load_config
from andlib.data import notes
from andlib.data.audio import ProbingSet
from andlib.data.probing import probe_specs, synthetic_probes
from andlib.describe.captioners import AcousticCaptioner
from andlib.describe.wording import SetNorms, describe


def has_word(text: str, word: str) -> bool:
    """``word`` as a whole word (``harmonic`` also matches ``harmonics``)."""
    return re.search(rf"(?<![\w-]){re.escape(word)}s?(?![\w-])", text, re.IGNORECASE) is not None


@pytest.fixture(scope="module")
def probes():
    """The synthetic probe battery, its features and its acoustic captions (set-relative)."""
    cfg = load_config(None, {"data.dataset": "synthetic"})
    ps = synthetic_probes(cfg)
    captioner = AcousticCaptioner(cache_dir=None, num_workers=1)
    feats = captioner.features(ps).set_index("clip_id")
    caps = dict(zip(ps.clip_ids, captioner.caption(ps), strict=True))
    return ps, feats, caps


def test_low_vs_high_pure_tones(probes):
    _, feats, caps = probes
    for low in ["tone_100hz", "tone_220hz"]:
        assert feats.loc[low, "f0_hz"] < 250
        assert has_word(caps[low], "low-pitched") and not has_word(caps[low], "high-pitched")
    for high in ["tone_3000hz", "tone_6000hz"]:
        assert feats.loc[high, "f0_hz"] > 2500  # yin's sub-octave error at 6 kHz is corrected
        assert has_word(caps[high], "high-pitched") and not has_word(caps[high], "low-pitched")


def test_tone_vs_noise(probes):
    _, feats, caps = probes
    tones = [c for c in caps if c.startswith(("tone_", "harmonic_"))]
    noises = [c for c in caps if c.startswith("noise_")]
    assert (
        feats.loc[tones, "voiced_frac"].min() > 0.9 > 0.1 > feats.loc[noises, "voiced_frac"].max()
    )
    for c in tones:
        assert has_word(caps[c], "tonal") and not has_word(caps[c], "noisy"), caps[c]
    for c in noises:
        assert has_word(caps[c], "noisy") and not has_word(caps[c], "tonal"), caps[c]


def test_quiet_vs_loud(probes):
    _, feats, caps = probes
    for kind in ["tone_500hz", "noise_white"]:
        loud, quiet = f"{kind}_loud", f"{kind}_quiet"
        assert feats.loc[loud, "loudness_db"] - feats.loc[quiet, "loudness_db"] > 30
        assert has_word(caps[loud], "loud") and not has_word(caps[loud], "quiet")
        assert has_word(caps[quiet], "quiet") and not has_word(caps[quiet], "loud")


def test_steady_tone_vs_click_train(probes):
    _, feats, caps = probes
    assert feats.loc["tone_1000hz", "impulsiveness"] < 0.05
    assert has_word(caps["tone_1000hz"], "steady")
    assert not has_word(caps["tone_1000hz"], "impulsive")
    for c in ["clicks_2hz", "clicks_5hz", "clicks_20hz", "clicks_40hz"]:
        assert feats.loc[c, "impulsiveness"] > 0.9
        assert has_word(caps[c], "impulsive") and has_word(caps[c], "repetitive")
        assert not has_word(caps[c], "steady"), caps[c]


def test_fast_vs_slow_clicks(probes):
    _, feats, caps = probes
    assert feats.loc["clicks_20hz", "onset_rate"] > 2 * feats.loc["clicks_5hz", "onset_rate"]
    for c in ["clicks_2hz", "clicks_5hz"]:
        assert has_word(caps[c], "slow") and not has_word(caps[c], "fast")
    for c in ["clicks_20hz", "clicks_40hz"]:
        assert has_word(caps[c], "fast") and not has_word(caps[c], "slow")


def test_rising_and_falling_sweeps(probes):
    _, feats, caps = probes
    assert feats.loc["sweep_up", "pitch_trend_oct"] > 1.5
    assert feats.loc["sweep_down", "pitch_trend_oct"] < -1.5
    assert has_word(caps["sweep_up"], "rising") and not has_word(caps["sweep_up"], "falling")
    assert has_word(caps["sweep_down"], "falling") and not has_word(caps["sweep_down"], "rising")


@pytest.mark.parametrize("spec", probe_specs(), ids=lambda s: s.clip_id)
def test_every_probe_caption_has_its_tags(probes, spec):
    caption = probes[2][spec.clip_id]
    missing = [tag for tag in spec.tags if not has_word(caption, tag)]
    assert not missing, f"{caption!r} lacks {missing}"


def test_absolute_anchors_work_without_a_set(probes):
    """A single clip (no set distribution) still gets pitch, tonality and loudness right."""
    _, feats, _ = probes
    alone = {c: describe(feats.loc[c].to_dict(), norms=None) for c in feats.index}
    assert has_word(alone["tone_100hz"], "low-pitched")
    assert has_word(alone["tone_3000hz"], "high-pitched")
    assert has_word(alone["noise_white"], "noisy")
    assert has_word(alone["tone_500hz_quiet"], "quiet")
    assert has_word(alone["tone_500hz_loud"], "loud")
    assert SetNorms(feats.head(3)).rank("rms_db", -20.0) is None


SR = 16000


def _tone(freq: float, seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(SR * seconds)) / SR
    x = sum(np.sin(2 * np.pi * freq * k * t) / k for k in range(1, 6))
    return (0.3 * x / np.max(np.abs(x))).astype(np.float32)


def _set(audio: list[np.ndarray]) -> ProbingSet:
    meta = pd.DataFrame(
        {"clip_id": [f"c{i}" for i in range(len(audio))], "path": "", "label": -1, "category": ""}
    )
    return ProbingSet("t", SR, audio, meta)


def test_precise_captions_state_hz_and_note_and_the_default_wording_is_unchanged():
    ps = _set([_tone(440.0), _tone(41.2), _tone(1760.0)])
    precise = AcousticCaptioner(None, 1, precise_pitch=True).caption(ps)
    plain = AcousticCaptioner(None, 1).caption(ps)
    assert "Hz (A4)" in precise[0] and " at about 4" in precise[0], precise[0]
    assert "Hz (E1)" in precise[1], precise[1]  # below the default YIN floor of 50 Hz
    assert "Hz (A6)" in precise[2], precise[2]
    for caption, hz in zip(precise, [440.0, 41.2, 1760.0], strict=True):
        stated = notes.parse_pitches(caption)[0]
        assert abs(notes.cents(stated, hz)) < 50, caption
    assert "(about 440 Hz)" in plain[0] and "A4" not in plain[0], plain[0]
    assert not any("(E1)" in c or "(A6)" in c for c in plain)
    default = AcousticCaptioner(None, 1)
    assert "precise_pitch" not in default.settings  # default cache keys are unchanged
