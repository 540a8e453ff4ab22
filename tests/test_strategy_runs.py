"""andlib.strategy_runs: a strategy with a base run records what its base run records, and its
run names that run and the command that makes it (configs/sae.yaml's two targets)."""

from __future__ import annotations

import shlex

import pytest
import yaml

from andlib.cli import build_parser
from andlib.config import PROJECT_ROOT, ConfigError, load_config
from andlib.models import activations as act
from andlib.store import RunDir
from andlib.strategy_runs import base_config, strategy_overrides

RUN = RunDir.__new__(RunDir)  # the recording key reads no run file


def recording_key(cfg):
    return act.RECORDING.key(cfg, RUN)


def strategy_config(path, strategy, extra=()):
    cfg = load_config(path, list(extra))
    return load_config(path, [*extra, *strategy_overrides(cfg, strategy, None)[0]])


def test_the_sae_config_records_each_target_as_its_base_run_does():
    cfg = load_config("configs/sae.yaml")
    assert cfg.strategies == ["ast", "whisper-base"]
    default = load_config("configs/default.yaml")
    whisper_base = strategy_config("configs/whisper.yaml", "whisper-base")
    expected = {
        "ast": (default, 1_000_000, "runs/default"),
        "whisper-base": (whisper_base, 2_000_000, "runs/whisper/whisper-base"),
    }
    for strategy, (base, budget, base_dir) in expected.items():
        sub = strategy_config("configs/sae.yaml", strategy)
        assert sub.model.name == base.model.name == cfg.strategy_model(strategy)
        assert recording_key(sub) == recording_key(base)
        assert act.SPEC.key(sub, RUN) != act.SPEC.key(base, RUN)  # plus the SAE layer
        assert sub.record.base.run_dir == str(PROJECT_ROOT / base_dir)
        assert sub.record.base.missing == "error"
        assert sub.run_path == PROJECT_ROOT / "runs" / "sae" / strategy
        assert sub.figures_path == PROJECT_ROOT / "figures" / "sae" / strategy
        assert sub.sae.layers == ["layers.2.out"] and sub.sae.token_budget == budget
        assert sub.captioner.name == cfg.captioner.name and not sub.strategies
    assert strategy_config("configs/sae.yaml", "whisper-base").model.whisper.head


def test_the_command_named_for_a_strategy_base_records_that_run():
    _, command = base_config(load_config("configs/sae.yaml"), "whisper-base")
    record, whole = command.split(", or the whole run: ")
    assert whole == "make reproduce CONFIG=configs/whisper.yaml"
    argv = shlex.split(record)
    assert argv[:3] == ["python", "-m", "andlib"]
    args = build_parser().parse_args(argv[3:])
    assert args.command == "record"
    cli = load_config(args.config, [*args.overrides, f"run_dir={args.out}"])
    base = strategy_config("configs/whisper.yaml", "whisper-base")
    assert cli.run_path == base.run_path and recording_key(cli) == recording_key(base)


def write(path, settings):
    path.write_text(yaml.safe_dump(settings))
    return str(path)


def comparison(tmp_path, base_settings, strategy_settings=None):
    """A comparison config whose strategy ``toy`` has the base run of ``base_settings``."""
    base = write(
        tmp_path / "base.yaml", {"name": "base", "run_dir": str(tmp_path / "b"), **base_settings}
    )
    return write(
        tmp_path / "cmp.yaml",
        {
            "name": "cmp",
            "run_dir": str(tmp_path / "cmp"),
            "strategies": ["toy"],
            "strategy_models": {"toy": "toy-model"},
            "base_runs": {"toy": base},
            "strategy_settings": {"toy": strategy_settings or {}},
            "model": {"batch_size": 3},
            "record": {"layers": ["a"], "pooling": "max", "engine": "ray"},
        },
    )


def test_a_base_run_gives_its_recording_settings_and_keeps_how_this_run_records(tmp_path):
    base = {"seed": 3, "model": {"name": "toy-model", "batch_size": 7}, "record": {"layers": ["b"]}}
    path = comparison(tmp_path, base, {"sae.k": 4})
    sub = strategy_config(path, "toy", ["data.limit=9"])
    assert recording_key(sub) == recording_key(load_config(tmp_path / "base.yaml"))
    assert (sub.seed, sub.model.batch_size, sub.record.layers) == (3, 7, ["b"])
    assert sub.data.limit is None  # the base run's data, whatever this config says
    assert sub.record.engine == "ray"  # how it runs stays this config's
    assert sub.sae.k == 4 and sub.record.base.run_dir == str(tmp_path / "b")
    assert sub.record.base.command.startswith(f"python -m andlib record --config {tmp_path}")


def test_a_base_run_of_another_model_or_a_recording_setting_of_the_strategy_is_refused(tmp_path):
    path = comparison(tmp_path, {"model": {"name": "other"}})
    with pytest.raises(ConfigError, match="base_runs.toy: .* dissects other, not 'toy'"):
        strategy_config(path, "toy")
    path = comparison(tmp_path, {"model": {"name": "toy-model"}}, {"model.batch_size": 2})
    with pytest.raises(ConfigError, match="strategy_settings.toy.model.batch_size: .*base run"):
        strategy_config(path, "toy")


def test_a_strategies_base_must_hold_the_strategy(tmp_path):
    path = comparison(tmp_path, {"strategies": ["x"], "strategy_models": {"x": "toy-model"}})
    with pytest.raises(ConfigError, match="compares x, not 'toy'"):
        strategy_config(path, "toy")


def test_the_missing_base_run_of_a_comparison_names_its_record_command(tmp_path, monkeypatch):
    path = comparison(tmp_path, {"model": {"name": "toy-model"}})
    sub = strategy_config(path, "toy")
    monkeypatch.setattr(act, "load_target", lambda cfg: pytest.fail("loaded a model"))
    with pytest.raises(ConfigError) as err:
        act.run_stage(sub, RunDir(sub.run_path))
    message = str(err.value)
    assert "\n" not in message and str(tmp_path / "b") in message
    assert f"make it with: python -m andlib record --config {tmp_path / 'base.yaml'}" in message
