from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from andlib.data.audio import AudioError, DataNotFoundError, load_audio
from andlib.data.probing import load_probing_set, probe_specs, synthetic_probes
from tests.conftest import requires_esc50, write_tone


@requires_esc50
def test_esc50_shared_copy_has_2000_clips_50_classes_5_folds(tmp_cfg):
    ps = load_probing_set(tmp_cfg())
    assert len(ps) == 2000
    assert len(ps.class_names) == 50
    assert sorted(ps.meta["fold"].unique()) == [1, 2, 3, 4, 5]
    assert ps.meta.groupby("category").size().eq(40).all()
    assert all(a.dtype == np.float32 and a.shape == (80000,) for a in ps.audio[:20])
    assert ps.class_names[0] == "dog"
    assert ps.clip_ids[0] == Path(ps.meta["filename"][0]).stem


@requires_esc50
def test_esc50_filters_folds_classes_and_limit(tmp_cfg):
    ps = load_probing_set(tmp_cfg({"data.folds": [5], "data.classes": ["dog", "rain"]}))
    assert len(ps) == 16 and set(ps.meta["category"]) == {"dog", "rain"}
    limited = load_probing_set(tmp_cfg({"data.limit": 10}))
    assert len(limited) == 10
    assert limited.meta["label"].nunique() == 10  # spread over classes
    again = load_probing_set(tmp_cfg({"data.limit": 10}))
    assert limited.clip_ids == again.clip_ids
    with pytest.raises(ValueError, match="unknown ESC-50 categories"):
        load_probing_set(tmp_cfg({"data.classes": ["dragon"]}))


def _official_layout(root: Path, rows: list[tuple[str, int, int, str]], sr: int = 44100) -> Path:
    (root / "meta").mkdir(parents=True)
    records = []
    for i, (fname, fold, target, category) in enumerate(rows):
        write_tone(root / "audio" / fname, freq=200 + 100 * i, sr=sr, seconds=5.0, channels=2)
        records.append(
            (fname, fold, target, category, False, fname.split("-")[1], fname.split("-")[2])
        )
    pd.DataFrame(
        records, columns=["filename", "fold", "target", "category", "esc10", "src_file", "take"]
    ).to_csv(root / "meta" / "esc50.csv", index=False)
    return root


def test_esc50_reads_generated_official_layout_of_44k_stereo_wav(tmp_path, tmp_cfg):
    root = _official_layout(
        tmp_path / "ESC-50",
        [
            ("1-100-A-0.wav", 1, 0, "dog"),
            ("2-200-A-1.wav", 2, 1, "rooster"),
            ("5-300-B-0.wav", 5, 0, "dog"),
        ],
    )
    ps = load_probing_set(tmp_cfg({"data.root": str(root)}))
    assert len(ps) == 3
    assert ps.sample_rate == 16000
    assert all(a.shape == (80000,) for a in ps.audio)
    assert ps.class_names == ["dog", "rooster"]
    assert ps.clip_ids == ["1-100-A-0", "2-200-A-1", "5-300-B-0"]


def test_esc50_missing_offline_says_where_to_put_it(tmp_path, tmp_cfg):
    with pytest.raises(DataNotFoundError, match="meta/esc50.csv"):
        load_probing_set(tmp_cfg({"data.root": str(tmp_path / "nowhere")}))


def test_esc50_download_failure_offline_is_a_clear_error(tmp_path, tmp_cfg, monkeypatch):
    monkeypatch.setattr("andlib.data.esc50.SHARED_ESC50", tmp_path / "absent")
    monkeypatch.delenv("ANDLIB_DATA_DIR", raising=False)
    cfg = tmp_cfg({"data.download_url": "http://127.0.0.1:9/ESC-50-master.zip"})
    with pytest.raises(DataNotFoundError, match="downloading .* failed"):
        load_probing_set(cfg)


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


@pytest.mark.parametrize(
    "name, reason",
    list(
        {
            "empty.wav": "empty",
            "corrupt.flac": "cannot decode",
            "silent.wav": "silent",
            "nosamples.wav": "no audio samples",
        }.items()
    ),
)
def test_load_audio_names_the_file_and_the_problem(tmp_path, name, reason):
    _bad_files(tmp_path)
    with pytest.raises(AudioError) as err:
        load_audio(tmp_path / name, 16000)
    assert name in str(err.value) and reason in err.value.reason


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


def test_non_finite_audio_is_rejected(tmp_path):
    x = np.full(1000, np.nan, dtype=np.float32)
    sf.write(str(tmp_path / "nan.wav"), x, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match="NaN"):
        load_audio(tmp_path / "nan.wav", 16000)


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


def test_probing_set_requires_unique_clip_ids():
    from andlib.data.audio import ProbingSet

    with pytest.raises(ValueError, match="not unique"):
        ProbingSet(
            "x", 16000, [np.zeros(3)] * 2, pd.DataFrame({"clip_id": ["a", "a"], "label": [0, 0]})
        )
