"""andlib.data.probing: audio folders, label files, skipped files, synthetic probes, and the
recording each clip was cut from (for cross-fitting that keeps it whole)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from andlib.config import ConfigError
from andlib.data import probing
from andlib.data.audio import AudioError
from andlib.data.probing import load_probing_set, probe_specs, synthetic_probes
from andlib.describe.tagger import TaggerCaptioner, cross_fit_splits
from tests.conftest import write_tone

SR = 16000


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


def test_the_clip_list_names_every_file_before_decoding(tmp_path, tmp_cfg):
    expected = _bad_files(tmp_path / "mixed")
    cfg = tmp_cfg({"data.dataset": "folder", "data.root": str(tmp_path / "mixed")})
    clips = probing.probing_clips(cfg)
    assert sorted(Path(p).name for p in clips.rows["path"]) == sorted([*expected, "good.wav"])
    decoded = probing.decode_clips(clips, cfg.data)
    assert decoded.clip_ids == ["good"] and len(decoded.skipped) == len(expected)


def test_generated_probes_have_no_clip_list_to_hand_out(tmp_cfg):
    with pytest.raises(ValueError, match="record.engine: local"):
        probing.probing_clips(tmp_cfg({"data.dataset": "synthetic"}))


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


def _write(path: Path, audio: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), audio.astype(np.float32), SR)


def _recordings(root: Path, n_recordings: int = 12, slices: int = 4, seed: int = 0) -> None:
    """UrbanSound8K-style ``<fsID>-<class>-0-<slice>.wav`` under ``<class folder>/``: every
    recording is noise through its own random spectral shape (its slices are near-duplicates),
    and its class is drawn at random, so the audio tells the recording, not the class."""
    rng = np.random.default_rng(seed)
    classes = rng.permutation(np.arange(n_recordings) % 2)
    for rec in range(n_recordings):
        bands = rng.normal(0, 1.5, 32)
        shape = np.exp(np.interp(np.linspace(0, 1, SR // 4 + 1), np.linspace(0, 1, 32), bands))
        for s in range(slices):
            spec = np.fft.rfft(rng.standard_normal(SR // 2)) * shape
            y = np.fft.irfft(spec, SR // 2)
            name = f"{100 + rec}-{classes[rec]}-0-{s}.wav"
            _write(root / f"class{classes[rec]}" / name, 0.3 * y / np.abs(y).max())


def _folder(tmp_cfg, root: Path, **more):
    return tmp_cfg({"data.dataset": "folder", "data.root": str(root), "data.duration": 0.5, **more})


def test_group_pattern_names_each_clips_recording(tmp_path, tmp_cfg):
    _recordings(tmp_path / "us8k", n_recordings=3, slices=2)
    _write(tmp_path / "us8k" / "class0" / "odd.wav", np.ones(SR // 2) * 0.1)
    ps = load_probing_set(_folder(tmp_cfg, tmp_path / "us8k", **{"data.group_pattern": r"^(\d+)-"}))
    groups = dict(zip(ps.meta["clip_id"], ps.meta["group"], strict=True))
    assert groups["class0/odd"] == "clip class0/odd"  # no match: a recording of its own
    named = {c: g for c, g in groups.items() if c != "class0/odd"}
    assert all(g == c.split("/")[1].split("-")[0] for c, g in named.items())
    assert len(set(named.values())) == 3
    assert ps.grouping == r"group_pattern ^(\d+)-"


def test_a_pattern_that_matches_no_file_is_a_config_error(tmp_path, tmp_cfg):
    _recordings(tmp_path / "us8k", n_recordings=2, slices=1)
    cfg = _folder(tmp_cfg, tmp_path / "us8k", **{"data.group_pattern": r"^rec(\d+)_"})
    with pytest.raises(ConfigError, match="matches none of the 2 file names"):
        load_probing_set(cfg)


@pytest.mark.parametrize(
    ("pattern", "match"),
    [("^(\\d+", "is not a regular expression"), ("^\\d+-", "has no group")],
)
def test_a_bad_pattern_is_a_one_line_config_error(tmp_cfg, tmp_path, pattern, match):
    with pytest.raises(ConfigError, match=match) as info:
        _folder(tmp_cfg, tmp_path, **{"data.group_pattern": pattern})
    assert "\n" not in str(info.value) and "data.group_pattern" in str(info.value)


def test_a_pattern_outside_a_folder_dataset_is_a_config_error(tmp_cfg):
    with pytest.raises(ConfigError, match="only the folder dataset"):
        tmp_cfg({"data.group_pattern": "^(\\d+)-"})


def _flat_with_csv(tmp_path: Path, groups: list[str] | None) -> Path:
    rng = np.random.default_rng(1)
    names = [f"{i}.wav" for i in range(4)]
    for n in names:
        _write(tmp_path / "flat" / n, 0.1 * rng.standard_normal(SR // 2))
    table = {"filename": names, "label": ["a", "b", "a", "b"]}
    if groups is not None:
        table["group"] = groups
    csv = tmp_path / "labels.csv"
    pd.DataFrame(table).to_csv(csv, index=False)
    return csv


def test_a_group_column_in_labels_csv_names_the_recordings(tmp_path, tmp_cfg):
    csv = _flat_with_csv(tmp_path, ["r1", "r1", "r2", None])
    cfg = _folder(tmp_cfg, tmp_path / "flat", **{"data.labels_csv": str(csv)})
    ps = load_probing_set(cfg)
    assert ps.meta["group"].tolist() == ["r1", "r1", "r2", "clip 3"]
    assert ps.grouping == "labels_csv group column"
    assert ps.subset([2, 3]).grouping == ps.grouping


def test_a_pattern_and_a_group_column_together_are_a_config_error(tmp_path, tmp_cfg):
    csv = _flat_with_csv(tmp_path, ["r1", "r1", "r2", "r2"])
    extra = {"data.labels_csv": str(csv), "data.group_pattern": r"^(\d)"}
    with pytest.raises(ConfigError, match="keep one"):
        load_probing_set(_folder(tmp_cfg, tmp_path / "flat", **extra))


def test_a_labelled_folder_without_recordings_is_warned_about_once(tmp_path, tmp_cfg, caplog):
    csv = _flat_with_csv(tmp_path, None)
    cfg = _folder(tmp_cfg, tmp_path / "flat", **{"data.labels_csv": str(csv)})
    probing._warned_ungrouped.clear()
    with caplog.at_level(logging.WARNING, logger="andlib.data.probing"):
        ps = load_probing_set(cfg)
        load_probing_set(cfg)
    warnings = [r for r in caplog.records if "both sides of a" in r.getMessage()]
    assert len(warnings) == 1
    assert "group" not in ps.meta and ps.grouping == ""


def test_an_unlabelled_folder_is_not_warned_about(tmp_path, tmp_cfg, caplog):
    _write(tmp_path / "flat" / "x.wav", 0.1 * np.ones(SR // 2))
    probing._warned_ungrouped.clear()
    with caplog.at_level(logging.WARNING, logger="andlib.data.probing"):
        load_probing_set(_folder(tmp_cfg, tmp_path / "flat"))
    assert not [r for r in caplog.records if "both sides of a" in r.getMessage()]


def test_grouped_cross_fitting_stops_near_duplicate_slices_inflating_the_tagger(tmp_path, tmp_cfg):
    _recordings(tmp_path / "us8k", n_recordings=16, slices=4, seed=3)
    grouped_cfg = _folder(tmp_cfg, tmp_path / "us8k", **{"data.group_pattern": r"^(\d+)-"})
    grouped = load_probing_set(grouped_cfg)
    splits = cross_fit_splits(grouped.meta, 4, seed=0)
    for _, split in pd.Series(splits).groupby(grouped.meta["group"]):
        assert split.nunique() == 1
    tagger = TaggerCaptioner(tmp_path / "cache", n_splits=4)
    tagger.caption(grouped)
    report = tagger.last_report
    assert report["grouping"] == r"group_pattern ^(\d+)-" and report["n_groups"] == 16
    ungrouped = load_probing_set(_folder(tmp_cfg, tmp_path / "us8k"))
    loose = TaggerCaptioner(tmp_path / "cache", n_splits=4)
    loose.caption(ungrouped)
    assert loose.last_report["grouping"] == "none" and loose.last_report["n_groups"] == 64
    # the class is random per recording: only a split that leaks a recording can learn it
    assert loose.last_report["top1"] >= 0.8
    assert report["top1"] <= 0.7
