"""Training the offline target model: a small Audio Spectrogram Transformer on ESC-50.

Three strategies share one architecture, a transformers ``ASTConfig`` built from ``cfg.train``:

- ``supervised``: trained from scratch on ESC-50 folds 1-4; fold 5 is held out.
- ``ssl-frozen``: the encoder is pretrained without labels by masked spectrogram modelling
  (SSAST-style: hide a fraction of the patches, reconstruct them) on the audio of all folds,
  then frozen; only the classifier head is trained on folds 1-4 (a linear probe).
- ``ssl-finetuned``: the same pretrained encoder, fine-tuned end to end on folds 1-4.

How it trains: the log-mel features are computed once per clip with the model's own
``ASTFeatureExtractor`` (its mean/std set from the training folds), and training runs on those
spectrogram tensors, augmented on the fly (random gain, circular time shift, SpecAugment-style
frequency/time masks, mixup). Every random draw (initialization, batch order, augmentation,
mixup, the SSL patch masks, dropout) comes from the training seed (``train.seed``, else the
config's ``seed``), so the same config trains the same weights on the same thread count (the
thread count and device are recorded with the metrics: float sums, and so the weights, can
differ between thread counts).

Results are cached in ``<cache_dir>/models/<strategy>-<hash>/``: a ``save_pretrained`` folder
(model + feature extractor, ESC-50 category names as labels) plus ``andlib_training.json``
(metrics, merged into ``model.json`` by :func:`andlib.models.registry.load_pretrained`) and
``history.json`` (the per-epoch log). A model is written to a temporary folder and renamed into
place, so an interrupted run never leaves a half model. The pretrained encoder is cached beside
them (``ssl-pretrained-<hash>/``) and shared by both ssl strategies.

Public surface: :data:`STRATEGIES`, :func:`ensure_trained`, :func:`train_model`,
:func:`trained_model` (what loaders call: never trains), :func:`is_trained`,
:func:`model_dir`, :func:`train_seed`, :func:`with_train_seed`, :func:`read_metrics`,
:func:`read_history`, :func:`planned_models`, :func:`train_command`; the pieces
used by the tests: :func:`load_features`, :func:`build_model`, :func:`augment`,
:class:`MaskedSpectrogramModel`, :func:`fit_classifier`, :func:`linear_probe`, :func:`accuracy`;
:data:`ARCHITECTURE` (the ``cfg.train`` fields that shape the model). The features and their
augmentation (:mod:`andlib.models.train_data`), the model and the training loop with its
checkpoints (:mod:`andlib.models.train_loop`) and the self-supervised pretraining
(:mod:`andlib.models.pretrain`) live in their own modules; their names stay importable from here.
The ``train`` stage itself (which also fits an encoder family's probe head) is
:mod:`andlib.models.train_stage`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from andlib.config import Config, TrainConfig, rng, seed_everything, stable_hash
from andlib.models.pretrain import MaskedSpectrogramModel as MaskedSpectrogramModel
from andlib.models.pretrain import pretrain as pretrain
from andlib.models.train_data import Features as Features
from andlib.models.train_data import augment as augment
from andlib.models.train_data import load_features as load_features
from andlib.models.train_data import log_mel as log_mel
from andlib.models.train_loop import accuracy as accuracy
from andlib.models.train_loop import build_model as build_model
from andlib.models.train_loop import checkpoint_dir as checkpoint_dir
from andlib.models.train_loop import fit_classifier as fit_classifier
from andlib.models.train_loop import linear_probe as linear_probe
from andlib.models.train_loop import model_from_init as model_from_init
from andlib.models.train_loop import resumed_seconds
from andlib.store import write_json

log = logging.getLogger(__name__)

STRATEGIES = ("supervised", "ssl-frozen", "ssl-finetuned")
METRICS_FILE = "andlib_training.json"
HISTORY_FILE = "history.json"
FORMAT_VERSION = 1
"""Bumped when a change to this module or the ones it draws on (:mod:`~andlib.models.train_data`,
:mod:`~andlib.models.train_loop`, :mod:`~andlib.models.pretrain`) changes the trained weights
(invalidates caches)."""

# Which ``cfg.train`` keys a cached model depends on. Everything else in the section counts,
# except these, which do not change the weights (or are in the folder name already).
_NOT_IN_KEY = ("strategy", "num_threads", "eval_every", "seed")
"""``seed`` is keyed as the training seed itself (:func:`train_seed`), not as a setting: an
unset ``train.seed`` and ``train.seed`` equal to the config's ``seed`` are one model."""
_SSL_ONLY = ("pretrain_epochs", "pretrain_lr", "mask_ratio")
_LINEAR_ONLY = ("linear_epochs", "linear_lr")
_FINETUNE_ONLY = ("epochs", "mixup_alpha", "freq_mask", "time_mask", "num_masks")
"""Fine-tuning settings the linear probe (ssl-frozen) never reads: the probe trains on stored
encoder outputs without augmentation (pretraining's own gain/shift count through its key)."""
_OPTIONAL = ("init", "linear_lr")
ARCHITECTURE = (
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "patch_size",
    "frequency_stride",
    "time_stride",
    "num_mel_bins",
    "max_length",
    "dropout",
)
"""The ``cfg.train`` fields that shape the model (``build_model``); the pretrained encoder's
cache key starts with them."""
_PRETRAIN_KEYS = ARCHITECTURE + (
    "pretrain_epochs",
    "pretrain_lr",
    "mask_ratio",
    "batch_size",
    "weight_decay",
    "warmup_epochs",
    "gain_db",
    "shift_frames",
    "freq_shift",
    "train_folds",  # the feature normalisation statistics come from the training folds
    "max_minutes",
    "max_steps",
)


# --------------------------------------------------------------------------------------------
# Cache layout
# --------------------------------------------------------------------------------------------


def _check_strategy(strategy: str | None, cfg: Config) -> str:
    strategy = strategy or cfg.train.strategy
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown training strategy {strategy!r}; one of {', '.join(STRATEGIES)}")
    return strategy


def train_seed(cfg: Config) -> int:
    """The seed training draws from: ``train.seed``, else the config's ``seed``."""
    return cfg.seed if cfg.train.seed is None else cfg.train.seed


def with_train_seed(cfg: Config, seed: int | None) -> Config:
    """``cfg`` with ``train.seed = seed`` (``None``: ``cfg`` unchanged)."""
    if seed is None:
        return cfg
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, seed=seed))


def _key(cfg: Config, keys: list[str] | tuple[str, ...], purpose: str) -> str:
    train = dataclasses.asdict(cfg.train)
    data = cfg.data
    key: dict[str, Any] = {
        "purpose": purpose,
        "version": FORMAT_VERSION,
        "train": {k: train[k] for k in sorted(keys) if k not in _NOT_IN_KEY},
        "data": [data.sample_rate, data.duration, data.limit],
        "seed": train_seed(cfg),
    }
    if train_seed(cfg) != cfg.seed:  # the clips data.limit keeps are drawn from the config seed
        key["data_seed"] = cfg.seed
    return stable_hash(key)


def model_dir(cfg: Config, strategy: str | None = None) -> Path:
    """``<cache_dir>/models/<strategy>-<hash>``: the hash covers every ``cfg.train`` setting the
    strategy depends on, the data sample rate, clip duration and limit, and the training seed
    (:func:`train_seed`)."""
    strategy = _check_strategy(strategy, cfg)
    ignored = set(_NOT_IN_KEY)
    if strategy == "supervised":
        ignored |= set(_SSL_ONLY) | set(_LINEAR_ONLY)
    elif strategy == "ssl-finetuned":
        ignored |= set(_LINEAR_ONLY)
    else:
        ignored |= set(_FINETUNE_ONLY)
    # optional settings left unset keep the keys of models trained before they existed
    ignored |= {k for k in _OPTIONAL if getattr(cfg.train, k) is None}
    if cfg.train.init is not None and strategy != "supervised":
        ignored |= set(_SSL_ONLY)  # the checkpoint is the pretraining: none runs
    keys = [f.name for f in dataclasses.fields(TrainConfig) if f.name not in ignored]
    return cfg.cache_path / "models" / f"{strategy}-{_key(cfg, keys, strategy)}"


def _pretrained_dir(cfg: Config) -> Path:
    return cfg.cache_path / "models" / f"ssl-pretrained-{_key(cfg, _PRETRAIN_KEYS, 'pretrain')}"


def read_metrics(path: str | os.PathLike) -> dict[str, Any]:
    """The ``andlib_training.json`` of a trained model folder."""
    return json.loads((Path(path) / METRICS_FILE).read_text())


def read_history(path: str | os.PathLike) -> dict[str, list[dict[str, Any]]]:
    """The per-epoch log of a trained model folder: ``{phase: [{epoch, loss, ...}, ...]}``
    (phases: ``pretrain``, ``finetune``, ``linear``); empty when none was saved."""
    f = Path(path) / HISTORY_FILE
    return json.loads(f.read_text()) if f.exists() else {}


def _save_atomic(dest: Path, write: Callable[[Path], None]) -> Path:
    """Let ``write`` fill a temporary sibling folder, then rename it to ``dest``."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp"))
    try:
        tmp.chmod(0o755)  # mkdtemp makes it private; the cache is shared
        write(tmp)
        if dest.exists():  # another process finished the same model first: keep theirs
            shutil.rmtree(tmp)
        else:
            os.rename(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


# --------------------------------------------------------------------------------------------
# The pretrained encoder, cached
# --------------------------------------------------------------------------------------------


def _ensure_pretrained(cfg: Config, feats: Features) -> tuple[Path, dict[str, Any]]:
    """The cached pretrained encoder (as an ``ASTForAudioClassification`` folder)."""
    path = _pretrained_dir(cfg)
    if not (path / METRICS_FILE).exists():
        t0 = time.time()
        seed = train_seed(cfg)
        model: Any = build_model(cfg.train, feats.class_names, seed).to(_train_device(cfg))
        ckpt = checkpoint_dir(path) / "pretrain.pt"
        t0 -= resumed_seconds(ckpt)  # an interrupted earlier run's share
        history = pretrain(model, feats, cfg.train, rng(seed, "train", "pretrain"), ckpt)
        model.cpu()
        meta = {
            "pretrain_seed": seed,
            "pretrain_num_threads": torch.get_num_threads(),
            "pretrain_seconds": round(time.time() - t0, 1),
            "pretrain_epochs": len(history),
            "pretrain_steps": history[-1]["step"],
            "pretrain_loss": history[-1]["loss"],
            "n_pretrain_clips": len(feats.x),
        }

        def write(tmp: Path) -> None:
            model.save_pretrained(tmp)
            write_json(tmp / HISTORY_FILE, {"pretrain": history})
            write_json(tmp / METRICS_FILE, meta)

        _save_atomic(path, write)
        shutil.rmtree(checkpoint_dir(path), ignore_errors=True)
        log.info("pretrained encoder saved to %s (%.0f s)", path, meta["pretrain_seconds"])
    return path, read_metrics(path)


# --------------------------------------------------------------------------------------------
# Training a strategy end to end, with the cache
# --------------------------------------------------------------------------------------------


def _train_device(cfg: Config) -> torch.device:
    from andlib.models.base import resolve_device

    return resolve_device(cfg.model.device)


def train_model(cfg: Config, strategy: str | None = None) -> Path:
    """Train ``strategy`` (default ``cfg.train.strategy``) now and save it to :func:`model_dir`.

    Returns the ``save_pretrained`` folder. Prefer :func:`ensure_trained`, which reuses it.
    """
    from transformers import ASTForAudioClassification

    strategy = _check_strategy(strategy, cfg)
    tc = cfg.train
    dest = model_dir(cfg, strategy)
    threads = torch.get_num_threads()
    torch.set_num_threads(tc.num_threads or os.cpu_count() or 1)
    try:
        t0 = time.time()
        seed = train_seed(cfg)
        seed_everything(seed)
        feats = load_features(cfg)
        gen = rng(seed, "train", strategy)
        history: dict[str, list[dict[str, Any]]] = {}
        pre: dict[str, Any] = {}
        model: Any  # a transformers audio classifier
        device = _train_device(cfg)
        if tc.init is not None:  # a pretrained checkpoint replaces the project's AST
            model = model_from_init(
                tc.init, feats.class_names, random_weights=strategy == "supervised", seed=seed
            )
            pre = {"init": tc.init}
        elif strategy == "supervised":
            model = build_model(tc, feats.class_names, seed)
        else:
            # pretraining counts with its recorded time, as it may come from the cache
            t_pre = time.time()
            pre_path, pre = _ensure_pretrained(cfg, feats)
            t0 += time.time() - t_pre
            history.update(read_history(pre_path))
            model = ASTForAudioClassification.from_pretrained(pre_path)
        model.to(device)
        if strategy == "ssl-frozen":
            history["linear"] = linear_probe(model, feats, tc, gen)
        else:
            ckpt = checkpoint_dir(dest) / "finetune.pt"
            t0 -= resumed_seconds(ckpt)  # an interrupted earlier run's share
            history["finetune"] = fit_classifier(model, feats, tc, gen, checkpoint=ckpt)
        seconds = time.time() - t0 + pre.get("pretrain_seconds", 0.0)
        last = history["linear" if strategy == "ssl-frozen" else "finetune"][-1]
        x_tr, y_tr = feats.split(tc.train_folds)
        x_held, y_held = feats.split([tc.heldout_fold])
        metrics: dict[str, Any] = {
            "strategy": strategy,
            "train_accuracy": accuracy(model, x_tr, y_tr),
            "heldout_accuracy": accuracy(model, x_held, y_held),
            "train_seconds": round(seconds, 1),
            "epochs": last["epoch"],
            "steps": last["step"],
            "train_folds": list(tc.train_folds),
            "heldout_fold": tc.heldout_fold,
            "n_train": len(x_tr),
            "n_heldout": len(x_held),
            "n_parameters": int(sum(p.numel() for p in model.parameters())),
            **pre,
            "train_config": dataclasses.asdict(tc),
            "seed": seed,
            "num_threads": torch.get_num_threads(),
            "device": str(device),
        }
    finally:
        torch.set_num_threads(threads)
    model.requires_grad_(True).eval().cpu()

    def write(tmp: Path) -> None:
        model.save_pretrained(tmp)
        feats.extractor.save_pretrained(tmp)
        write_json(tmp / HISTORY_FILE, history)
        write_json(tmp / METRICS_FILE, metrics)

    _save_atomic(dest, write)
    shutil.rmtree(checkpoint_dir(dest), ignore_errors=True)
    held = metrics["heldout_accuracy"]
    log.info(
        "%s: train accuracy %.3f, held-out (fold %d) accuracy %s, %.0f s -> %s",
        strategy,
        metrics["train_accuracy"],
        tc.heldout_fold,
        "n/a" if held is None else f"{held:.3f}",
        seconds,
        dest,
    )
    return dest


def ensure_trained(cfg: Config, strategy: str | None = None) -> Path:
    """The cached model folder for ``strategy`` (default ``cfg.train.strategy``); trains it
    first when it is missing. Only the ``train`` stage calls it: loaders use
    :func:`trained_model`, which never trains."""
    path = model_dir(cfg, strategy)
    if is_trained(path):
        log.info("reusing trained model %s", path)
        return path
    return train_model(cfg, strategy)


def is_trained(path: str | os.PathLike) -> bool:
    """Whether ``path`` holds a finished trained model (its metrics are written last)."""
    return (Path(path) / METRICS_FILE).exists()


def train_command(cfg: Config) -> str:
    """The command that trains what ``cfg`` needs: ``python -m andlib train --config ...``."""
    from andlib.config import PROJECT_ROOT

    config = Path("configs") / f"{cfg.name}.yaml"
    shown = str(config) if (PROJECT_ROOT / config).is_file() else "<your config>"
    return f"python -m andlib train --config {shown}"


def trained_model(cfg: Config, strategy: str | None = None) -> Path:
    """The cached model folder for ``strategy`` (default ``cfg.train.strategy``), never trained
    here: when it is missing, a :class:`~andlib.models.base.ModelLoadError` naming the command
    that trains it (the ``train`` stage, which the pipeline runs before ``record``)."""
    from andlib.models.base import ModelLoadError

    strategy = _check_strategy(strategy, cfg)
    path = model_dir(cfg, strategy)
    if not is_trained(path):
        raise ModelLoadError(
            f"trained:{strategy} is not trained yet (no model in {path}): run "
            f"`{train_command(cfg)}` first, with the same --set overrides"
        )
    return path


SUMMARY_KEYS = ("train_accuracy", "heldout_accuracy", "train_seconds", "epochs", "steps")


def strategies_to_train(cfg: Config) -> list[str]:
    """``cfg.strategies`` when set (less those ``strategy_models`` maps to a checkpoint that
    needs no training), else the strategy of ``model.name = trained:<strategy>`` (empty when
    the target is a hub or local model: nothing to train)."""
    if cfg.strategies:
        return [s for s in cfg.strategies if cfg.strategy_model(s).startswith("trained:")]
    if cfg.model.name.startswith("trained:"):
        return [_check_strategy(cfg.model.name.split(":", 1)[1] or None, cfg)]
    return []


def planned_models(cfg: Config) -> list[tuple[int | None, str, Path]]:
    """``(training seed or None, strategy, model folder)`` of every model the ``train`` stage
    makes for ``cfg`` (:func:`strategies_to_train`, once per seed of ``cfg.seeds``), in order."""
    strategies = strategies_to_train(cfg)
    seeds: list[int | None] = list(cfg.seeds) if cfg.seeds else [None]
    return [
        (seed, strategy, model_dir(with_train_seed(cfg, seed), strategy))
        for seed in seeds
        for strategy in strategies
    ]
