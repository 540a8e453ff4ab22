"""andlib.describe.captioning: the caption stage (outputs, clip order, cache) and its CLI."""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from andlib.config import PROJECT_ROOT, ConfigError
from andlib.data.probing import synthetic_probes
from andlib.describe import captioners, features
from andlib.describe.captioning import caption_paths_cli, get_captioner, run_stage
from andlib.describe.features import FEATURE_COLUMNS
from andlib.store import RunDir
from tests.conftest import write_tone

SR = 16000


def has_word(text: str, word: str) -> bool:
    """``word`` as a whole word (``harmonic`` also matches ``harmonics``)."""
    return re.search(rf"(?<![\w-]){re.escape(word)}s?(?![\w-])", text, re.IGNORECASE) is not None


def test_unknown_captioner_is_a_config_error(tmp_cfg):
    with pytest.raises(ConfigError, match="captioner.name"):
        get_captioner(tmp_cfg({"captioner.name": "salmonn"}))


def test_stage_writes_outputs_follows_clips_csv_and_reuses_the_cache(tmp_cfg, monkeypatch):
    cfg = tmp_cfg({"data.dataset": "synthetic", "data.duration": 2.0, "captioner.num_workers": 1})
    run = RunDir.from_config(cfg)
    order = list(reversed(synthetic_probes(cfg).clip_ids))[:15]
    run.write_csv("clips.csv", pd.DataFrame({"clip_id": order, "path": ""}))

    calls = []
    real = features.extract_features
    monkeypatch.setattr(
        captioners, "extract_features", lambda a, *rest: calls.append(len(a)) or real(a, *rest)
    )
    summary = run_stage(cfg, run)
    assert summary["captions"] == 15 and sum(calls) == 15
    caps = run.read_csv("captions.csv")
    feats = run.read_csv("features.csv")
    assert caps["clip_id"].tolist() == order == feats["clip_id"].tolist()
    assert list(feats.columns) == ["clip_id", *FEATURE_COLUMNS]
    assert caps["caption"].str.len().min() > 20

    assert run_stage(cfg, run)["reused"] is True  # fresh stage: nothing recomputed
    run.invalidate("caption")
    calls.clear()
    run_stage(cfg, run)  # stage re-run, per-clip cache hit: no feature extraction at all
    assert calls == []
    assert run.read_csv("captions.csv").equals(caps)


def test_every_dissection_of_the_same_clips_reuses_the_measured_captions(tmp_cfg, monkeypatch):
    """The runs of a strategies comparison (every strategy, every training seed) caption the
    same clips: the first measures them, the others read the per-clip cache."""
    sets = {"data.dataset": "synthetic", "data.duration": 1.0, "captioner.num_workers": 1}
    calls = []
    real = features.extract_features
    monkeypatch.setattr(
        captioners, "extract_features", lambda a, *rest: calls.append(len(a)) or real(a, *rest)
    )
    captions = []
    for folder in ("supervised/seed0", "ssl-frozen/seed0", "supervised/seed1"):
        cfg = tmp_cfg({**sets, "run_dir": str(tmp_cfg().run_path / folder)})
        run = RunDir.from_config(cfg)
        run_stage(cfg, run)
        captions.append(run.read_csv("captions.csv"))
    assert len(calls) == 1 and calls[0] == len(captions[0])
    assert all(c.equals(captions[0]) for c in captions[1:])


def test_stage_rejects_clips_csv_from_other_data(tmp_cfg):
    cfg = tmp_cfg({"data.dataset": "synthetic", "data.duration": 1.0, "data.limit": 3})
    run = RunDir.from_config(cfg)
    run.write_csv("clips.csv", pd.DataFrame({"clip_id": ["tone_100hz", "not_a_clip"]}))
    with pytest.raises(ValueError, match="not_a_clip"):
        run_stage(cfg, run)


@pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")  # librosa's fallback
def test_cli_captions_good_files_and_names_bad_ones(tmp_cfg, tmp_path, capsys):
    good = write_tone(tmp_path / "in" / "tone.wav", freq=150, seconds=1.0)
    write_tone(tmp_path / "in" / "sub" / "high.flac", freq=3000, seconds=0.5)
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot really audio" * 3)
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    silent = tmp_path / "silent.wav"
    sf.write(str(silent), np.zeros(SR, dtype=np.float32), SR)

    code = caption_paths_cli(
        tmp_cfg(), [str(tmp_path / "in"), str(corrupt), str(empty), str(silent)]
    )
    out, err = capsys.readouterr()
    assert code == 1
    lines = out.strip().splitlines()
    assert len(lines) == 2
    paths = [line.split("\t")[0] for line in lines]
    assert paths == [str(tmp_path / "in" / "sub" / "high.flac"), str(good)]
    assert has_word(lines[1].split("\t")[1], "low-pitched")
    assert has_word(lines[0].split("\t")[1], "high-pitched")
    for bad in [corrupt, empty, silent]:
        assert str(bad) in err
    assert "silent" in err and "empty" in err


def test_cli_entry_point(tmp_path):
    tone = write_tone(tmp_path / "a.wav", freq=440, seconds=0.5)
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "andlib",
            "caption",
            str(tone),
            str(tmp_path / "missing.wav"),
            "--captioner",
            "acoustic",
            "--set",
            f"cache_dir={tmp_path / 'cache'}",
        ],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        timeout=300,
    )
    assert res.returncode == 1
    assert res.stdout.startswith(f"{tone}\t") and "mid-pitched" in res.stdout
    assert "missing.wav" in res.stderr
