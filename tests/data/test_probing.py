"""Folder datasets: the recording each clip was cut from, for cross-fitting that keeps it whole."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from andlib.config import ConfigError
from andlib.data import probing
from andlib.data.probing import load_probing_set
from andlib.describe.tagger import TaggerCaptioner, cross_fit_splits

SR = 16000


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
