"""andlib.data.audio: decoding audio, its errors, and the probing set's invariants."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from andlib.data.audio import AudioError, load_audio
from tests.conftest import write_tone


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


def test_non_finite_audio_is_rejected(tmp_path):
    x = np.full(1000, np.nan, dtype=np.float32)
    sf.write(str(tmp_path / "nan.wav"), x, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match="NaN"):
        load_audio(tmp_path / "nan.wav", 16000)


def test_probing_set_requires_unique_clip_ids():
    from andlib.data.audio import ProbingSet

    with pytest.raises(ValueError, match="not unique"):
        ProbingSet(
            "x", 16000, [np.zeros(3)] * 2, pd.DataFrame({"clip_id": ["a", "a"], "label": [0, 0]})
        )
