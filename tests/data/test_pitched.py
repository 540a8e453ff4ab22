"""andlib.data.pitched: the pitched probing set (notes, f0 labels, timbre, mixed-in ESC-50
clips)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from andlib.data import notes
from andlib.data.audio import ProbingSet
from andlib.data.pitched import TIMBRE_COLUMNS, note_specs, render_note
from andlib.data.probing import load_probing_set
from tests.conftest import requires_esc50

SR = 16000


def measured_f0(audio: np.ndarray, f0_hint: float, sr: int = SR) -> float:
    """The fundamental measured from the signal, independently of the generator: the
    power-weighted mean frequency of the long-term spectrum (Hann window, 8x zero padding)
    between 0.7 and 1.3 times ``f0_hint``. For a vibrato that is the mean instantaneous
    frequency; white noise in a band symmetric around f0 does not move it."""
    x = np.asarray(audio, dtype=np.float64)
    n_fft = 8 * int(2 ** np.ceil(np.log2(len(x))))
    power = np.abs(np.fft.rfft(x * np.hanning(len(x)), n_fft)) ** 2
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sr)
    band = (freqs >= 0.7 * f0_hint) & (freqs <= 1.3 * f0_hint)
    return float((freqs[band] * power[band]).sum() / power[band].sum())


@pytest.fixture(scope="module")
def pitched_set(tmp_path_factory) -> tuple[ProbingSet, object]:
    from andlib.config import load_config

    tmp = tmp_path_factory.mktemp("pitched")
    cfg = load_config(
        None,
        {
            "cache_dir": str(tmp / "cache"),
            "run_dir": str(tmp / "run"),
            "data.dataset": "pitched",
            "data.duration": 0.5,
        },
    )
    return load_probing_set(cfg), cfg


def test_the_notes_cover_midi_28_to_96_one_per_20_cents(pitched_set):
    ps, cfg = pitched_set
    meta = ps.meta
    assert list(meta.columns[:5]) == ["clip_id", "path", "label", "category", "source"]
    assert {"f0_hz", "midi", "note", *TIMBRE_COLUMNS} <= set(meta.columns)
    assert len(ps) == 341 and (meta["source"] == "synthetic").all()
    midi = np.sort(meta["midi"].to_numpy())
    assert midi[0] <= 28.1 and midi[-1] >= 95.9
    cells = np.floor((midi - 28.0) / 0.2 + 0.5).astype(int)  # one note per 20-cent cell
    assert sorted(cells.tolist()) == list(range(341))
    assert np.allclose(meta["f0_hz"], notes.midi_to_hz(meta["midi"]))
    assert (meta["note"] == [notes.note_name(f) for f in meta["f0_hz"]]).all()
    assert all(len(a) == int(0.5 * SR) for a in ps.audio)
    # timbre is drawn independently of pitch: no parameter tracks f0
    for col in ["rolloff_db_oct", "even_db", "noise_db", "vibrato_cents"]:
        assert abs(np.corrcoef(meta["midi"], meta[col])[0, 1]) < 0.2, col
    # seeded: the same config gives the same notes, another seed others
    again = note_specs(cfg)
    assert np.array_equal(again["f0_hz"], meta["f0_hz"].to_numpy())
    import dataclasses

    other = note_specs(dataclasses.replace(cfg, seed=1))
    assert not np.allclose(other["rolloff_db_oct"], again["rolloff_db_oct"])


def test_f0_labels_match_the_signal_within_5_cents(pitched_set):
    ps, _ = pitched_set
    meta = ps.meta
    picks = list(range(0, len(ps), 31)) + [int(meta["vibrato_cents"].idxmax())]
    picks += [int(meta["noise_db"].idxmax()), int(meta["inharmonicity"].idxmax())]
    errors = {
        meta.loc[i, "clip_id"]: float(
            notes.cents(measured_f0(ps.audio[i], meta.loc[i, "f0_hz"]), meta.loc[i, "f0_hz"])
        )
        for i in picks
    }
    assert all(abs(e) < 5.0 for e in errors.values()), errors
    # and the measurement can tell: the same note rendered 10 cents sharp reads 10 cents sharp
    spec = note_specs(pitched_set[1]).iloc[170].to_dict()
    sharp = dict(spec, f0_hz=spec["f0_hz"] * 2 ** (10 / 1200))
    got = notes.cents(measured_f0(render_note(sharp, SR, 0.5), spec["f0_hz"]), spec["f0_hz"])
    assert 5.0 < got < 15.0


def test_timbre_parameters_shape_the_spectrum():
    base = {
        "f0_hz": 200.0,
        "rolloff_db_oct": 6.0,
        "even_db": 0.0,
        "inharmonicity": 1e-6,
        "vibrato_cents": 0.0,
        "vibrato_hz": 5.0,
        "noise_db": -80.0,
        "attack_ms": 5.0,
        "decay_s": 100.0,
        "seed": 3,
    }

    def partial_db(spec: dict, h: int) -> float:
        x = render_note(spec, SR, 1.0).astype(np.float64)
        power = np.abs(np.fft.rfft(x * np.hanning(len(x)))) ** 2
        freqs = np.fft.rfftfreq(len(x), 1 / SR)
        band = np.abs(freqs - h * spec["f0_hz"]) < 20
        return float(10 * np.log10(power[band].sum()))

    # roll-off: the 4th harmonic is 2 octaves above the 1st, so 2 x rolloff dB down
    assert partial_db(base, 1) - partial_db(base, 4) == pytest.approx(12.0, abs=1.0)
    steep = dict(base, rolloff_db_oct=15.0)
    assert partial_db(steep, 1) - partial_db(steep, 4) == pytest.approx(30.0, abs=1.0)
    # odd/even balance: even harmonics 20 dB down re the fundamental, odd ones unchanged
    # (each note is scaled to the same peak, so levels are compared to the fundamental's)
    hollow = dict(base, even_db=-20.0)

    def re_fundamental(spec: dict, h: int) -> float:
        return partial_db(spec, h) - partial_db(spec, 1)

    assert re_fundamental(base, 2) - re_fundamental(hollow, 2) == pytest.approx(20.0, abs=1.0)
    assert re_fundamental(base, 3) == pytest.approx(re_fundamental(hollow, 3), abs=0.5)
    # decay: a 0.2 s time constant leaves the last quarter far quieter than the first
    x = render_note(dict(base, decay_s=0.2), SR, 1.0)
    q = len(x) // 4
    drop = 10 * np.log10(np.mean(x[:q] ** 2) / np.mean(x[-q:] ** 2))
    assert drop > 20.0
    # inharmonicity: the 10th partial is stretched by sqrt((1 + 100 B) / (1 + B))
    stiff = dict(base, inharmonicity=1e-3, rolloff_db_oct=3.0)
    x = render_note(stiff, SR, 1.0).astype(np.float64)
    power = np.abs(np.fft.rfft(x * np.hanning(len(x)), 8 * len(x))) ** 2
    freqs = np.fft.rfftfreq(8 * len(x), 1 / SR)
    near = np.abs(freqs - 2000 * 1.045) < 60
    peak = freqs[near][np.argmax(power[near])]
    assert peak == pytest.approx(2000 * np.sqrt((1 + 0.1) / (1 + 1e-3)), abs=2.0)


@requires_esc50
def test_mix_esc50_adds_real_clips_cut_to_their_loudest_second(tmp_cfg):
    cfg = tmp_cfg(
        {"data.dataset": "pitched", "data.duration": 1.0, "data.limit": 10, "data.mix_esc50": 5}
    )
    ps = load_probing_set(cfg)
    meta = ps.meta
    esc = meta[meta["source"] == "esc50"]
    assert len(ps) == 15 and len(esc) == 5
    assert esc["category"].nunique() == 5 and (esc["category"] != "note").all()
    assert esc["f0_hz"].isna().all() and (esc["note"] == "").all()
    assert (meta.loc[meta["source"] == "synthetic", "label"] == 0).all()
    assert (esc["label"] > 0).all()
    from andlib.data.audio import load_audio

    for i in esc.index:
        assert len(ps.audio[i]) == SR
        original = load_audio(_esc50_path(meta, i), SR).astype(np.float64)
        windows = [np.mean(original[s : s + SR] ** 2) for s in range(0, len(original) - SR, 160)]
        got = float(np.mean(ps.audio[i].astype(np.float64) ** 2))
        assert got == pytest.approx(max(windows), rel=0.02)


def _esc50_path(meta: pd.DataFrame, i: int) -> str:
    from andlib.data.esc50 import SHARED_ESC50

    stem = meta.loc[i, "clip_id"].removeprefix("esc50-")
    return str(next((SHARED_ESC50 / "audio").glob(f"{stem}.*")))
