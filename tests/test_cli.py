import subprocess
import sys

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


def test_bad_override_exits_2_with_the_key_named(capsys):
    assert main(["record", "--set", "data.nope=1"]) == 2
    assert "data.nope" in capsys.readouterr().err
    assert main(["reproduce", "--config", "does/not/exist.yaml"]) == 2
    assert "not found" in capsys.readouterr().err
