"""andlib.models.families.ct2format: CTranslate2 model files, truncated or corrupt."""

from __future__ import annotations

from pathlib import Path

import pytest

from andlib.models.base import ModelLoadError
from andlib.models.families import whisper as wh
from andlib.models.families import whisper_wheels as ww

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _one_line_error(name: str, tmp_path: Path, *match: str) -> str:
    with pytest.raises(ModelLoadError) as info:
        wh.load_whisper(name, "trimmed", "cpu", tmp_path / "cache")
    message = str(info.value)
    assert "\n" not in message
    for m in match:
        assert m in message, message
    return message


def _fake_package(site: Path, wf: ww.WheelFile, data: bytes, recorded: int | None) -> None:
    folder = site / wf.package
    (folder / wf.path).parent.mkdir(parents=True)
    (folder / "__init__.py").write_text("")
    (folder / wf.path).write_bytes(data)
    if recorded is not None:
        dist = site / f"{wf.package}-{wf.version}.dist-info"
        dist.mkdir()
        (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {wf.dist}\n")
        (dist / "RECORD").write_text(f"{wf.package}/{wf.path},sha256=x,{recorded}\n")


def test_a_truncated_file_without_a_record_is_found_by_the_parser(tmp_path, monkeypatch):
    (wf,) = ww.WHEELS["whisper-tiny.en"]
    data = ww.wheel_files("whisper-tiny.en")[0].read_bytes()
    site = tmp_path / "site"
    _fake_package(site, wf, data[: len(data) // 2], None)
    monkeypatch.syspath_prepend(str(site))
    _one_line_error("whisper-tiny.en", tmp_path, wf.dist, "truncated")


def test_a_corrupt_header_is_a_one_line_error(tmp_path, monkeypatch):
    (wf,) = ww.WHEELS["whisper-tiny.en"]
    site = tmp_path / "site"
    _fake_package(site, wf, b"\x06\x00\x00\x00\x0c\x00NotWhisper!\x00" + bytes(64), None)
    monkeypatch.syspath_prepend(str(site))
    _one_line_error("whisper-tiny.en", tmp_path, wf.dist, "not a CTranslate2 Whisper model")
