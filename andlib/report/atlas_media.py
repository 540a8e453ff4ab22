"""The atlas's media (:mod:`andlib.report.atlas`): each clip's audio (OGG Vorbis) and
log-mel spectrogram (a small palette PNG), made once in worker threads and reused while the
clip's source file and the settings are unchanged (``media.json``).
"""

from __future__ import annotations

import io
import json
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from andlib.report.atlas_data import _num, media_name
from andlib.store import atomic_write_bytes, atomic_write_text

SPEC_N_FFT, SPEC_HOP, SPEC_MELS = 512, 320, 64
"""Spectrogram images: 64 mel bands by one column per 20 ms (at 16 kHz), one palette byte per
pixel; the page stretches them."""
OGG_QUALITY = 0.4
"""Vorbis quality 0..1 (libsndfile's compression level is ``1 - quality``)."""
MEDIA_VERSION = 1


log = logging.getLogger("andlib.report.atlas")


# --------------------------------------------------------------------------------------------
# Media: audio (OGG Vorbis) and spectrograms (palette PNG), each clip once
# --------------------------------------------------------------------------------------------


def _palette() -> bytes:
    import matplotlib

    rgb = matplotlib.colormaps["magma"](np.linspace(0, 1, 256))[:, :3]
    return (rgb * 255).round().astype(np.uint8).tobytes()


def spectrogram_image(audio: np.ndarray, sample_rate: int) -> bytes:
    """A clip's log-mel spectrogram (``[-80, 0]`` dB, magma palette, low bands at the bottom)
    as a palette PNG, one pixel per band and frame."""
    from PIL import Image

    from andlib.report.browser import log_mel

    db = log_mel(audio, sample_rate, n_fft=SPEC_N_FFT, hop=SPEC_HOP, n_mels=SPEC_MELS)
    idx = np.clip((db + 80.0) / 80.0 * 255.0, 0, 255).astype(np.uint8)[::-1]
    img = Image.fromarray(np.ascontiguousarray(idx), mode="P")
    img.putpalette(_palette())
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def ogg_bytes(audio: np.ndarray, sample_rate: int, quality: float = OGG_QUALITY) -> bytes:
    """OGG Vorbis bytes of a mono clip (through soundfile / libsndfile)."""
    import soundfile as sf

    x = np.clip(np.asarray(audio, dtype=np.float32), -1.0, 1.0)
    buf = io.BytesIO()
    sf.write(
        buf,
        x,
        sample_rate,
        format="OGG",
        subtype="VORBIS",
        compression_level=float(np.clip(1.0 - quality, 0.0, 1.0)),
    )
    return buf.getvalue()


def _make_media(
    view: Any, clip_id: str, audio_path: str, image_path: str
) -> tuple[str, float | None, str]:
    """One clip's OGG and PNG -> ``(clip_id, seconds or None, error)``."""
    from andlib.data.audio import AudioError

    try:
        loaded = view.clip_audio(clip_id)
    except (AudioError, OSError) as exc:  # one unreadable clip must not stop the atlas
        return clip_id, None, f"{type(exc).__name__}: {exc}"
    if loaded is None:
        return clip_id, None, "audio not available"
    audio, sr = loaded
    atomic_write_bytes(audio_path, ogg_bytes(audio, sr))
    atomic_write_bytes(image_path, spectrogram_image(audio, sr))
    return clip_id, len(audio) / sr, ""


def _fingerprint(view: Any, clip_id: str) -> str:
    cfg = view.config
    path = view.clip_path(clip_id)
    try:
        st = os.stat(path) if path else None
    except OSError:
        st = None
    where = f"{path}|{st.st_size}|{st.st_mtime_ns}" if st else f"synthetic:{clip_id}|{cfg.seed}"
    return (
        f"{where}|{cfg.data.sample_rate}|{cfg.data.duration}|v{MEDIA_VERSION}"
        f"|q{OGG_QUALITY}|{SPEC_N_FFT}/{SPEC_HOP}/{SPEC_MELS}"
    )


def write_media(
    view: Any,
    out: Path,
    clip_ids: list[str],
    workers: int | None = None,
    progress: bool = True,
    logger: logging.Logger | None = None,
) -> dict[str, dict[str, Any]]:
    """Each clip's ``audio/<name>.ogg`` and ``spec/<name>.png`` (reused when ``media.json``
    says they were made from the same source with the same settings); returns
    ``{clip_id: {audio, image, seconds} or {error}}``. Stale media files are removed."""
    log_ = logger or log
    manifest_path = out / "media.json"
    try:
        old = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    except json.JSONDecodeError:
        old = {}
    (out / "audio").mkdir(parents=True, exist_ok=True)
    (out / "spec").mkdir(parents=True, exist_ok=True)
    result: dict[str, dict[str, Any]] = {}
    todo: list[tuple[str, str, str]] = []
    fingerprints = {}
    for clip_id in clip_ids:
        name = media_name(clip_id)
        entry = {"audio": f"audio/{name}.ogg", "image": f"spec/{name}.png"}
        fp = _fingerprint(view, clip_id)
        fingerprints[clip_id] = fp
        prev = old.get(clip_id) or {}
        if (
            prev.get("src") == fp
            and not prev.get("error")
            and (out / entry["audio"]).exists()
            and (out / entry["image"]).exists()
        ):
            result[clip_id] = {**entry, "seconds": prev.get("seconds")}
        else:
            result[clip_id] = entry
            todo.append((clip_id, str(out / entry["audio"]), str(out / entry["image"])))
    n_workers = max(1, min(workers or os.cpu_count() or 1, 8, len(todo) or 1))
    log_.info(
        "atlas: media for %d clips (%d reused, %d to make, %d worker(s))",
        len(clip_ids),
        len(clip_ids) - len(todo),
        len(todo),
        n_workers,
    )
    t0 = time.time()
    done = 0
    step = max(1, len(todo) // 10)

    def note(clip_id: str, seconds: float | None, error: str) -> None:
        nonlocal done
        done += 1
        if error:
            result[clip_id] = {"error": error}
            log_.warning("atlas: clip %s has no media: %s", clip_id, error)
        else:
            result[clip_id]["seconds"] = _num(seconds, 3)
        if progress and (done % step == 0 or done == len(todo)):
            rate = done / max(time.time() - t0, 1e-9)
            eta = (len(todo) - done) / max(rate, 1e-9)
            log_.info(
                "atlas: media %d/%d clips (%.1f clips/s, ETA %.0f s)", done, len(todo), rate, eta
            )

    from threadpoolctl import threadpool_limits

    # one BLAS thread: the spectrogram's small mel projection is ~40x slower when OpenBLAS
    # spreads it over busy cores
    with threadpool_limits(limits=1, user_api="blas"):
        if todo and n_workers == 1:
            for task in todo:
                note(*_make_media(view, *task))
        elif todo:
            # threads: libsndfile, the FFT and PNG encoding release the GIL; no process
            # start-up, nothing to pickle, and safe in a notebook kernel
            with ThreadPoolExecutor(n_workers) as pool:
                for res in pool.map(lambda task: _make_media(view, *task), todo):
                    note(*res)
    manifest = {
        c: {**r, "src": fingerprints[c]} for c, r in result.items() if not r.get("error")
    } | {c: {"error": r["error"]} for c, r in result.items() if r.get("error")}
    atomic_write_text(manifest_path, json.dumps(manifest, indent=0, sort_keys=True))
    keep = {r.get(k) for r in result.values() for k in ("audio", "image") if r.get(k)}
    for folder in ("audio", "spec"):
        for f in (out / folder).iterdir():
            if f"{folder}/{f.name}" not in keep:
                f.unlink(missing_ok=True)
    return result
