"""Probing data: ESC-50, any folder of audio, and synthetic probes with known attributes.

Every dataset yields mono float32 audio at the configured sample rate, padded or trimmed to a
fixed duration when asked, with a stable clip id, a label and metadata. Audio is decoded once,
eagerly, into a :class:`ProbingSet`; files that cannot be used (corrupt, empty, silent,
non-finite) are reported by path with the reason and either skipped (listed in
``ProbingSet.skipped``) or raised as :class:`AudioError`.

Public surface: :class:`ProbingSet`, :func:`load_probing_set`, :func:`load_audio`,
:func:`esc50`, :func:`audio_folder`, :func:`synthetic_probes`, :class:`AudioError`,
:func:`resolve_esc50_root`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from andlib.config import PROJECT_ROOT, Config, DataConfig, resolve_path, rng

log = logging.getLogger(__name__)

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".opus", ".aiff", ".aif")
ESC50_COLUMNS = ["filename", "fold", "target", "category", "esc10", "src_file", "take"]
SHARED_ESC50 = PROJECT_ROOT.parent / "shared" / "data" / "esc50-16k"


class AudioError(ValueError):
    """A clip cannot be used; ``path`` names the file and ``reason`` says what is wrong."""

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")


class DataNotFoundError(FileNotFoundError):
    """The dataset is not on disk and could not be downloaded."""


# --------------------------------------------------------------------------------------------
# Decoding
# --------------------------------------------------------------------------------------------


def load_audio(
    path: str | os.PathLike,
    sample_rate: int,
    duration: float | None = None,
    silence_dbfs: float = -80.0,
) -> np.ndarray:
    """Decode one file to mono float32 at ``sample_rate``; pad/trim to ``duration`` seconds.

    Raises :class:`AudioError` naming the file for anything unusable: unreadable or corrupt
    data, zero samples, non-finite samples, or a peak below ``silence_dbfs``.
    """
    import soundfile as sf

    path = Path(path)
    if not path.exists():
        raise AudioError(path, "file does not exist")
    if path.stat().st_size == 0:
        raise AudioError(path, "file is empty (0 bytes)")
    try:
        audio, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:  # soundfile raises LibsndfileError, RuntimeError, ...
        audio, sr = _decode_fallback(path, exc)
    if audio.shape[0] == 0:
        raise AudioError(path, "no audio samples (empty stream)")
    audio = audio.mean(axis=1) if audio.ndim == 2 else audio
    if not np.all(np.isfinite(audio)):
        raise AudioError(path, "contains NaN or infinite samples")
    if sr != sample_rate:
        audio = resample(audio, sr, sample_rate)
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    if peak <= 10 ** (silence_dbfs / 20):
        level = "-inf" if peak == 0 else f"{20 * np.log10(peak):.1f}"
        raise AudioError(path, f"silent (peak {level} dBFS, threshold {silence_dbfs} dBFS)")
    if duration is not None:
        audio = fix_length(audio, int(round(duration * sample_rate)))
    return np.ascontiguousarray(audio, dtype=np.float32)


def _decode_fallback(path: Path, first_error: Exception) -> tuple[np.ndarray, int]:
    """Formats libsndfile lacks (some mp3/m4a builds) go through librosa/audioread."""
    try:
        import librosa

        audio, sr = librosa.load(str(path), sr=None, mono=False)
    except Exception as exc:
        raise AudioError(
            path, f"cannot decode audio ({type(first_error).__name__}: {first_error})"
        ) from exc
    audio = np.asarray(audio, dtype=np.float32)
    audio = audio[:, None] if audio.ndim == 1 else audio.T
    return audio, int(sr)


def resample(audio: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    import librosa

    return librosa.resample(audio, orig_sr=orig_sr, target_sr=target_sr, res_type="soxr_hq").astype(
        np.float32
    )


def fix_length(audio: np.ndarray, n: int) -> np.ndarray:
    if len(audio) >= n:
        return audio[:n]
    return np.pad(audio, (0, n - len(audio)))


# --------------------------------------------------------------------------------------------
# The probing set
# --------------------------------------------------------------------------------------------


@dataclass
class ProbingSet:
    """Decoded clips in a fixed order; row ``i`` of every activation array is ``clip_ids[i]``.

    ``meta`` holds one row per clip with at least ``clip_id``, ``path``, ``label`` (int or -1),
    ``category`` (str or ""), and dataset-specific columns (``fold`` for ESC-50, attribute
    columns for synthetic probes).
    """

    name: str
    sample_rate: int
    audio: list[np.ndarray]
    meta: pd.DataFrame
    class_names: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.audio)

    @property
    def clip_ids(self) -> list[str]:
        return self.meta["clip_id"].tolist()

    @property
    def labels(self) -> np.ndarray:
        return self.meta["label"].to_numpy()

    def index_of(self, clip_id: str) -> int:
        return self._index[clip_id]

    def __post_init__(self) -> None:
        self._index = {cid: i for i, cid in enumerate(self.meta["clip_id"])}
        if len(self._index) != len(self.meta):
            raise ValueError(f"{self.name}: clip ids are not unique")
        if len(self.audio) != len(self.meta):
            raise ValueError(
                f"{self.name}: {len(self.audio)} clips but {len(self.meta)} rows of metadata"
            )

    def __iter__(self) -> Iterator[tuple[str, np.ndarray]]:
        return iter(zip(self.clip_ids, self.audio, strict=True))

    def batches(self, batch_size: int) -> Iterator[tuple[int, list[np.ndarray]]]:
        """``(start_index, [audio, ...])`` in order."""
        for start in range(0, len(self), batch_size):
            yield start, self.audio[start : start + batch_size]

    def subset(self, indices: list[int] | np.ndarray) -> ProbingSet:
        idx = [int(i) for i in indices]
        return ProbingSet(
            name=self.name,
            sample_rate=self.sample_rate,
            audio=[self.audio[i] for i in idx],
            meta=self.meta.iloc[idx].reset_index(drop=True),
            class_names=self.class_names,
            skipped=list(self.skipped),
        )

    def skipped_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.skipped, columns=["path", "reason"])


def _decode_all(
    rows: pd.DataFrame, cfg: DataConfig, name: str, class_names: list[str]
) -> ProbingSet:
    """Decode ``rows`` (with a ``path`` column) in threads; apply ``on_error``."""

    def work(path: str) -> np.ndarray | AudioError:
        try:
            return load_audio(path, cfg.sample_rate, cfg.duration, cfg.silence_dbfs)
        except AudioError as exc:
            return exc

    with ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 2) * 2)) as pool:
        results = list(pool.map(work, rows["path"].tolist()))
    keep, audio, skipped = [], [], []
    for i, res in enumerate(results):
        if isinstance(res, AudioError):
            if cfg.on_error == "raise":
                raise res
            log.warning("skipping %s", res)
            skipped.append((res.path, res.reason))
        else:
            keep.append(i)
            audio.append(res)
    if not audio:
        raise AudioError(cfg.root or name, f"no usable audio among {len(rows)} files")
    meta = rows.iloc[keep].reset_index(drop=True)
    return ProbingSet(name, cfg.sample_rate, audio, meta, class_names, skipped)


def _limit(rows: pd.DataFrame, limit: int | None, seed_rng: np.random.Generator) -> pd.DataFrame:
    """Keep ``limit`` rows, spread over classes (round-robin in a seeded order), stable order."""
    if limit is None or limit >= len(rows):
        return rows
    order = seed_rng.permutation(len(rows))
    shuffled = rows.iloc[order]
    rank = shuffled.groupby("label", sort=False).cumcount()
    picked = shuffled.assign(_rank=rank.values).sort_values("_rank", kind="stable").head(limit)
    return rows.loc[sorted(picked.index)]


# --------------------------------------------------------------------------------------------
# ESC-50
# --------------------------------------------------------------------------------------------


def resolve_esc50_root(cfg: Config) -> Path:
    """Config ``data.root``, else ``$ANDLIB_DATA_DIR``, else the shared copy, else the cache."""
    if cfg.data.root:
        return resolve_path(cfg.data.root)
    env = os.environ.get("ANDLIB_DATA_DIR")
    if env:
        return Path(env)
    if (SHARED_ESC50 / "meta" / "esc50.csv").exists():
        return SHARED_ESC50
    return cfg.cache_path / "esc50" / "ESC-50-master"


def esc50(cfg: Config) -> ProbingSet:
    """The ESC-50 dataset in its official layout (``audio/``, ``meta/esc50.csv``).

    Works with the official 44.1 kHz wav files or any re-encoding under the same names
    (e.g. the 16 kHz FLAC copy): when ``filename`` ends in ``.wav`` but only another
    extension exists on disk, that file is used. Missing data is downloaded when
    ``data.download`` is on and the machine is online; otherwise the error says where to put it.
    """
    root = resolve_esc50_root(cfg)
    csv = root / "meta" / "esc50.csv"
    if not csv.exists():
        if cfg.data.download and not cfg.data.root:
            root = download_esc50(cfg)
            csv = root / "meta" / "esc50.csv"
        else:
            raise DataNotFoundError(
                f"ESC-50 not found at {root} (no meta/esc50.csv). Put the official archive's "
                f"contents there (audio/ and meta/), set data.root or ANDLIB_DATA_DIR, or enable "
                f"data.download on a machine with network access."
            )
    rows = pd.read_csv(csv)
    missing = [c for c in ESC50_COLUMNS if c not in rows.columns]
    if missing:
        raise ValueError(f"{csv}: missing columns {missing}; expected {ESC50_COLUMNS}")
    class_names = rows.drop_duplicates("target").sort_values("target")["category"].tolist()
    if cfg.data.folds:
        rows = rows[rows["fold"].isin(cfg.data.folds)]
    if cfg.data.classes:
        unknown = sorted(set(cfg.data.classes) - set(class_names))
        if unknown:
            raise ValueError(f"data.classes: unknown ESC-50 categories {unknown}")
        rows = rows[rows["category"].isin(cfg.data.classes)]
    rows = rows.rename(columns={"target": "label"}).reset_index(drop=True)
    rows["path"] = [str(_find_audio_file(root / "audio", f)) for f in rows["filename"]]
    rows["clip_id"] = [Path(f).stem for f in rows["filename"]]
    rows = _limit(rows, cfg.data.limit, rng(cfg, "data", "limit"))
    cols = ["clip_id", "path", "label", "category", "fold", "esc10", "src_file", "take", "filename"]
    return _decode_all(rows[cols].reset_index(drop=True), cfg.data, "esc50", class_names)


def _find_audio_file(audio_dir: Path, filename: str) -> Path:
    p = audio_dir / filename
    if p.exists():
        return p
    for ext in AUDIO_EXTENSIONS:
        q = p.with_suffix(ext)
        if q.exists():
            return q
    return p  # reported as missing when decoded


def download_esc50(cfg: Config) -> Path:
    """Fetch the official archive into ``<cache_dir>/esc50`` with resume and an integrity check."""
    dest = cfg.cache_path / "esc50"
    dest.mkdir(parents=True, exist_ok=True)
    archive = dest / "ESC-50-master.zip"
    part = archive.with_suffix(".zip.part")
    url = cfg.data.download_url
    if not archive.exists():
        done = part.stat().st_size if part.exists() else 0
        req = urllib.request.Request(url, headers={"Range": f"bytes={done}-"} if done else {})
        try:
            with (
                urllib.request.urlopen(req, timeout=60) as resp,
                open(part, "ab" if done else "wb") as out,
            ):
                if done and resp.status != 206:  # server ignored the range: start over
                    out.truncate(0)
                shutil.copyfileobj(resp, out, length=1 << 20)
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            raise DataNotFoundError(
                f"ESC-50 is not on disk and downloading {url} failed ({exc}). Offline, copy the "
                f"dataset (audio/ and meta/esc50.csv) to {dest / 'ESC-50-master'}, or set "
                f"data.root / ANDLIB_DATA_DIR to a copy (e.g. ../shared/data/esc50-16k)."
            ) from exc
        part.rename(archive)
    digest = _sha256(archive)
    if cfg.data.download_sha256 and digest != cfg.data.download_sha256:
        archive.unlink()
        raise DataNotFoundError(
            f"{archive}: SHA-256 {digest} != expected {cfg.data.download_sha256}; deleted, retry"
        )
    with zipfile.ZipFile(archive) as zf:
        bad = zf.testzip()
        if bad is not None:
            archive.unlink()
            raise DataNotFoundError(f"{archive}: corrupt member {bad}; deleted, retry the download")
        zf.extractall(dest)
    (dest / "ESC-50-master.sha256").write_text(digest + "\n")
    return dest / "ESC-50-master"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# --------------------------------------------------------------------------------------------
# Any folder of audio
# --------------------------------------------------------------------------------------------


def audio_folder(cfg: Config) -> ProbingSet:
    """Every audio file under ``data.root``; labels from ``data.labels_csv`` or subfolder names."""
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
    if cfg.data.labels_csv:
        table = pd.read_csv(resolve_path(cfg.data.labels_csv))
        if not {"filename", "label"} <= set(table.columns):
            raise ValueError(f"{cfg.data.labels_csv}: needs columns filename,label")
        by_name = dict(zip(table["filename"].astype(str), table["label"].astype(str), strict=True))
        categories = [by_name.get(str(r), by_name.get(r.name, "")) for r in rel]
    else:
        categories = [r.parts[0] if len(r.parts) > 1 else "" for r in rel]
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
    if cfg.data.classes:
        rows = rows[rows["category"].isin(cfg.data.classes)].reset_index(drop=True)
    rows = _limit(rows, cfg.data.limit, rng(cfg, "data", "limit"))
    return _decode_all(rows.reset_index(drop=True), cfg.data, root.name, class_names)


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
            "tags": [";".join(s.tags) for s in specs],
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


def load_probing_set(cfg: Config) -> ProbingSet:
    """The probing set the config names."""
    if cfg.data.dataset == "pitched":  # synthetic notes with known f0 (+ ESC-50 clips)
        from andlib.pitched import pitched_probes

        return pitched_probes(cfg)
    builders = {"esc50": esc50, "folder": audio_folder, "synthetic": synthetic_probes}
    return builders[cfg.data.dataset](cfg)
