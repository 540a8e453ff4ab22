"""andlib.data.probing: audio folders, label files, skipped files and synthetic probes."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from andlib.data.audio import AudioError
from andlib.data.probing import load_probing_set, probe_specs, synthetic_probes
from tests.conftest import write_tone


def test_audio_folder_mixed_formats_rates_lengths_and_channels(tmp_path, tmp_cfg):
    root = tmp_path / "clips"
    write_tone(root / "bird" / "a.wav", 3000, sr=44100, seconds=2.0)
    write_tone(root / "bird" / "b.flac", 2500, sr=22050, seconds=0.5, channels=2)
    write_tone(root / "engine" / "c.ogg", 90, sr=48000, seconds=3.0)
    write_tone(root / "engine" / "d.wav", 120, sr=8000, seconds=7.0)
    ps = load_probing_set(
        tmp_cfg({"data.dataset": "folder", "data.root": str(root), "data.duration": None})
    )
    assert ps.class_names == ["bird", "engine"]
    assert ps.clip_ids == ["bird/a", "bird/b", "engine/c", "engine/d"]
    assert [len(a) for a in ps.audio] == [32000, 8000, 48000, 112000]
    assert ps.meta["label"].tolist() == [0, 0, 1, 1]
    fixed = load_probing_set(
        tmp_cfg({"data.dataset": "folder", "data.root": str(root), "data.duration": 1.0})
    )
    assert {len(a) for a in fixed.audio} == {16000}


def test_audio_folder_labels_from_csv(tmp_path, tmp_cfg):
    root = tmp_path / "flat"
    write_tone(root / "x.wav", 440)
    write_tone(root / "y.wav", 880)
    csv = tmp_path / "labels.csv"
    pd.DataFrame({"filename": ["x.wav", "y.wav"], "label": ["low", "high"]}).to_csv(
        csv, index=False
    )
    ps = load_probing_set(
        tmp_cfg({"data.dataset": "folder", "data.root": str(root), "data.labels_csv": str(csv)})
    )
    assert ps.meta["category"].tolist() == ["low", "high"]


def _bad_files(root: Path) -> dict[str, str]:
    root.mkdir(parents=True, exist_ok=True)
    (root / "empty.wav").write_bytes(b"")
    (root / "corrupt.flac").write_bytes(b"fLaC\x00\x00garbage" * 50)
    sf.write(str(root / "silent.wav"), np.zeros(16000, dtype=np.float32), 16000)
    sf.write(str(root / "nosamples.wav"), np.zeros((0,), dtype=np.float32), 16000)
    write_tone(root / "good.wav", 440)
    return {
        "empty.wav": "empty",
        "corrupt.flac": "cannot decode",
        "silent.wav": "silent",
        "nosamples.wav": "no audio samples",
    }


def test_bad_files_are_skipped_and_listed_by_default(tmp_path, tmp_cfg):
    expected = _bad_files(tmp_path / "mixed")
    ps = load_probing_set(tmp_cfg({"data.dataset": "folder", "data.root": str(tmp_path / "mixed")}))
    assert ps.clip_ids == ["good"]
    skipped = ps.skipped_frame()
    assert sorted(Path(p).name for p in skipped["path"]) == sorted(expected)
    for path, reason in ps.skipped:
        assert expected[Path(path).name] in reason


def test_bad_files_raise_when_on_error_is_raise(tmp_path, tmp_cfg):
    _bad_files(tmp_path / "mixed")
    with pytest.raises(AudioError):
        load_probing_set(
            tmp_cfg(
                {
                    "data.dataset": "folder",
                    "data.root": str(tmp_path / "mixed"),
                    "data.on_error": "raise",
                }
            )
        )


def test_synthetic_probes_carry_tags_and_have_known_spectra(tmp_cfg):
    ps = synthetic_probes(tmp_cfg({"data.dataset": "synthetic"}))
    assert len(ps) == len(probe_specs())
    assert all(a.dtype == np.float32 and len(a) == 80000 for a in ps.audio)
    i = ps.index_of("tone_1000hz")
    spectrum = np.abs(np.fft.rfft(ps.audio[i]))
    peak_hz = np.argmax(spectrum) * 16000 / len(ps.audio[i])
    assert abs(peak_hz - 1000) < 2
    assert "tonal" in ps.meta.loc[i, "tags"]
    loud, quiet = ps.index_of("tone_500hz_loud"), ps.index_of("tone_500hz_quiet")
    assert np.abs(ps.audio[loud]).max() / np.abs(ps.audio[quiet]).max() > 50  # -6 vs -45 dBFS
    clicks = ps.audio[ps.index_of("clicks_20hz")]
    assert (np.abs(clicks) > 0.1).mean() < 0.2  # mostly silence between clicks
    again = synthetic_probes(tmp_cfg({"data.dataset": "synthetic"}))
    assert all(np.array_equal(a, b) for a, b in zip(ps.audio, again.audio, strict=True))
