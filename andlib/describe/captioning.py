"""Clip captioning: every probing clip gets a plain-English description of what is heard.

Captioners (``captioner.name``):

- ``acoustic`` (offline default): measures the signal (:func:`acoustic_features`: loudness,
  pitch, tonal vs noisy, brightness, low/high energy, onsets and their regularity, envelope,
  silences) and says it in words. Words are chosen against the whole probing set (a clip is
  "loud" when it is among the loudest of the set) *and* against absolute anchors (a 100 Hz tone
  is low-pitched and a -45 dBFS clip quiet on any set).
- ``metadata+acoustic``: ``"The sound of a dog barking."`` from the clip's category, followed
  by the acoustic sentence. Leaks the label: report it beside ``acoustic``, never alone.
- ``transformers:<id or path>``: an audio-text-to-text model (e.g. Qwen2-Audio-7B-Instruct)
  prompted with ``captioner.prompt``, batched, on the GPU when there is one.
- ``openai:<model>``: an OpenAI-compatible chat endpoint that accepts ``input_audio`` parts.

Caching (``<cache_dir>/captions/``): model captioners cache one caption per clip, keyed by the
SHA-256 of the clip's samples and the captioner's name and settings, in one append-only
JSON-lines file per captioner-settings key; a re-run makes no model calls. The acoustic
captioners cache the *features* per clip instead (keyed by the audio hash and the feature
version) and compose captions from them: a caption depends on the whole set (the set-relative
thresholds), composing is cheap and deterministic, and features do not.

Public surface: :class:`Captioner`, :func:`get_captioner`, :func:`acoustic_features`,
:data:`FEATURE_COLUMNS`, :func:`describe`, :class:`SetNorms`, :func:`identity_sentence`,
:func:`caption_vocabulary`, :func:`run_stage`, :func:`caption_paths_cli`, :class:`CaptionError`.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from andlib.config import Config, ConfigError, stable_hash
from andlib.data.audio import AUDIO_EXTENSIONS, AudioError, ProbingSet, load_audio
from andlib.data.probing import load_probing_set
from andlib.describe.captioners import (
    AcousticCaptioner,
    Captioner,
    CaptionError,
    OpenAICaptioner,
    TransformersCaptioner,
)
from andlib.describe.encoder_features import EncoderFeatures, check_same_model
from andlib.describe.wording import LABEL_PHRASE_VERSION
from andlib.store import RunDir, Stage, read_captions, read_clips

log = logging.getLogger(__name__)

STAGE = "caption"


def get_captioner(cfg: Config) -> Captioner:
    """The captioner ``cfg.captioner.name`` names, caching under ``<cache_dir>/captions``."""
    c = cfg.captioner
    name = c.name.strip()
    cache = cfg.cache_path / "captions"
    if name in ("acoustic", "metadata+acoustic"):
        return AcousticCaptioner(
            cache, c.num_workers, with_identity=name != "acoustic", precise_pitch=c.precise_pitch
        )
    check_same_model(cfg, captioners=[name])
    if name == "tagger+acoustic":
        from andlib.describe.tagger import TaggerCaptioner

        features: Any = None  # the hand statistics
        if c.tagger_features == "hand+extra":
            from andlib.describe.tagger_extra import ExtendedFeatures

            features = ExtendedFeatures(cache)
        elif c.tagger_features != "hand":
            features = EncoderFeatures(cfg, c.tagger_features)
        return TaggerCaptioner(
            cache, c.num_workers, c.tagger_splits, c.tagger_c, cfg.seed, features, c.tagger_model
        )
    kind, _, target = name.partition(":")
    if kind == "transformers" and target:
        return TransformersCaptioner(
            target, c.prompt, c.max_new_tokens, c.batch_size, c.device, cache
        )
    if kind == "openai" and target:
        return OpenAICaptioner(
            target,
            c.prompt,
            c.base_url,
            c.api_key_env,
            c.max_new_tokens,
            c.batch_size,
            c.max_retries,
            c.timeout,
            cache,
        )
    raise ConfigError(
        f"captioner.name: unknown captioner {name!r}; use tagger+acoustic, acoustic, "
        "metadata+acoustic, "
        "transformers:<id or path> or openai:<model>"
    )


# --------------------------------------------------------------------------------------------
# The stage and the CLI
# --------------------------------------------------------------------------------------------


def _clip_order(run: RunDir) -> list[str] | None:
    """The clip ids of ``clips.csv`` (the activation rows) when the record stage wrote it."""
    if not run.exists("clips.csv"):
        return None
    return read_clips(run)["clip_id"].tolist()


def _in_order(ps: ProbingSet, order: list[str]) -> ProbingSet:
    known = set(ps.clip_ids)
    missing = [c for c in order if c not in known]
    if missing:
        raise ValueError(
            f"clips.csv lists {len(missing)} clips that the probing set lacks (e.g. {missing[0]!r}): "
            "the data settings changed since the record stage; run it again"
        )
    return ps.subset([ps.index_of(c) for c in order])


def caption_accuracy(captioner: Captioner) -> dict[str, Any]:
    """What the captioner may know of each clip's source, and how often it names it correctly.

    ``tagger+acoustic``: its cross-fitted top-1/top-3 accuracy, the features it reads and how
    its splits keep recordings together (``grouping``, ``n_groups``). ``metadata+acoustic``
    reads the label (accuracy 1 by construction, label leakage); ``acoustic`` names no source.
    """
    report = getattr(captioner, "last_report", None)
    if report is not None:
        return dict(report)
    knows = {
        "acoustic": "names no source (measures the signal only)",
        "metadata+acoustic": "reads each clip's label (label leakage: accuracy 1 by construction)",
    }.get(captioner.name, "a model captioner: source accuracy not measured")
    return {"captioner": captioner.name, "source": knows}


def _captioner_settings(cfg: Config, run: RunDir) -> dict[str, Any]:
    """The captioner's own settings (its feature and wording versions among them; the
    tagger's features), the clip order and, for a folder dataset, how its labels are said."""
    out: dict[str, Any] = {
        "settings": get_captioner(cfg).settings,
        "order": stable_hash(_clip_order(run)),
    }
    if cfg.data.dataset == "folder":
        out["label_phrases"] = LABEL_PHRASE_VERSION
    return out


SPEC = Stage(STAGE, sections=("data", "captioner", "seed"), settings=_captioner_settings)
"""The caption stage's cache key: the ``data``, ``captioner`` and ``seed`` settings and
:func:`_captioner_settings`. It reads no lexicon or prompt of :mod:`andlib.text.prompts`."""


def run_stage(cfg: Config, run: RunDir) -> dict[str, Any]:
    """Caption the probing set: ``captions.csv`` (clip_id, caption) and ``features.csv``.

    Rows follow ``clips.csv`` when the record stage wrote it (so row *i* matches row *i* of
    every activation array), else the probing set's order. Features are always written, for
    any captioner: later analyses regress activations on them.
    """
    logger = run.logger(STAGE)
    captioner = get_captioner(cfg)
    order = _clip_order(run)
    key = SPEC.key(cfg, run)
    outputs = ["captions.csv", "features.csv"]
    if run.is_fresh(STAGE, key):
        n = len(read_captions(run))
        return {"captioner": captioner.name, "captions": n, "reused": True}
    ps = load_probing_set(cfg)
    if order is not None:
        ps = _in_order(ps, order)
    start = time.perf_counter()
    acoustic = (
        captioner
        if isinstance(captioner, AcousticCaptioner)
        else AcousticCaptioner(
            cfg.cache_path / "captions",
            cfg.captioner.num_workers,
            precise_pitch=cfg.captioner.precise_pitch,
        )
    )
    features = acoustic.features(ps)
    captions = captioner.caption(ps)
    seconds = time.perf_counter() - start
    run.write_csv("features.csv", features)
    run.write_csv("captions.csv", pd.DataFrame({"clip_id": ps.clip_ids, "caption": captions}))
    run.write_json("caption_accuracy.json", caption_accuracy(captioner))
    outputs.append("caption_accuracy.json")
    predictions = getattr(captioner, "last_predictions", None)
    if predictions is not None:
        run.write_csv("tagger_predictions.csv", predictions)
        outputs.append("tagger_predictions.csv")
    run.mark_done(STAGE, key, outputs, captioner=captioner.name, seconds=round(seconds, 2))
    logger.info("captioned %d clips with %s in %.1f s", len(ps), captioner.name, seconds)
    return {"captioner": captioner.name, "captions": len(ps), "seconds": round(seconds, 1)}


def _expand(paths: Sequence[str | os.PathLike]) -> tuple[list[Path], list[str]]:
    """Files named or found under folders (audio extensions only), and errors for the rest."""
    files: list[Path] = []
    errors: list[str] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(
                f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in AUDIO_EXTENSIONS
            )
            if not found:
                errors.append(f"{p}: no audio files ({', '.join(AUDIO_EXTENSIONS)}) in this folder")
            files.extend(found)
        else:
            files.append(p)
    return list(dict.fromkeys(files)), errors


def caption_paths_cli(cfg: Config, paths: Sequence[str | os.PathLike]) -> int:
    """``python -m andlib caption FILE_OR_DIR...``: print ``path<TAB>caption`` per file.

    Files are decoded at ``data.sample_rate`` at their own length. Unreadable, empty or
    silent files get an error line on stderr naming the file, the others are still
    captioned, and the exit status is 1. A handful of files has no set distribution to
    compare against: with fewer than :data:`MIN_SET_SIZE` files the acoustic captioners use
    absolute anchors only (so "loud" means loud on any set, not louder than the others).
    Files carry no labels, so ``metadata+acoustic`` says the acoustic sentence alone, and
    ``tagger+acoustic`` names sources with a tagger fitted on the whole configured probing set.
    """
    files, errors = _expand(paths)
    for e in errors:
        print(f"error: {e}", file=sys.stderr)
    clips, good = [], []
    for f in files:
        try:
            clips.append(load_audio(f, cfg.data.sample_rate, None, cfg.data.silence_dbfs))
            good.append(f)
        except AudioError as exc:
            errors.append(str(exc))
            print(f"error: {exc}", file=sys.stderr)
    if clips:
        meta = pd.DataFrame(
            {
                "clip_id": [str(f) for f in good],
                "path": [str(f) for f in good],
                "label": -1,
                "category": "",
            }
        )
        files_set = ProbingSet("cli", cfg.data.sample_rate, clips, meta)
        captioner = get_captioner(cfg)
        try:
            if hasattr(captioner, "caption_new"):
                captions = captioner.caption_new(files_set, load_probing_set(cfg))
            else:
                captions = captioner.caption(files_set)
        except CaptionError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        for f, text in zip(good, captions, strict=True):
            print(f"{f}\t{text}")
    return 1 if errors else 0
