"""The pitched probing set (``data.dataset: pitched``): synthetic notes with a known f0.

Ground truth for pitch networks (:mod:`andlib.models.pitch`): every clip is a seeded harmonic
note whose fundamental, note name and timbre are known exactly, plus (``data.mix_esc50: N``)
N real ESC-50 clips, unpitched everyday sounds, so that the set is not all notes.

**Pitches.** One note per ``data.pitched_step_cents`` (default 20 cents, CREPE's bin width;
PESTO's bins are 33 cents wide) from MIDI ``data.pitched_midi[0]`` to ``[1]`` (default 28 to
96, E1 41.2 Hz to C7 2093 Hz: the range of the issue, CREPE's 360 bins span 31.7 to 2005 Hz),
each placed at a seeded random offset inside its 20-cent cell, so every output bin of either
model has at least one note within half a bin, and f0 is continuous rather than on a grid.
That is 341 notes by default; at one second each (``data.duration``) they cost about as
much to play through crepe-tiny as 70 five-second ESC-50 clips.

**Timbre** (drawn per note, independently of the pitch and of each other, seeded):

==================  =====================================================================
``rolloff_db_oct``  harmonic amplitude roll-off, 3 to 18 dB per octave (bright to dull)
``even_db``         gain of the even harmonics re the odd ones, -20 to +5 dB (hollow,
                    clarinet-like, to even-rich)
``inharmonicity``   stiff-string B, 10^-5 to 10^-2.5 (log-uniform): partial n at
                    ``n f0 sqrt((1 + B n^2) / (1 + B))``, so the first partial stays at f0
``vibrato_cents``   vibrato depth, 0 to 40 cents (half the notes have none), at
                    ``vibrato_hz`` 4 to 7 Hz
``noise_db``        breath noise (white, under the same envelope) re the harmonic part's
                    RMS, -40 to -10 dB (at -10 dB YIN still finds the pitch of most notes)
``attack_ms``       raised-cosine attack, 2 to 300 ms (log-uniform)
``decay_s``         exponential decay time constant after the attack, 0.15 to 5 s (log-uniform)
==================  =====================================================================

Partials stop below 0.45 x the sample rate (no aliasing) and at 64. Each note is scaled to
a peak of -12 dBFS. The f0 label is the fundamental's centre frequency: vibrato is symmetric
in cents around it, and the tests measure every label to within 5 cents of the signal.

**Files.** The notes and the ESC-50 excerpts are written once as 24-bit FLAC under
``<cache_dir>/pitched/<hash of the generator settings>/`` and then decoded like any other
dataset, so every clip has a ``path`` (the browser plays it, TAB could embed it). ESC-50
clips are cut to their loudest ``data.duration`` seconds (most ESC-50 clips are 5 s with
the event somewhere in it; the first second is often silence).

**clips.csv columns**: ``clip_id, path, label, category`` (``note`` or the ESC-50 class),
``source`` (``synthetic``/``esc50``), ``f0_hz, midi, note`` and the timbre columns above
(empty for ESC-50 clips), and ESC-50's ``fold, src_file`` for the mixed-in clips.

Public surface: :func:`pitched_probes`, :func:`note_specs`, :func:`render_note`,
:data:`TIMBRE_COLUMNS`, :data:`ATTRIBUTES`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from andlib.config import Config, rng, stable_hash
from andlib.data.notes import midi_to_hz, note_name

log = logging.getLogger(__name__)

GENERATOR_VERSION = 1
"""Bump when :func:`render_note` or :func:`note_specs` change: it keys the FLAC cache."""
PEAK_DBFS = -12.0
MAX_PARTIALS = 64
TIMBRE_COLUMNS = [
    "rolloff_db_oct",
    "even_db",
    "inharmonicity",
    "vibrato_cents",
    "vibrato_hz",
    "noise_db",
    "attack_ms",
    "decay_s",
]
ATTRIBUTES = {
    "f0": "midi",
    "rolloff": "rolloff_db_oct",
    "odd_even": "even_db",
    "inharmonicity": "log_inharmonicity",
    "vibrato": "vibrato_cents",
    "noise": "noise_db",
    "attack": "log_attack_ms",
    "decay": "log_decay_s",
}
"""The attributes a neuron's tuning curve is measured against: name -> clips.csv column
(``log_*`` columns are the base-10 logarithms of the log-uniformly drawn parameters)."""


def note_specs(cfg: Config) -> pd.DataFrame:
    """One row per synthetic note: ``clip_id, f0_hz, midi, note`` and :data:`TIMBRE_COLUMNS`."""
    lo, hi = (float(x) for x in cfg.data.pitched_midi)
    step = float(cfg.data.pitched_step_cents) / 100.0  # semitones
    n = int(np.floor((hi - lo) / step + 1e-9)) + 1
    gen = rng(cfg, "pitched", "notes")
    offsets = gen.uniform(-0.5, 0.5, n) * step
    midi = np.clip(lo + step * np.arange(n) + offsets, lo, hi)
    f0 = midi_to_hz(midi)
    vib = gen.uniform(0.0, 40.0, n) * (gen.uniform(size=n) < 0.5)
    table = pd.DataFrame(
        {
            "f0_hz": f0,
            "midi": midi,
            "rolloff_db_oct": gen.uniform(3.0, 18.0, n),
            "even_db": gen.uniform(-20.0, 5.0, n),
            "inharmonicity": 10 ** gen.uniform(-5.0, -2.5, n),
            "vibrato_cents": vib,
            "vibrato_hz": gen.uniform(4.0, 7.0, n),
            "noise_db": gen.uniform(-40.0, -10.0, n),
            "attack_ms": 10 ** gen.uniform(np.log10(2.0), np.log10(300.0), n),
            "decay_s": 10 ** gen.uniform(np.log10(0.15), np.log10(5.0), n),
            "seed": gen.integers(0, 2**31 - 1, n),
        }
    )
    table.insert(0, "note", [note_name(f) for f in f0])
    table.insert(0, "clip_id", [f"note{i:03d}_{nm}" for i, nm in enumerate(table["note"])])
    return table


def render_note(spec: dict[str, Any], sample_rate: int, duration: float) -> np.ndarray:
    """Synthesize one note of :func:`note_specs` (deterministic given its ``seed``)."""
    n = int(round(duration * sample_rate))
    t = np.arange(n) / sample_rate
    g = np.random.default_rng(int(spec["seed"]))
    f0 = float(spec["f0_hz"])
    depth = float(spec["vibrato_cents"]) / 1200.0
    ratio = 2.0 ** (depth * np.sin(2 * np.pi * float(spec["vibrato_hz"]) * t + g.uniform(0, 6.3)))
    base_phase = 2 * np.pi * np.cumsum(f0 * ratio) / sample_rate  # of the fundamental
    b = float(spec["inharmonicity"])
    x = np.zeros(n)
    for h in range(1, MAX_PARTIALS + 1):
        stretch = h * np.sqrt((1 + b * h * h) / (1 + b))
        if f0 * stretch * 2.0**depth >= 0.45 * sample_rate:
            break
        amp = 10 ** (-float(spec["rolloff_db_oct"]) * np.log2(h) / 20.0)
        if h % 2 == 0:
            amp *= 10 ** (float(spec["even_db"]) / 20.0)
        x += amp * np.sin(stretch * base_phase + g.uniform(0, 2 * np.pi))
    rms = np.sqrt(np.mean(x**2)) or 1.0
    x += g.standard_normal(n) * rms * 10 ** (float(spec["noise_db"]) / 20.0)
    attack = max(1, int(float(spec["attack_ms"]) / 1000.0 * sample_rate))
    env = np.exp(-np.maximum(t - attack / sample_rate, 0.0) / float(spec["decay_s"]))
    rise = min(attack, n)
    env[:rise] *= 0.5 - 0.5 * np.cos(np.pi * np.arange(rise) / attack)
    fade = min(n // 4, int(0.005 * sample_rate))  # no click at the clip's end
    if fade:
        env[n - fade :] *= np.linspace(1.0, 0.0, fade)
    x *= env
    peak = np.max(np.abs(x)) or 1.0
    return (x / peak * 10 ** (PEAK_DBFS / 20.0)).astype(np.float32)


def _cache_folder(cfg: Config, kind: str) -> Path:
    """``<cache_dir>/pitched/<kind>-<hash>``: the notes keyed by every generator setting, the
    ESC-50 excerpts by the rate and length only."""
    d = cfg.data
    settings: dict[str, Any] = {
        "version": GENERATOR_VERSION,
        "sample_rate": d.sample_rate,
        "duration": d.duration,
    }
    if kind == "notes":
        settings.update(seed=cfg.seed, midi=list(d.pitched_midi), step=d.pitched_step_cents)
    return cfg.cache_path / "pitched" / f"{kind}-{stable_hash(settings)}"


def _write(path: Path, audio: np.ndarray, sample_rate: int) -> None:
    import soundfile as sf

    tmp = path.with_suffix(".part.flac")
    sf.write(str(tmp), audio, sample_rate, subtype="PCM_24", format="FLAC")
    tmp.replace(path)


def _loudest_window(audio: np.ndarray, n: int, sample_rate: int) -> np.ndarray:
    """The ``n`` samples of ``audio`` with the most energy (on a 10 ms grid)."""
    if len(audio) <= n:
        return np.pad(audio, (0, n - len(audio)))
    energy = np.concatenate([[0.0], np.cumsum(audio.astype(np.float64) ** 2)])
    starts = np.arange(0, len(audio) - n + 1, max(1, sample_rate // 100))
    best = int(starts[np.argmax(energy[starts + n] - energy[starts])])
    return audio[best : best + n]


def _esc50_rows(cfg: Config) -> pd.DataFrame:
    """``data.mix_esc50`` ESC-50 clips (seeded, spread over classes), cut and written."""
    from andlib.data.audio import AudioError, load_audio

    folder = _cache_folder(cfg, "esc50")
    folder.mkdir(parents=True, exist_ok=True)
    n = int(round(float(cfg.data.duration or 5.0) * cfg.data.sample_rate))
    rows = []
    for row in _esc50_meta(cfg, int(cfg.data.mix_esc50)).to_dict("records"):
        clip_id = f"esc50-{row['clip_id']}"
        path = folder / f"{row['clip_id']}.flac"
        if not path.exists():
            try:
                audio = load_audio(row["path"], cfg.data.sample_rate, None, cfg.data.silence_dbfs)
            except AudioError as exc:
                if cfg.data.on_error == "raise":
                    raise
                log.warning("skipping %s", exc)
                continue
            _write(path, _loudest_window(audio, n, cfg.data.sample_rate), cfg.data.sample_rate)
        rows.append(
            {
                "clip_id": clip_id,
                "path": str(path),
                "category": row["category"],
                "source": "esc50",
                "fold": row["fold"],
                "src_file": row["src_file"],
            }
        )
    return pd.DataFrame(rows)


def _esc50_meta(cfg: Config, n: int) -> pd.DataFrame:
    """``n`` ESC-50 rows (``data.folds``/``data.classes`` filters apply), spread over the
    classes in a seeded order as ``data.limit`` spreads them, without decoding them."""
    from andlib.data import esc50 as data
    from andlib.data.audio import DataNotFoundError, _limit

    root = data.resolve_esc50_root(cfg)
    csv = root / "meta" / "esc50.csv"
    if not csv.exists():
        if not (cfg.data.download and not cfg.data.root):
            raise DataNotFoundError(
                f"data.mix_esc50: ESC-50 not found at {root} (no meta/esc50.csv); set data.root "
                "or ANDLIB_DATA_DIR, enable data.download, or set data.mix_esc50: 0"
            )
        root = data.download_esc50(cfg)
        csv = root / "meta" / "esc50.csv"
    rows = pd.read_csv(csv)
    if cfg.data.folds:
        rows = rows[rows["fold"].isin(cfg.data.folds)]
    if cfg.data.classes:
        rows = rows[rows["category"].isin(cfg.data.classes)]
    rows = rows.rename(columns={"target": "label"}).reset_index(drop=True)
    rows["path"] = [str(data._find_audio_file(root / "audio", f)) for f in rows["filename"]]
    rows["clip_id"] = [Path(f).stem for f in rows["filename"]]
    return _limit(rows, n, rng(cfg, "pitched", "mix_esc50")).reset_index(drop=True)


def pitched_probes(cfg: Config) -> Any:
    """The pitched probing set (a :class:`~andlib.data.probing.ProbingSet`), see the module docs.

    ``data.limit`` keeps a seeded, evenly spread subset of the notes (every ``n``-th pitch);
    the ESC-50 clips are ``data.mix_esc50`` on top of it.
    """
    from andlib.data.audio import _decode_all

    d = cfg.data
    if d.duration is None:
        raise ValueError("data.duration: the pitched set needs a clip length (e.g. 1.0)")
    folder = _cache_folder(cfg, "notes")
    folder.mkdir(parents=True, exist_ok=True)
    notes = note_specs(cfg)
    if d.limit is not None and d.limit < len(notes):
        keep = np.unique(np.round(np.linspace(0, len(notes) - 1, d.limit)).astype(int))
        notes = notes.iloc[keep].reset_index(drop=True)
    paths = []
    for spec in notes.to_dict("records"):
        path = folder / f"{spec['clip_id']}.flac"
        if not path.exists():
            _write(path, render_note(spec, d.sample_rate, d.duration), d.sample_rate)
        paths.append(str(path))
    notes = notes.assign(
        path=paths,
        category="note",
        source="synthetic",
        log_inharmonicity=np.log10(notes["inharmonicity"]),
        log_attack_ms=np.log10(notes["attack_ms"]),
        log_decay_s=np.log10(notes["decay_s"]),
    ).drop(columns=["seed"])
    frames = [notes]
    if d.mix_esc50:
        frames.append(_esc50_rows(cfg))
    rows = pd.concat(frames, ignore_index=True)
    rows["note"] = rows["note"].fillna("")
    categories = ["note", *sorted(set(rows["category"]) - {"note"})]
    rows.insert(2, "label", rows["category"].map({c: i for i, c in enumerate(categories)}))
    first = ["clip_id", "path", "label", "category", "source"]
    rows = rows[first + [c for c in rows.columns if c not in first]]
    ps = _decode_all(rows, d, "pitched", categories)
    return ps


__all__ = [
    "ATTRIBUTES",
    "TIMBRE_COLUMNS",
    "note_specs",
    "pitched_probes",
    "render_note",
]
