"""Pooled encoder features for the source tagger (``captioner.tagger_features: whisper-base``).

The hand-made statistics of :func:`andlib.describe.tagger.tagger_features` leave the tagger
right for about two ESC-50 clips in three. A pretrained audio encoder separates the classes
far better: :class:`EncoderFeatures` runs one (loaded through the model-family registry, as a
target would be, with ``trimmed`` input and no probe head), mean-pools every block's output
over the clip's own positions and keeps them per clip; the tagger reads the block of
:data:`TAGGER_ENCODERS`.

Features are cached per clip, keyed by the SHA-256 of its samples, in one ``.npz`` per model,
input and :data:`ENCODER_FEATURES_VERSION` under ``<cache_dir>/taggers/``; a re-run, or a
subset of clips already seen, runs no model.

The target and the captioner must not share a model (:func:`same_model`): a tagger built on
the target's own features would name the sources the target already separates, and its
mistakes would be the target's. ``captioner.allow_same_model`` lifts the refusal.

Public surface: :class:`EncoderFeatures`, :data:`TAGGER_ENCODERS`, :func:`encoder_config`,
:func:`captioner_models`, :func:`same_model`, :func:`check_same_model`.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from andlib.config import Config, ConfigError

log = logging.getLogger(__name__)

ENCODER_FEATURES_VERSION = 1
"""Part of the feature cache's name: raise it when the pooling or the input changes."""

INPUT = "trimmed"
"""The encoder runs on the clip's own frames (Whisper's 30-s window is not padded)."""

TAGGER_ENCODERS: dict[str, str] = {"whisper-base": "layers.2.out"}
"""``captioner.tagger_features`` -> the block whose pooled output the tagger reads. For
Whisper-base the third block's output: on ESC-50 its cross-fitted top-1 is the best of the six
blocks' (docs/captioners.md gives each block's)."""

SAVE_EVERY = 400
"""Clips between two saves of the cache while measuring (an interrupted run keeps them)."""


def encoder_config(cfg: Config, name: str) -> Config:
    """``cfg`` with ``model`` set to the encoder ``name`` as the tagger runs it: float32,
    ``trimmed`` input, no probe head (the run's device and batch size)."""
    whisper = dataclasses.replace(cfg.model.whisper, input=INPUT, head=False)
    model = dataclasses.replace(cfg.model, name=name, dtype="float32", whisper=whisper)
    return dataclasses.replace(cfg, model=model)


class EncoderFeatures:
    """Every block's mean-pooled output of one encoder, per clip (``get``: ``[n, d]`` of the
    block :data:`TAGGER_ENCODERS` names).

    ``cfg`` supplies the cache folder, the device and the batch size; the model is loaded
    (through :func:`andlib.models.families.registry.family_of`) only when a clip is missing.
    """

    def __init__(self, cfg: Config, name: str, layer: str | None = None):
        self.cfg = encoder_config(cfg, name)
        self.name = name
        self.layer = layer or TAGGER_ENCODERS[name]
        self.path: Path = (
            cfg.cache_path
            / "taggers"
            / f"features-{name.replace('/', '--')}-{INPUT}-v{ENCODER_FEATURES_VERSION}.npz"
        )
        self.settings = {
            "tagger_features": name,
            "layer": self.layer,
            "input": INPUT,
            "encoder_features": ENCODER_FEATURES_VERSION,
        }
        self.description = f"{name}'s {self.layer} (mean-pooled over the clip, {INPUT} input)"
        self._layers: list[str] = []
        self._rows: dict[str, np.ndarray] | None = None  # read on first use

    def _read(self) -> dict[str, np.ndarray]:
        if self._rows is None:
            self._rows = {}
            if self.path.exists():
                with np.load(self.path) as z:
                    self._layers = [str(x) for x in z["layers"]]
                    self._rows = dict(zip(z["digests"].tolist(), z["features"], strict=True))
        return self._rows

    def blocks(self, audio: Sequence[np.ndarray], digests: Sequence[str], sr: int) -> dict:
        """``{layer: [n_clips, d]}``: every block's pooled output, measured where missing."""
        rows = self._read()
        todo = [i for i, d in enumerate(digests) if d not in rows]
        if todo:
            self._measure([audio[i] for i in todo], [digests[i] for i in todo], sr)
        stacked = np.stack([rows[d] for d in digests])
        return {layer: stacked[:, j] for j, layer in enumerate(self._layers)}

    def get(self, audio: Sequence[np.ndarray], digests: Sequence[str], sr: int) -> np.ndarray:
        """``[n_clips, d]``: the pooled output of :attr:`layer` (what the tagger reads)."""
        feats = self.blocks(audio, digests, sr)
        if self.layer not in feats:
            raise ConfigError(
                f"{self.name} has no block {self.layer!r}; blocks: {', '.join(feats)}"
            )
        return feats[self.layer]

    def _measure(self, audio: list[np.ndarray], digests: list[str], sr: int) -> None:
        rows = self._read()
        from andlib.data.audio import resample
        from andlib.models.families.registry import family_of
        from andlib.models.probe import block_features

        target = family_of(self.name).load(self.cfg)
        pooled = getattr(target.module, "pooled_blocks", None)
        if pooled is None:
            raise ConfigError(f"{self.name}: its model gives no pooled block outputs")
        if sr != target.sample_rate:
            audio = [resample(a, sr, target.sample_rate) for a in audio]
        log.info("tagger features: %s on %d clips", self.name, len(audio))
        start = time.perf_counter()
        for lo in range(0, len(audio), SAVE_EVERY):
            part = audio[lo : lo + SAVE_EVERY]
            feats = block_features(
                lambda batch: pooled(**target.inputs(batch)), part, self.cfg.model.batch_size
            )
            layers = list(feats)
            if self._layers and layers != self._layers:
                raise ConfigError(f"{self.path}: stored blocks differ from {self.name}'s")
            self._layers = layers
            stacked = np.stack([feats[k] for k in layers], axis=1).astype(np.float32)
            for d, row in zip(digests[lo : lo + SAVE_EVERY], stacked, strict=True):
                rows[d] = row
            self._save(rows)
            done = min(lo + SAVE_EVERY, len(audio))
            log.info(
                "tagger features: %d of %d clips in %.0f s",
                done,
                len(audio),
                time.perf_counter() - start,
            )

    def _save(self, rows: dict[str, np.ndarray]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.stem + ".tmp.npz")
        keys = list(rows)
        np.savez(
            tmp,
            digests=np.array(keys),
            layers=np.array(self._layers),
            features=np.stack([rows[k] for k in keys]),
        )
        tmp.replace(self.path)


# --------------------------------------------------------------------------------------------
# One model on both sides: refused
# --------------------------------------------------------------------------------------------


def captioner_models(cfg: Config, captioner: str | None = None) -> list[tuple[str, str]]:
    """``(config key, model name)`` of the models a captioner runs (``captioner``: a name of
    ``captioner.name``'s kind; default the configured one): the tagger's encoder, a
    ``transformers:`` captioner's model."""
    name = (captioner or cfg.captioner.name).strip()
    if name == "tagger+acoustic" and cfg.captioner.tagger_features in TAGGER_ENCODERS:
        return [("captioner.tagger_features", cfg.captioner.tagger_features)]
    kind, _, model = name.partition(":")
    if kind == "transformers" and model:
        return [("captioner.name", model)]
    return []


def same_model(a: str, b: str) -> bool:
    """Whether two model names mean one model: the same family and size, from any source."""
    from andlib.models.families.registry import family_of

    return family_of(a).model_identity(a) == family_of(b).model_identity(b)


def check_same_model(
    cfg: Config, targets: Iterable[str] | None = None, captioners: Iterable[str] | None = None
) -> None:
    """A :class:`ConfigError` naming both when a captioner would run the target's own model
    (``targets``: default ``model.name``; ``captioners``: default the configured one), unless
    ``captioner.allow_same_model``."""
    if cfg.captioner.allow_same_model:
        return
    for captioner in captioners if captioners is not None else [cfg.captioner.name]:
        for key, model in captioner_models(cfg, captioner):
            for target in targets if targets is not None else [cfg.model.name]:
                if same_model(model, target):
                    raise ConfigError(
                        f"{key}: {model} is the target's own model (model.name: {target}); a "
                        "captioner must not share a model with the target it describes (set "
                        "captioner.allow_same_model: true to allow it)"
                    )
