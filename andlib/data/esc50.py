"""ESC-50 in its official layout: where it is (the shared copy, ``data.root``,
``$ANDLIB_DATA_DIR``, the cache), its download, and the probing set it makes."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import pandas as pd

from andlib.config import PROJECT_ROOT, Config, resolve_path, rng
from andlib.data.audio import (
    AUDIO_EXTENSIONS,
    ClipList,
    DataNotFoundError,
    ProbingSet,
    _limit,
    decode_clips,
)

log = logging.getLogger(__name__)

ESC50_COLUMNS = ["filename", "fold", "target", "category", "esc10", "src_file", "take"]
SHARED_ESC50 = PROJECT_ROOT.parent / "shared" / "data" / "esc50-16k"


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
    """The ESC-50 dataset, decoded (:func:`esc50_clips`)."""
    return decode_clips(esc50_clips(cfg), cfg.data)


def esc50_clips(cfg: Config) -> ClipList:
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
    return ClipList("esc50", rows[cols].reset_index(drop=True), class_names)


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
