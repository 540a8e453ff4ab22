import os
import subprocess
import sys

import pytest

from andlib.cli import build_parser, main
from andlib.config import PROJECT_ROOT


def test_help_lists_every_stage():
    out = subprocess.run(
        [sys.executable, "-m", "andlib", "--help"],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        check=True,
    ).stdout
    for stage in [
        "train",
        "record",
        "caption",
        "summarize",
        "evaluate",
        "prune",
        "analyze",
        "reproduce",
    ]:
        assert stage in out


def test_stage_flags_parse_config_out_and_repeated_set():
    args = build_parser().parse_args(
        ["record", "--config", "c.yaml", "--out", "o", "--set", "k=3", "--set", "seed=1"]
    )
    assert (args.config, args.out, args.overrides) == ("c.yaml", "o", ["k=3", "seed=1"])


def test_seeds_flag_reaches_reproduce_as_an_override(monkeypatch):
    import andlib.pipeline

    seen = {}

    def fake(config, overrides, out):
        seen.update(config=config, overrides=overrides, out=out)
        return 0

    monkeypatch.setattr(andlib.pipeline, "main_reproduce", fake)
    argv = ["reproduce", "--config", "configs/strategies.yaml", "--seeds", "0", "4"]
    assert main([*argv, "--set", "k=3"]) == 0
    assert seen["overrides"] == ["k=3", "seeds=[0, 4]"] and seen["out"] is None
    with pytest.raises(SystemExit):
        build_parser().parse_args(["record", "--seeds", "1"])  # only where seeds mean something


def test_bad_override_exits_2_with_the_key_named(capsys):
    assert main(["record", "--set", "data.nope=1"]) == 2
    assert "data.nope" in capsys.readouterr().err
    assert main(["reproduce", "--config", "does/not/exist.yaml"]) == 2
    assert "not found" in capsys.readouterr().err


# ---- errors: one message, no traceback -------------------------------------------------------


def _errors():
    from andlib.data.audio import AudioError
    from andlib.describe.captioners import CaptionError
    from andlib.models.base import ModelLoadError
    from andlib.text.llm import LLMError

    return [
        LLMError("2 of 6 requests failed:\n  - n1: HTTP 400\n  - n4: cut off at 800 tokens"),
        AudioError("clips/a.wav", "cannot decode"),
        CaptionError("openai:m: clip 'c0' failed after 3 attempt(s): 503"),
        ModelLoadError("cannot load model '/nope'"),
        OSError("/nope/model is not a local folder and not a valid model id"),
        FileNotFoundError(2, "No such file or directory", "runs/x/neuron_topk.csv"),
    ]


@pytest.mark.parametrize("exc", _errors(), ids=lambda e: type(e).__name__)
def test_project_errors_end_with_one_message_and_status_1(monkeypatch, capsys, tmp_path, exc):
    import andlib.pipeline

    def fail(stage, cfg):
        raise exc

    monkeypatch.delenv("ANDLIB_DEBUG", raising=False)
    monkeypatch.setattr(andlib.pipeline, "run_stage", fail)
    assert main(["summarize", "--out", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("andlib: error: ") and err.count("andlib: error:") == 1
    assert "Traceback" not in err
    first = str(exc).splitlines()[0] if not isinstance(exc, FileNotFoundError) else exc.filename
    assert first in err


def test_debug_flag_or_env_shows_the_traceback(monkeypatch, tmp_path):
    import andlib.pipeline
    from andlib.text.llm import LLMError

    def fail(stage, cfg):
        raise LLMError("n1: HTTP 400")

    monkeypatch.setattr(andlib.pipeline, "run_stage", fail)
    monkeypatch.delenv("ANDLIB_DEBUG", raising=False)
    for argv in (["--debug", "record"], ["record", "--debug"]):
        with pytest.raises(LLMError, match="HTTP 400"):
            main([*argv, "--out", str(tmp_path / "run")])
    monkeypatch.setenv("ANDLIB_DEBUG", "1")
    with pytest.raises(LLMError):
        main(["record", "--out", str(tmp_path / "run")])


def test_bugs_keep_their_traceback(monkeypatch, tmp_path):
    import andlib.pipeline

    def fail(stage, cfg):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(andlib.pipeline, "run_stage", fail)
    with pytest.raises(ZeroDivisionError):
        main(["record", "--out", str(tmp_path / "run")])


def test_config_error_is_one_message_and_status_2(capsys):
    assert main(["record", "--config", "does/not/exist.yaml"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("andlib: error: ") and err.count("\n") == 1


def test_a_captioner_on_the_targets_model_is_one_message_and_status_2(capsys, tmp_path):
    argv = ["record", "--out", str(tmp_path / "run"), "--set", "model.name=openai/whisper-base"]
    argv += ["--set", "captioner.tagger_features=whisper-base"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("andlib: error: captioner.tagger_features: whisper-base")
    assert err.count("\n") == 1
    assert not (tmp_path / "run").exists()  # refused before any work


def test_missing_model_from_the_command_line_is_one_line(tmp_path):
    """A real process: a model path that does not exist (or no probing data) ends cleanly."""
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "andlib",
            "record",
            "--out",
            str(tmp_path / "run"),
            "--set",
            f"model.name={tmp_path / 'no-such-model'}",
            "--set",
            "data.limit=4",
        ],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "ANDLIB_DEBUG": ""},
        timeout=300,
    )
    assert run.returncode == 1
    assert "Traceback" not in run.stderr
    errors = [line for line in run.stderr.splitlines() if line.startswith("andlib: error:")]
    assert len(errors) == 1 and run.stderr.rstrip().endswith(errors[0].rstrip()), run.stderr


def test_strategies_seed_command_passes_its_seed_and_options(monkeypatch, capsys):
    import andlib.pipeline

    seen = {}

    def fake(config, seed, overrides, tables=None, train_only=False):
        seen.update(config=config, seed=seed, overrides=overrides, tables=tables, only=train_only)
        return {"seeds": "0, 1"}

    monkeypatch.setattr(andlib.pipeline, "strategies_seed", fake)
    argv = ["strategies-seed", "--config", "configs/strategies.yaml", "--seed", "1"]
    assert main([*argv, "--train-only", "--tables", "t", "--set", "k=3"]) == 0
    assert seen == {
        "config": "configs/strategies.yaml",
        "seed": 1,
        "overrides": ["k=3"],
        "tables": "t",
        "only": True,
    }
    assert "seeds: 0, 1" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        build_parser().parse_args(["strategies-seed"])  # the seed is required


def test_out_sends_the_figures_beside_the_run_unless_figures_dir_is_set(monkeypatch):
    import andlib.pipeline

    seen = {}

    def fake(config, overrides, out):
        seen.update(overrides=overrides, out=out)
        return 0

    monkeypatch.setattr(andlib.pipeline, "main_reproduce", fake)
    assert main(["reproduce", "--config", "configs/default.yaml", "--out", "runs/x"]) == 0
    assert seen["overrides"] == ["figures_dir=runs/x/figures"] and seen["out"] == "runs/x"
    argv = ["reproduce", "--config", "configs/default.yaml", "--out", "runs/x"]
    assert main([*argv, "--set", "figures_dir=figs"]) == 0
    assert seen["overrides"] == ["figures_dir=figs"]
