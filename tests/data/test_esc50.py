"""andlib.data.esc50: the ESC-50 probing set, its layout, filters and offline errors."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from andlib.data.audio import DataNotFoundError
from andlib.data.probing import load_probing_set
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
