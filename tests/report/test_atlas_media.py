"""andlib.report.atlas_media: each clip's audio and spectrogram, made once and reused."""

from __future__ import annotations

import io

import numpy as np
import soundfile as sf
from PIL import Image

from andlib.report import atlas_media as media
from andlib.report.browser import RunView
from tests.report.test_browser import make_run_dir


def tone(sr: int = 16000, seconds: float = 0.5) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    return (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)


def test_ogg_bytes_decode_back_to_the_clip():
    audio, sr = sf.read(io.BytesIO(media.ogg_bytes(tone(), 16000)))
    assert sr == 16000 and abs(len(audio) - 8000) < 200
    assert 0.15 < np.abs(audio).max() < 0.45


def test_a_spectrogram_is_a_palette_png_of_bands_by_frames():
    img = Image.open(io.BytesIO(media.spectrogram_image(tone(), 16000)))
    assert img.mode == "P" and img.size[1] == media.SPEC_MELS
    width = img.size[0]
    assert abs(width - 8000 / media.SPEC_HOP) <= 2


def test_media_are_written_once_and_reused_while_the_source_is_unchanged(tmp_cfg, tmp_path):
    run = make_run_dir(tmp_cfg())
    view = RunView(run)
    out = tmp_path / "atlas"
    ids = view.clip_ids[:2]
    first = media.write_media(view, out, ids, workers=1, progress=False)
    assert set(first) == set(ids)
    files = [out / first[c]["audio"] for c in ids] + [out / first[c]["image"] for c in ids]
    assert all(f.is_file() for f in files)
    stamps = [f.stat().st_mtime_ns for f in files]
    again = media.write_media(view, out, ids, workers=1, progress=False)
    assert again == first and [f.stat().st_mtime_ns for f in files] == stamps
