"""Typed configuration: dataclasses loaded from YAML, with dotted ``--set`` overrides.

Every stage, CLI command and notebook reads one :class:`Config`. Notebooks take two papermill
parameters, ``config_path`` and ``overrides``, and call :func:`load_config` with them, so a
notebook run by hand and the same notebook run by papermill read identical settings.

Relative paths in a config are resolved against the project root (the folder holding
``andlib/``), never against the current working directory, so notebooks run from
``notebooks/`` and the CLI run from the root see the same files.

The section dataclasses (:class:`DataConfig`, :class:`ModelConfig`, ...) are defined in
:mod:`andlib.config_sections` and importable from here.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import random
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from andlib.config_sections import AnalysisConfig as AnalysisConfig
from andlib.config_sections import CaptionerConfig as CaptionerConfig
from andlib.config_sections import ConceptsConfig as ConceptsConfig
from andlib.config_sections import DataConfig as DataConfig
from andlib.config_sections import EmbedderConfig as EmbedderConfig
from andlib.config_sections import EvaluateConfig as EvaluateConfig
from andlib.config_sections import LLMConfig as LLMConfig
from andlib.config_sections import ModelConfig as ModelConfig
from andlib.config_sections import PruneConfig as PruneConfig
from andlib.config_sections import RayConfig as RayConfig
from andlib.config_sections import RecordConfig as RecordConfig
from andlib.config_sections import SaeConfig as SaeConfig
from andlib.config_sections import SimilarityConfig as SimilarityConfig
from andlib.config_sections import TrainConfig as TrainConfig
from andlib.config_sections import WhisperModelConfig as WhisperModelConfig

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class ConfigError(ValueError):
    """A config file or override is invalid; the message names the offending key."""


@dataclass
class Config:
    """The whole configuration of one run."""

    name: str = "default"
    seed: int = 0
    """The one seed behind every random choice (training, sampling, baselines); training
    draws from ``train.seed`` instead when that is set."""
    k: int = 5
    """Top-K highly and lowly activating clips per neuron."""
    run_dir: str | None = None
    """Where every stage writes (``None``: ``runs/<name>``)."""
    figures_dir: str = "figures"
    cache_dir: str = ".cache/andlib"
    """Trained models, downloads and LLM/caption caches shared across runs."""
    strategies: list[str] = field(default_factory=list)
    """When non-empty, ``reproduce`` runs the pipeline once per entry and compares the runs:
    a training strategy (``supervised``, ``ssl-frozen``, ``ssl-finetuned``), or any other
    name that ``strategy_models`` maps to a model (``configs/pitch.yaml``: ``crepe-tiny``,
    ``pesto``)."""
    strategy_models: dict[str, str] = field(default_factory=dict)
    """``model.name`` of a strategy's run (default ``trained:<strategy>``): e.g. a hub
    checkpoint already trained that way, such as a supervised AST, instead of training one;
    required for an entry of ``strategies`` that is not a training strategy."""
    seeds: list[int] = field(default_factory=list)
    """With ``strategies``: train and dissect every trained strategy once per training seed
    (``train.seed``), into ``<run_dir>/<strategy>/seed<k>/``, and compare the strategies over
    the seeds (mean, spread, orderings that hold in every seed). A strategy that
    ``strategy_models`` maps to a checkpoint runs once (``<run_dir>/<strategy>/``). Empty:
    one run per strategy, in ``<run_dir>/<strategy>/``."""
    reference_runs: dict[str, str] = field(default_factory=dict)
    """With ``strategies``: other configs' runs compared beside the strategies' (name -> config
    file, e.g. ``{ast: configs/default.yaml}``). They are read from their own run directories,
    never re-run; a missing one is left out with a warning naming the command that makes it."""
    base_runs: dict[str, str] = field(default_factory=dict)
    """With ``strategies``: the run whose model and recorded neurons a strategy's run reuses
    (strategy -> config file; a strategies config's run of the same strategy name, else its one
    run). That run records nothing of its own: its ``model``, ``data``, ``record`` and
    ``train`` settings and ``seed`` are the base config's, and the record stage links the base
    run's neurons (``record.base``) and adds only the SAE layers."""
    strategy_settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    """With ``strategies``: per strategy, settings of its run alone (``{ast:
    {sae.token_budget: 1000000}}``: dotted keys)."""
    skip_notebooks: list[str] = field(default_factory=list)
    """Numbered notebooks ``reproduce`` leaves out, by their two-digit prefix (``["00",
    "05"]`` in ``configs/pitch.yaml``: pretrained pitch networks need no training, and
    concept pruning measures ESC-50 classes)."""
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    record: RecordConfig = field(default_factory=RecordConfig)
    captioner: CaptionerConfig = field(default_factory=CaptionerConfig)
    llm: LLMConfig = field(default_factory=LLMConfig)
    embedder: EmbedderConfig = field(default_factory=EmbedderConfig)
    concepts: ConceptsConfig = field(default_factory=ConceptsConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    prune: PruneConfig = field(default_factory=PruneConfig)
    analysis: AnalysisConfig = field(default_factory=AnalysisConfig)
    sae: SaeConfig = field(default_factory=SaeConfig)

    # ---- derived paths ---------------------------------------------------------------------
    @property
    def run_path(self) -> Path:
        return resolve_path(self.run_dir or f"runs/{self.name}")

    @property
    def figures_path(self) -> Path:
        return resolve_path(self.figures_dir)

    @property
    def cache_path(self) -> Path:
        return resolve_path(self.cache_dir)

    def strategy_model(self, strategy: str) -> str:
        """``model.name`` of a strategy's run: ``strategy_models[strategy]``, else
        ``trained:<strategy>``."""
        return self.strategy_models.get(strategy, f"trained:{strategy}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def section_hash(self, *keys: str, extra: Any = None) -> str:
        """A short hash of the named parts of the config (dotted keys) plus ``extra``.

        Stage caches are keyed by this: a stage is recomputed exactly when one of the
        settings it depends on changes.
        """
        d = self.to_dict()
        _drop_keyless_defaults(self, d)
        parts = {key: _get_dotted(d, key) for key in keys}
        return stable_hash({"parts": parts, "extra": extra})


# --------------------------------------------------------------------------------------------
# Loading, overrides, validation
# --------------------------------------------------------------------------------------------


def resolve_path(p: str | os.PathLike) -> Path:
    """Absolute paths stay; relative ones are taken from the project root."""
    path = Path(os.path.expanduser(str(p)))
    return path if path.is_absolute() else (PROJECT_ROOT / path)


def stable_hash(obj: Any, length: int = 16) -> str:
    blob = json.dumps(obj, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:length]


def _default(f: dataclasses.Field) -> Any:
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return f.default


KEYLESS = ("keyless_default", "family_block")
"""Field metadata: a field so marked is left out of :meth:`Config.section_hash` while it is at
its default (an option added later, or a model family's block), so adding it kept every
existing stage key."""


EXECUTION = "execution"
"""Field metadata: a setting of how a stage runs, not of what it computes (the record
engine, its shard size and Ray settings): never part of :meth:`Config.section_hash`."""


def _drop_keyless_defaults(obj: Any, d: dict[str, Any]) -> None:
    """Remove from ``d`` (``obj`` as a dict) the :data:`EXECUTION` fields and the
    :data:`KEYLESS` fields at their defaults."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if f.metadata.get(EXECUTION) or (
            any(f.metadata.get(m) for m in KEYLESS) and value == _default(f)
        ):
            d.pop(f.name, None)
        elif dataclasses.is_dataclass(value) and isinstance(d.get(f.name), dict):
            _drop_keyless_defaults(value, d[f.name])


def _get_dotted(d: dict[str, Any], key: str) -> Any:
    cur: Any = d
    for part in key.split("."):
        if not isinstance(cur, dict) or part not in cur:
            raise ConfigError(f"unknown config key {key!r}")
        cur = cur[part]
    return cur


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against the annotation ``tp``; return it (ints widen to floats)."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        if len(options) == 1:  # Optional[X]: X's own message is the clearest
            return _coerce(value, options[0], key)
        for arg in options:
            try:
                return _coerce(value, arg, key)
            except ConfigError:
                continue
        raise ConfigError(f"{key}: expected {_type_name(tp)}, got {value!r}")
    if origin is list:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{key}: expected a list, got {type(value).__name__} {value!r}")
        (item_tp,) = args or (Any,)
        return [_coerce(v, item_tp, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return dict(value)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping of settings, got {value!r}")
        return _build(typing.cast(type, tp), value, prefix=f"{key}.")
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{key}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{key}: expected a string, got {value!r}")
    return value


def _build(cls: type, values: dict[str, Any], prefix: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ConfigError(
            f"unknown config key '{prefix}{unknown[0]}'; valid keys here: {', '.join(sorted(names))}"
        )
    kwargs = {name: _coerce(v, hints[name], f"{prefix}{name}") for name, v in values.items()}
    return cls(**kwargs)


def parse_override(text: str) -> tuple[str, Any]:
    """``"data.limit=100"`` -> ``("data.limit", 100)``; values are parsed as YAML scalars/lists."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} is not of the form key=value")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"override {text!r} has an empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() != "" else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {key}: cannot parse value {raw!r}: {exc}") from exc
    return key, value


def _set_dotted(d: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    cur = d
    valid: Any = Config
    for i, part in enumerate(parts):
        names = {f.name: f for f in dataclasses.fields(valid)}
        if part not in names:
            raise ConfigError(f"unknown config key {'.'.join(parts[: i + 1])!r}")
        if i == len(parts) - 1:
            cur[part] = value
            return
        hint = typing.get_type_hints(valid)[part]
        if not dataclasses.is_dataclass(hint):
            raise ConfigError(f"config key {'.'.join(parts[: i + 1])!r} has no sub-keys")
        valid = hint
        cur = cur.setdefault(part, {})
        if not isinstance(cur, dict):
            raise ConfigError(f"config key {'.'.join(parts[: i + 1])!r} must be a mapping")


def find_config_file(path: str | os.PathLike) -> Path:
    """A config path as given, else relative to the project root."""
    p = Path(path)
    if p.exists():
        return p.resolve()
    q = resolve_path(path)
    if q.exists():
        return q
    raise ConfigError(f"config file not found: {path} (also looked in {q})")


def load_config(
    path: str | os.PathLike | None = None,
    overrides: list[str] | dict[str, Any] | None = None,
) -> Config:
    """Load a YAML config (or the defaults when ``path`` is None) and apply overrides.

    ``overrides`` is a list of ``"dotted.key=value"`` strings (the CLI's ``--set``) or a
    mapping of dotted keys to values.
    """
    raw: dict[str, Any] = {}
    if path is not None:
        file = find_config_file(path)
        try:
            loaded = yaml.safe_load(file.read_text())
        except yaml.YAMLError as exc:
            raise ConfigError(f"{file}: not valid YAML: {exc}") from exc
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{file}: top level must be a mapping of settings")
        raw = loaded
    items: list[tuple[str, Any]]
    if overrides is None:
        items = []
    elif isinstance(overrides, dict):
        items = list(overrides.items())
    else:
        items = [parse_override(o) for o in overrides]
    for key, value in items:
        _set_dotted(raw, key, value)
    cfg = _build(Config, raw)
    validate(cfg)
    return cfg


_CHOICES = {
    "data.dataset": ("esc50", "folder", "synthetic", "pitched"),
    "data.on_error": ("skip", "raise"),
    "model.kind": ("auto", "classification", "encoder"),
    "model.device": ("auto", "cpu", "cuda"),
    "model.dtype": ("float32", "bfloat16"),
    "model.whisper.input": ("trimmed", "padded"),
    "train.strategy": ("supervised", "ssl-frozen", "ssl-finetuned"),
    "record.pooling": ("mean", "max", "cls"),
    "record.engine": ("local", "ray"),
    "record.base.missing": ("error", "record"),
    "concepts.db_clips": ("all", "top_k"),
    "concepts.similarity_params.soft_wpmi_prior": ("neurons", "clips"),
    "concepts.similarity_params.wpmi_prior": ("neurons", "clips"),
    "concepts.adjective_prompt": ("acoustic", "tone_emotion"),
    "analysis.cluster_unit": ("caption", "sentence"),
}


TAGGER_FEATURES = ("hand", "hand+extra", "whisper-base")
"""``captioner.tagger_features``: the hand-made statistics (``hand+extra``: with 347 more), or a
model's pooled features."""

TAGGER_MODELS = ("ensemble", "logistic")
"""``captioner.tagger_model``: the tagger's classifier."""


def _validate_group_pattern(cfg: Config) -> None:
    """``data.group_pattern``: a folder dataset's, compiling, with a group for the recording."""
    pattern = cfg.data.group_pattern
    if pattern is None:
        return
    if cfg.data.dataset != "folder":
        raise ConfigError(
            f"data.group_pattern: only the folder dataset reads it, not {cfg.data.dataset!r}"
        )
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise ConfigError(
            f"data.group_pattern: {pattern!r} is not a regular expression: {exc}"
        ) from None
    if compiled.groups < 1:
        raise ConfigError(
            f"data.group_pattern: {pattern!r} has no group; put the part of the file name that "
            "names the recording in parentheses, e.g. '^(\\d+)-'"
        )


def _validate_strategy_maps(cfg: Config) -> None:
    """``base_runs`` and ``strategy_settings``: entries of ``strategies``, config files and
    known dotted keys."""
    for name, path in cfg.base_runs.items():
        if name not in cfg.strategies:
            raise ConfigError(f"base_runs: {name!r} is not one of strategies")
        if not isinstance(path, str) or not path:
            raise ConfigError(f"base_runs.{name}: expected a config file, got {path!r}")
    for name, settings in cfg.strategy_settings.items():
        if name not in cfg.strategies:
            raise ConfigError(f"strategy_settings: {name!r} is not one of strategies")
        if not isinstance(settings, dict):
            raise ConfigError(f"strategy_settings.{name}: expected a mapping of dotted keys")
        for key, value in settings.items():
            try:
                _set_dotted({}, str(key), value)
            except ConfigError as exc:
                raise ConfigError(f"strategy_settings.{name}: {exc}") from None


def _validate_record(cfg: Config) -> None:
    """``record.shard_rows`` and ``record.ray``: counts and resources in range."""
    r = cfg.record
    if r.shard_rows < 1:
        raise ConfigError(f"record.shard_rows: must be at least 1, got {r.shard_rows}")
    ray = r.ray
    if ray.num_actors < 1:
        raise ConfigError(f"record.ray.num_actors: must be at least 1, got {ray.num_actors}")
    for name in ("num_cpus_per_actor", "num_cpus_per_decode"):
        if getattr(ray, name) <= 0:
            raise ConfigError(f"record.ray.{name}: must be positive, got {getattr(ray, name)}")
    if ray.num_gpus_per_actor < 0:
        raise ConfigError(
            f"record.ray.num_gpus_per_actor: must be 0 or more, got {ray.num_gpus_per_actor}"
        )
    if ray.max_restarts < 0:
        raise ConfigError(f"record.ray.max_restarts: must be 0 or more, got {ray.max_restarts}")
    if ray.fail_after_batches is not None and ray.fail_after_batches < 1:
        raise ConfigError(
            f"record.ray.fail_after_batches: must be at least 1 (or null), got {ray.fail_after_batches}"
        )
    if ray.address is not None and not ray.address.strip():
        raise ConfigError("record.ray.address: empty (leave it unset to start Ray locally)")


def validate(cfg: Config) -> None:
    """Cross-field checks that types alone cannot express."""
    d = cfg.to_dict()
    for key, choices in _CHOICES.items():
        value = _get_dotted(d, key)
        if value not in choices:
            raise ConfigError(f"{key}: {value!r} is not one of {', '.join(choices)}")
    for s in cfg.strategies:
        if s not in _CHOICES["train.strategy"] and s not in cfg.strategy_models:
            raise ConfigError(
                f"strategies: {s!r} is not one of {', '.join(_CHOICES['train.strategy'])} "
                f"(or a name that strategy_models maps to a model)"
            )
    if cfg.seeds and not cfg.strategies:
        raise ConfigError("seeds: needs strategies (the seeds of a strategies comparison)")
    if len(set(cfg.seeds)) != len(cfg.seeds) or any(k < 0 for k in cfg.seeds):
        raise ConfigError(f"seeds: expected distinct non-negative integers, got {cfg.seeds}")
    if cfg.train.seed is not None and cfg.train.seed < 0:
        raise ConfigError(f"train.seed: must be non-negative (or null), got {cfg.train.seed}")
    for prefix in cfg.skip_notebooks:
        if not (len(prefix) == 2 and prefix.isdigit()):
            raise ConfigError(f"skip_notebooks: {prefix!r} is not a two-digit notebook prefix")
    if cfg.data.dataset == "pitched":
        lo_hi = cfg.data.pitched_midi
        if len(lo_hi) != 2 or not 0 <= lo_hi[0] < lo_hi[1] <= 127:
            raise ConfigError(
                f"data.pitched_midi: expected [low, high] MIDI notes in 0..127, got {lo_hi}"
            )
        if cfg.data.pitched_step_cents <= 0:
            raise ConfigError("data.pitched_step_cents: must be positive")
    _validate_group_pattern(cfg)
    if cfg.captioner.tagger_features not in TAGGER_FEATURES:
        raise ConfigError(
            f"captioner.tagger_features: {cfg.captioner.tagger_features!r} is not one of "
            f"{', '.join(TAGGER_FEATURES)}"
        )
    if cfg.captioner.tagger_model not in TAGGER_MODELS:
        raise ConfigError(
            f"captioner.tagger_model: {cfg.captioner.tagger_model!r} is not one of "
            f"{', '.join(TAGGER_MODELS)}"
        )
    if cfg.data.mix_esc50 < 0:
        raise ConfigError(f"data.mix_esc50: must be 0 or more, got {cfg.data.mix_esc50}")
    for s, name in cfg.strategy_models.items():
        if s not in cfg.strategies:
            raise ConfigError(
                f"strategy_models: {s!r} is not one of strategies ({', '.join(cfg.strategies)})"
            )
        if not isinstance(name, str) or not name:
            raise ConfigError(f"strategy_models.{s}: expected a model name, got {name!r}")
    _validate_strategy_maps(cfg)
    for name, path in cfg.reference_runs.items():
        if not isinstance(path, str) or not path:
            raise ConfigError(f"reference_runs.{name}: expected a config file, got {path!r}")
        if name in cfg.strategies:
            raise ConfigError(f"reference_runs.{name}: the name is already one of strategies")
    for label, cls in cfg.evaluate.label_map.items():
        if cls is not None and (isinstance(cls, bool) or not isinstance(cls, str | int)):
            raise ConfigError(
                f"evaluate.label_map.{label}: expected a class name, an output index or null, "
                f"got {cls!r}"
            )
    if cfg.k < 1:
        raise ConfigError(f"k: must be at least 1, got {cfg.k}")
    _validate_record(cfg)
    if cfg.data.limit is not None and cfg.data.limit < 1:
        raise ConfigError(f"data.limit: must be at least 1, got {cfg.data.limit}")
    if cfg.data.sample_rate < 1000:
        raise ConfigError(f"data.sample_rate: {cfg.data.sample_rate} Hz is not a usable rate")
    if not cfg.record.layers:
        raise ConfigError("record.layers: name at least one layer")
    if not cfg.model.name:
        raise ConfigError("model.name: must not be empty")
    if cfg.concepts.db_template.count("{}") != 1:
        raise ConfigError(
            f"concepts.db_template: needs exactly one {{}} for the concept's name, got "
            f"{cfg.concepts.db_template!r}"
        )
    if cfg.concepts.db_default not in cfg.concepts.similarity:
        raise ConfigError(
            f"concepts.db_default: {cfg.concepts.db_default!r} is not one of concepts.similarity "
            f"({', '.join(cfg.concepts.similarity)})"
        )
    sp = cfg.concepts.similarity_params
    for name in ("soft_wpmi_top_fraction", "wpmi_top_fraction"):
        value = getattr(sp, name)
        if value is not None and not 0 < value <= 1:
            raise ConfigError(f"concepts.similarity_params.{name}: must be in (0, 1], got {value}")
    if cfg.prune.max_share is not None and not 0 < cfg.prune.max_share <= 1:
        raise ConfigError(
            f"prune.max_share: must be in (0, 1] (or null), got {cfg.prune.max_share}"
        )
    if cfg.concepts.tab_logit_scale is not None and cfg.concepts.tab_logit_scale <= 0:
        raise ConfigError(
            f"concepts.tab_logit_scale: must be positive (or null), got {cfg.concepts.tab_logit_scale}"
        )
    _validate_sae(cfg)


def _validate_sae(cfg: Config) -> None:
    """The ``sae`` section's own checks; what needs the recording (a ``k`` not below the
    dictionary size, an unrecorded layer, the budget's passes) is checked when it is read
    (:func:`andlib.models.sae.check_plan`)."""
    sae = cfg.sae
    for k in (sae.k, *sae.sweep_k):
        if k < 1:
            raise ConfigError(f"sae.k: must be at least 1, got {k}")
    for name in ("expansion", "token_budget", "batch_size", "shard_rows"):
        if getattr(sae, name) < 1:
            raise ConfigError(f"sae.{name}: must be at least 1, got {getattr(sae, name)}")
    if sae.max_passes <= 0:
        raise ConfigError(f"sae.max_passes: must be positive, got {sae.max_passes}")
    if sae.eval_fold in sae.train_folds:
        raise ConfigError(f"sae.eval_fold: fold {sae.eval_fold} is also one of sae.train_folds")
    if not sae.train_folds:
        raise ConfigError("sae.train_folds: name at least one fold to train on")
    virtual = [layer for layer in sae.layers if layer.startswith("sae.")]
    if virtual:
        raise ConfigError(f"sae.layers: {virtual[0]!r} is an SAE's layer; name a recorded one")


def dump_config(cfg: Config) -> str:
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) from the config's one seed."""
    import numpy as np

    random.seed(seed)
    np.random.seed(seed % (2**32))
    try:
        import torch

        torch.manual_seed(seed)
    except ImportError:  # pragma: no cover - torch is a hard dependency
        pass


def rng(cfg_or_seed: Config | int, *salt: Any):
    """A NumPy generator for one purpose: the config seed mixed with a purpose label.

    Different purposes (``rng(cfg, "prune", "random")``) draw independent streams, and the
    same purpose always draws the same numbers for the same seed.
    """
    import numpy as np

    seed = cfg_or_seed.seed if isinstance(cfg_or_seed, Config) else int(cfg_or_seed)
    mixed = int(stable_hash([seed, *salt]), 16) % (2**63)
    return np.random.default_rng(mixed)
