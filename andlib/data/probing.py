"""Probing data: ESC-50, any folder of audio, and synthetic probes with known attributes.

Every dataset yields mono float32 audio at the configured sample rate, padded or trimmed to a
fixed duration when asked, with a stable clip id, a label and metadata. Audio is decoded once,
eagerly, into a :class:`ProbingSet`; files that cannot be used (corrupt, empty, silent,
non-finite) are reported by path with the reason and either skipped (listed in
``ProbingSet.skipped``) or raised as :class:`AudioError`.

Public surface: :class:`ProbingSet`, :func:`load_probing_set`, :func:`probing_clips` (the
clips before decoding, a :class:`~andlib.data.audio.ClipList`), :func:`load_audio`,
:func:`esc50`, :func:`audio_folder`, :func:`synthetic_probes`, :class:`AudioError`,
:func:`resolve_esc50_root`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from andlib.config import Config, ConfigError, resolve_path, rng
from andlib.data.audio import (
    AUDIO_EXTENSIONS,
    ClipList,
    DataNotFoundError,
    ProbingSet,
    _limit,
    decode_clips,
)
from andlib.data.esc50 import esc50, esc50_clips
from andlib.store import encode_list

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------
# Any folder of audio
# --------------------------------------------------------------------------------------------


GROUP_CSV = "labels_csv group column"
"""``ProbingSet.grouping`` when the recordings come from ``data.labels_csv``'s ``group``."""

_warned_ungrouped: set[str] = set()


def _pattern_groups(pattern: str, rel: list[Path]) -> list[str]:
    """The first group of ``pattern`` searched in each file name ("" where it does not match);
    a :class:`ConfigError` when it matches none."""
    compiled = re.compile(pattern)
    found = []
    for r in rel:
        m = compiled.search(r.name)
        found.append((m.group(1) or "") if m else "")
    missing = [r.name for r, g in zip(rel, found, strict=True) if not g]
    if len(missing) == len(rel):
        raise ConfigError(
            f"data.group_pattern: {pattern!r} matches none of the {len(rel)} file names "
            f"(e.g. {rel[0].name!r})"
        )
    if missing:
        log.warning(
            "data.group_pattern %r does not match %d of %d file names (e.g. %r): each is a "
            "recording of its own",
            pattern,
            len(missing),
            len(rel),
            missing[0],
        )
    return found


def _csv_groups(cfg: Config, table: pd.DataFrame, rel: list[Path]) -> list[str] | None:
    """``labels_csv``'s ``group`` column per file ("" where empty), or None without one."""
    if "group" not in table.columns:
        return None
    if cfg.data.group_pattern:
        raise ConfigError(
            f"data.group_pattern and the group column of {cfg.data.labels_csv} both name the "
            "recordings; keep one"
        )
    column = table["group"].fillna("").astype(str).str.strip()
    by_name: dict[str, str] = dict(zip(table["filename"].astype(str), column, strict=True))
    return [by_name.get(str(r), by_name.get(r.name, "")) for r in rel]


def _warn_ungrouped(root: Path) -> None:
    """Once per folder and process: a labelled folder whose recordings are unknown."""
    if str(root) in _warned_ungrouped:
        return
    _warned_ungrouped.add(str(root))
    log.warning(
        "%s: neither data.group_pattern nor a group column in data.labels_csv names the "
        "recording of each clip; clips of one recording may sit on both sides of a "
        "cross-fitting split (the tagger's accuracy is then too high)",
        root,
    )


def audio_folder(cfg: Config) -> ProbingSet:
    """The folder dataset, decoded (:func:`audio_folder_clips`)."""
    return decode_clips(audio_folder_clips(cfg), cfg.data)


def audio_folder_clips(cfg: Config) -> ClipList:
    """Every audio file under ``data.root``; labels from ``data.labels_csv`` or subfolder names.

    The recording each clip was cut from (``meta``'s ``group``, which keeps a recording on one
    side of the tagger's cross-fitting splits) comes from ``data.group_pattern`` or the
    ``group`` column of ``data.labels_csv``; a clip without one is its own recording. A
    labelled folder with neither is warned about, once.
    """
    if not cfg.data.root:
        raise ValueError("data.root: the folder dataset needs a directory")
    root = resolve_path(cfg.data.root)
    if not root.is_dir():
        raise DataNotFoundError(f"data.root: {root} is not a directory")
    files = sorted(
        p for p in root.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file()
    )
    if not files:
        raise DataNotFoundError(f"{root}: no audio files ({', '.join(AUDIO_EXTENSIONS)})")
    rel = [p.relative_to(root) for p in files]
    groups: list[str] | None = None
    grouping = ""
    if cfg.data.labels_csv:
        table = pd.read_csv(resolve_path(cfg.data.labels_csv))
        if not {"filename", "label"} <= set(table.columns):
            raise ValueError(f"{cfg.data.labels_csv}: needs columns filename,label")
        by_name = dict(zip(table["filename"].astype(str), table["label"].astype(str), strict=True))
        categories = [by_name.get(str(r), by_name.get(r.name, "")) for r in rel]
        groups = _csv_groups(cfg, table, rel)
        grouping = GROUP_CSV if groups is not None else ""
    else:
        categories = [r.parts[0] if len(r.parts) > 1 else "" for r in rel]
    if cfg.data.group_pattern:
        groups = _pattern_groups(cfg.data.group_pattern, rel)
        grouping = f"group_pattern {cfg.data.group_pattern}"
    class_names = sorted({c for c in categories if c})
    label_of = {c: i for i, c in enumerate(class_names)}
    rows = pd.DataFrame(
        {
            "clip_id": [str(r.with_suffix("")).replace(os.sep, "/") for r in rel],
            "path": [str(p) for p in files],
            "label": [label_of.get(c, -1) for c in categories],
            "category": categories,
        }
    )
    if groups is not None:  # a clip without a recording is one of its own
        rows["group"] = [g or f"clip {c}" for g, c in zip(groups, rows["clip_id"], strict=True)]
    if cfg.data.classes:
        rows = rows[rows["category"].isin(cfg.data.classes)].reset_index(drop=True)
    rows = _limit(rows, cfg.data.limit, rng(cfg, "data", "limit"))
    if groups is None and (rows["label"] >= 0).any():
        _warn_ungrouped(root)
    return ClipList(root.name, rows.reset_index(drop=True), class_names, grouping)


# --------------------------------------------------------------------------------------------
# Synthetic probes with known attributes
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProbeSpec:
    """One synthetic clip: what it is and the attribute words a correct caption should use."""

    clip_id: str
    kind: str  # tone | harmonic | noise | clicks | sweep
    params: dict[str, Any]
    tags: tuple[str, ...]


def probe_specs() -> list[ProbeSpec]:
    """The default battery of synthetic probes."""
    specs: list[ProbeSpec] = []
    for f0, tag in [
        (100, "low-pitched"),
        (220, "low-pitched"),
        (1000, "mid-pitched"),
        (3000, "high-pitched"),
        (6000, "high-pitched"),
    ]:
        specs.append(
            ProbeSpec(f"tone_{f0}hz", "tone", {"f0": f0, "level_db": -12}, ("tonal", tag, "steady"))
        )
    for f0, tag in [(110, "low-pitched"), (440, "mid-pitched"), (1760, "high-pitched")]:
        specs.append(
            ProbeSpec(
                f"harmonic_{f0}hz",
                "harmonic",
                {"f0": f0, "level_db": -12},
                ("tonal", "harmonic", tag, "steady"),
            )
        )
    for band, (lo, hi), tag in [
        ("low", (50, 400), "low-frequency"),
        ("high", (4000, 7500), "high-frequency"),
        ("white", (20, 7900), "broadband"),
    ]:
        specs.append(
            ProbeSpec(
                f"noise_{band}",
                "noise",
                {"lo": lo, "hi": hi, "level_db": -12},
                ("noisy", tag, "steady"),
            )
        )
    for rate, tag in [(2, "slow"), (5, "slow"), (20, "fast"), (40, "fast")]:
        specs.append(
            ProbeSpec(
                f"clicks_{rate}hz",
                "clicks",
                {"rate": rate, "level_db": -6},
                ("impulsive", "repetitive", tag),
            )
        )
    for level, tag in [(-6, "loud"), (-45, "quiet")]:
        specs.append(
            ProbeSpec(f"tone_500hz_{tag}", "tone", {"f0": 500, "level_db": level}, ("tonal", tag))
        )
        specs.append(
            ProbeSpec(
                f"noise_white_{tag}",
                "noise",
                {"lo": 20, "hi": 7900, "level_db": level},
                ("noisy", tag),
            )
        )
    specs.append(
        ProbeSpec(
            "sweep_up",
            "sweep",
            {"f_start": 200, "f_end": 4000, "level_db": -12},
            ("tonal", "rising"),
        )
    )
    specs.append(
        ProbeSpec(
            "sweep_down",
            "sweep",
            {"f_start": 4000, "f_end": 200, "level_db": -12},
            ("tonal", "falling"),
        )
    )
    return specs


def render_probe(spec: ProbeSpec, sample_rate: int, duration: float, seed: int = 0) -> np.ndarray:
    """Synthesize one probe deterministically."""
    n = int(round(duration * sample_rate))
    t = np.arange(n) / sample_rate
    g = np.random.default_rng(seed + int(hashlib.md5(spec.clip_id.encode()).hexdigest()[:8], 16))
    p = spec.params
    amp = 10 ** (p.get("level_db", -12) / 20)
    nyq = sample_rate / 2
    if spec.kind == "tone":
        x = np.sin(2 * np.pi * p["f0"] * t)
    elif spec.kind == "harmonic":
        x = sum(np.sin(2 * np.pi * p["f0"] * h * t) / h for h in range(1, 9) if p["f0"] * h < nyq)
    elif spec.kind == "noise":
        spec_ = np.fft.rfft(g.standard_normal(n))
        freqs = np.fft.rfftfreq(n, 1 / sample_rate)
        spec_[(freqs < p["lo"]) | (freqs > min(p["hi"], nyq))] = 0
        x = np.fft.irfft(spec_, n)
    elif spec.kind == "clicks":
        x = np.zeros(n)
        period = int(sample_rate / p["rate"])
        click = np.hanning(max(8, int(0.002 * sample_rate))) * g.choice([-1, 1])
        for start in range(period // 2, n - len(click), period):
            x[start : start + len(click)] += click
    elif spec.kind == "sweep":
        f = np.geomspace(p["f_start"], p["f_end"], n)
        x = np.sin(2 * np.pi * np.cumsum(f) / sample_rate)
    else:
        raise ValueError(f"unknown probe kind {spec.kind!r}")
    x = np.asarray(x, dtype=np.float64)
    if spec.kind != "clicks":
        fade = min(n // 2, int(0.01 * sample_rate))
        ramp = np.linspace(0, 1, fade)
        x[:fade] *= ramp
        x[n - fade :] *= ramp[::-1]
    peak = np.max(np.abs(x)) or 1.0
    return (x / peak * amp).astype(np.float32)


def synthetic_probes(cfg: Config, specs: list[ProbeSpec] | None = None) -> ProbingSet:
    """Generated clips whose attributes are known: ground truth for captions and descriptions."""
    specs = specs or probe_specs()
    duration = cfg.data.duration or 5.0
    audio = [render_probe(s, cfg.data.sample_rate, duration, cfg.seed) for s in specs]
    kinds = sorted({s.kind for s in specs})
    meta = pd.DataFrame(
        {
            "clip_id": [s.clip_id for s in specs],
            "path": [""] * len(specs),
            "label": [kinds.index(s.kind) for s in specs],
            "category": [s.kind for s in specs],
            "tags": [encode_list(s.tags) for s in specs],
            **{
                k: [s.params.get(k) for s in specs]
                for k in sorted({k for s in specs for k in s.params})
            },
        }
    )
    ps = ProbingSet("synthetic", cfg.data.sample_rate, audio, meta, kinds)
    if cfg.data.limit:
        ps = ps.subset(list(range(min(cfg.data.limit, len(ps)))))
    return ps


# --------------------------------------------------------------------------------------------


def probing_clips(cfg: Config) -> ClipList:
    """The probing set's clips before decoding, for an engine that decodes them elsewhere
    (the ``esc50`` and ``folder`` datasets: clips that are files)."""
    if cfg.data.dataset == "esc50":
        return esc50_clips(cfg)
    if cfg.data.dataset == "folder":
        return audio_folder_clips(cfg)
    raise ValueError(
        f"data.dataset: {cfg.data.dataset!r} clips are made in this process, not read from files; "
        f"record them with record.engine: local"
    )


def load_probing_set(cfg: Config) -> ProbingSet:
    """The probing set the config names."""
    if cfg.data.dataset == "pitched":  # synthetic notes with known f0 (+ ESC-50 clips)
        from andlib.data.pitched import pitched_probes

        return pitched_probes(cfg)
    builders = {"esc50": esc50, "folder": audio_folder, "synthetic": synthetic_probes}
    return builders[cfg.data.dataset](cfg)
