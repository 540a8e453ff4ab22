from pathlib import Path

import pytest

from andlib.config import (
    PROJECT_ROOT,
    Config,
    ConfigError,
    load_config,
    parse_override,
    rng,
    stable_hash,
)


def test_default_config_file_loads_and_matches_dataclass_defaults_where_unset():
    cfg = load_config("configs/default.yaml")
    assert isinstance(cfg, Config)
    assert cfg.name == "default"
    assert cfg.data.dataset == "esc50"
    assert cfg.record.layers == ["preset:ast"]
    assert cfg.run_path == PROJECT_ROOT / "runs" / "default"


def test_dotted_overrides_set_nested_and_top_level_values():
    cfg = load_config("configs/default.yaml", ["data.limit=100", "k=7", "data.folds=[1, 2]"])
    assert cfg.data.limit == 100
    assert cfg.k == 7
    assert cfg.data.folds == [1, 2]


def test_override_mapping_form_is_equivalent_to_strings():
    a = load_config(None, ["llm.temperature=0.5", "captioner.name=metadata+acoustic"])
    b = load_config(None, {"llm.temperature": 0.5, "captioner.name": "metadata+acoustic"})
    assert a == b


def test_int_is_widened_to_float_but_not_the_reverse():
    assert load_config(None, ["llm.temperature=1"]).llm.temperature == 1.0
    with pytest.raises(ConfigError, match="k: expected an integer"):
        load_config(None, ["k=2.5"])


@pytest.mark.parametrize(
    "override, key",
    [("foo=1", "foo"), ("data.nope=1", "data.nope"), ("k.sub=1", "k")],
)
def test_unknown_override_keys_are_errors_naming_the_key(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(None, [override])


def test_unknown_key_in_yaml_file_names_the_dotted_key(tmp_path: Path):
    f = tmp_path / "c.yaml"
    f.write_text("data:\n  limt: 3\n")
    with pytest.raises(ConfigError, match=r"data\.limt"):
        load_config(f)


@pytest.mark.parametrize(
    "text, match",
    [
        ("k: five\n", "k: expected an integer"),
        ("data:\n  folds: 3\n", "data.folds: expected a list"),
        ("data: [1, 2]\n", "data: expected a mapping"),
        ("record:\n  pooling: median\n", "record.pooling"),
        ("data:\n  on_error: ignore\n", "data.on_error"),
        ("llm:\n  concurrency: true\n", "llm.concurrency: expected an integer"),
        ("record:\n  engine: spark\n", "record.engine: 'spark' is not one of local, ray"),
        ("record:\n  shard_rows: 0\n", "record.shard_rows: must be at least 1"),
        ("record:\n  ray:\n    num_actors: 0\n", "record.ray.num_actors: must be at least 1"),
        ("record:\n  ray:\n    num_gpus_per_actor: -1\n", "record.ray.num_gpus_per_actor"),
        ("record:\n  ray:\n    fail_after_batches: 0\n", "record.ray.fail_after_batches"),
        ("record:\n  ray:\n    adress: x\n", "unknown config key 'record.ray.adress'"),
    ],
)
def test_wrong_types_and_choices_are_errors_naming_the_key(tmp_path: Path, text, match):
    f = tmp_path / "c.yaml"
    f.write_text(text)
    with pytest.raises(ConfigError, match=match.replace(".", r"\.")):
        load_config(f)


def test_broken_yaml_and_missing_file_give_clear_errors(tmp_path: Path):
    f = tmp_path / "broken.yaml"
    f.write_text("data: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(f)
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="key=value"):
        parse_override("no-equals-sign")


def test_section_hash_changes_only_with_the_sections_it_covers():
    a = load_config(None)
    b = load_config(None, ["llm.temperature=0.7"])
    c = load_config(None, ["data.limit=10"])
    assert a.section_hash("data", "record") == b.section_hash("data", "record")
    assert a.section_hash("data", "record") != c.section_hash("data", "record")
    assert a.section_hash("llm") != b.section_hash("llm")
    with pytest.raises(ConfigError):
        a.section_hash("nonexistent")


def test_how_recording_runs_is_never_part_of_a_key():
    cfg = load_config(None)
    d = cfg.to_dict()
    for name in ("engine", "shard_rows", "ray", "base"):
        del d["record"][name]
    from andlib.config import stable_hash

    assert cfg.section_hash("record") == stable_hash(
        {"parts": {"record": d["record"]}, "extra": None}
    )
    ray = load_config(None, ["record.engine=ray", "record.shard_rows=8", "record.ray.num_actors=4"])
    assert ray.section_hash("record") == cfg.section_hash("record")
    base = load_config(None, ["record.base.run_dir=runs/default", "record.base.missing=record"])
    assert base.section_hash("record") == cfg.section_hash("record")
    assert ray.record.ray.num_actors == 4
    pooled = load_config(None, ["record.pooling=max"])
    assert pooled.section_hash("record") != cfg.section_hash("record")


def test_options_added_later_leave_every_key_as_it_was_at_their_defaults():
    from andlib.config import stable_hash

    cfg = load_config("configs/default.yaml")
    d = cfg.to_dict()
    for section, name in [
        ("data", "group_pattern"),
        ("captioner", "tagger_features"),
        ("captioner", "allow_same_model"),
    ]:
        del d[section][name]
    for section in ("data", "captioner"):
        old = stable_hash({"parts": {section: d[section]}, "extra": None})
        assert cfg.section_hash(section) == old
    for override in ("captioner.tagger_features=whisper-base", "captioner.allow_same_model=true"):
        changed = load_config("configs/default.yaml", [override])
        assert changed.section_hash("captioner") != cfg.section_hash("captioner")
    grouped = load_config(None, ["data.dataset=folder", "data.group_pattern=^(\\d+)-"])
    folder = load_config(None, ["data.dataset=folder"])
    assert grouped.section_hash("data") != folder.section_hash("data")


def test_tagger_model_must_be_a_known_classifier():
    assert load_config(None, ["captioner.tagger_model=logistic"])
    with pytest.raises(ConfigError, match="captioner.tagger_model: 'forest' is not one of"):
        load_config(None, ["captioner.tagger_model=forest"])


def test_tagger_features_must_be_a_known_kind():
    assert load_config(None, ["captioner.tagger_features=whisper-base"])
    with pytest.raises(ConfigError, match="captioner.tagger_features: 'whisper-small'"):
        load_config(None, ["captioner.tagger_features=whisper-small"])


def test_rng_is_reproducible_per_seed_and_purpose():
    cfg = load_config(None, ["seed=3"])
    assert (
        rng(cfg, "prune", "dog").integers(0, 10**9, 5)
        == rng(3, "prune", "dog").integers(0, 10**9, 5)
    ).all()
    assert (
        rng(cfg, "prune", "dog").integers(0, 10**9, 5)
        != rng(cfg, "prune", "cat").integers(0, 10**9, 5)
    ).any()
    assert (rng(cfg, "x").integers(0, 10**9, 5) != rng(4, "x").integers(0, 10**9, 5)).any()
    assert stable_hash({"a": 1, "b": 2}) == stable_hash({"b": 2, "a": 1})


SHIPPED_CONFIGS = sorted((PROJECT_ROOT / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", SHIPPED_CONFIGS, ids=[p.name for p in SHIPPED_CONFIGS])
def test_shipped_configs_validate_offline(path):
    cfg = load_config(path)
    assert cfg.name == path.stem  # its runs land in runs/<file name>, not another config's
    assert cfg.run_path == PROJECT_ROOT / "runs" / path.stem


def test_every_config_the_docs_and_code_name_is_shipped():
    """Each ``configs/<x>.yaml`` that the README, Makefile, docs, notebooks, benchmarks or
    the package point at exists (lines that say it is not built yet excepted)."""
    import re

    files = [PROJECT_ROOT / "README.md", PROJECT_ROOT / "Makefile"]
    for folder, pattern in [
        ("docs", "*.md"),
        ("notebooks/src", "*.py"),
        ("andlib", "*.py"),
        ("benchmarks", "*.py"),
        ("scripts", "*.py"),
        ("configs", "*.yaml"),
    ]:
        files += sorted((PROJECT_ROOT / folder).rglob(pattern))
    named = {}
    for f in files:
        for line in f.read_text().splitlines():
            if "not built yet" in line:
                continue
            for ref in re.findall(r"configs/[\w.-]+?\.yaml", line):
                named.setdefault(ref, f.relative_to(PROJECT_ROOT).as_posix())
    assert {"configs/default.yaml", "configs/strategies.yaml"} <= set(named)
    missing = {ref: where for ref, where in named.items() if not (PROJECT_ROOT / ref).is_file()}
    assert not missing, f"configs named but not shipped (config: first file naming it): {missing}"
    shipped = {f"configs/{p.name}" for p in SHIPPED_CONFIGS}
    assert {
        "configs/default.yaml",
        "configs/paper.yaml",
        "configs/smoke.yaml",
        "configs/strategies.yaml",
        "configs/strategies-online.yaml",
    } <= shipped


def test_strategy_models_must_name_one_of_the_strategies():
    with pytest.raises(ConfigError, match="strategy_models: 'ssl' is not one of strategies"):
        load_config(None, {"strategies": ["supervised"], "strategy_models": {"ssl": "x/y"}})


def test_base_runs_and_strategy_settings_name_strategies_and_known_keys():
    ok = {"strategies": ["supervised"], "base_runs": {"supervised": "configs/default.yaml"}}
    assert load_config(None, ok).base_runs == {"supervised": "configs/default.yaml"}
    with pytest.raises(ConfigError, match="base_runs: 'ast' is not one of strategies"):
        load_config(None, {"base_runs": {"ast": "configs/default.yaml"}})
    with pytest.raises(ConfigError, match="base_runs.supervised: expected a config file"):
        load_config(None, {**ok, "base_runs": {"supervised": ""}})
    settings = {"strategies": ["supervised"], "strategy_settings": {"supervised": {"sae.k": 4}}}
    assert load_config(None, settings).strategy_settings == {"supervised": {"sae.k": 4}}
    with pytest.raises(
        ConfigError, match="strategy_settings.supervised: unknown config key 'sae.kk'"
    ):
        load_config(None, {**settings, "strategy_settings": {"supervised": {"sae.kk": 4}}})
    with pytest.raises(
        ConfigError, match="record.base.missing: 'skip' is not one of error, record"
    ):
        load_config(None, {"record.base.missing": "skip"})


def test_seeds_need_strategies_and_must_be_distinct():
    assert load_config(None, {"strategies": ["supervised"], "seeds": [0, 1]}).seeds == [0, 1]
    with pytest.raises(ConfigError, match="seeds: needs strategies"):
        load_config(None, {"seeds": [0, 1]})
    with pytest.raises(ConfigError, match="seeds: expected distinct"):
        load_config(None, {"strategies": ["supervised"], "seeds": [1, 1]})
    with pytest.raises(ConfigError, match="train.seed: must be non-negative"):
        load_config(None, {"train.seed": -1})


def test_paper_config_fails_with_a_clear_message_when_the_hub_model_is_unreachable(monkeypatch):
    from andlib.models.base import ModelLoadError
    from andlib.models.registry import load_target

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cfg = load_config("configs/paper.yaml")
    assert cfg.model.name.startswith("shreyahegde/")
    with pytest.raises(ModelLoadError, match="network access"):
        load_target(cfg)
