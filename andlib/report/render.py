"""A neuron's record rendered without pyplot or a display: PNG bytes (its activation
histogram, a clip's log-mel spectrogram), WAV bytes, and HTML (:func:`record_html`), for the
widget browser and the static pages (:mod:`andlib.report.browser`) and the atlas.
"""

from __future__ import annotations

import base64
import html
import io
from functools import lru_cache
from typing import Any

import numpy as np

SPECTROGRAM_SIZE = (3.2, 1.5)
HISTOGRAM_SIZE = (5.5, 2.2)


# --------------------------------------------------------------------------------------------
# Rendering (PNG bytes, WAV bytes, HTML) without pyplot or a display
# --------------------------------------------------------------------------------------------


def _new_figure(size: tuple[float, float]):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, dpi=90)
    FigureCanvasAgg(fig)
    return fig


def _png(fig) -> bytes:
    """PNG bytes of a figure (fixed axes positions: no tight-bbox second draw)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def histogram_png(record: dict[str, Any]) -> bytes | None:
    """The neuron's activation histogram; its top-K clips marked red, bottom-K blue."""
    values = record.get("activations")
    if values is None or not len(values):
        return None
    fig = _new_figure(HISTOGRAM_SIZE)
    ax = fig.add_axes((0.12, 0.24, 0.85, 0.7))
    ax.hist(values, bins=min(50, max(10, len(values) // 10)), color="#7f7f7f", alpha=0.8)
    for clips, color in ((record["top"], "#d62728"), (record["bottom"], "#1f77b4")):
        for c in clips:
            if np.isfinite(c["activation"]):
                ax.axvline(c["activation"], color=color, lw=1, alpha=0.8)
    ax.set_xlabel("activation (red: top-K, blue: bottom-K)")
    ax.set_ylabel("clips")
    ax.spines[["top", "right"]].set_visible(False)
    return _png(fig)


@lru_cache(maxsize=8)
def _mel_filters(sample_rate: int, n_fft: int, n_mels: int) -> np.ndarray:
    import librosa

    return librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels)


def log_mel(
    audio: np.ndarray, sample_rate: int, n_fft: int = 1024, hop: int = 256, n_mels: int = 64
) -> np.ndarray:
    """``[n_mels, frames]`` log-mel power in dB relative to the loudest bin (floor -80 dB).

    The mel filters come from librosa; the STFT is plain NumPy (a Hann-windowed, centered
    frame stack), which avoids librosa's first-call JIT compilation in an interactive app.
    """
    from numpy.lib.stride_tricks import sliding_window_view

    x = np.pad(np.asarray(audio, dtype=np.float32), n_fft // 2)
    if len(x) < n_fft:
        x = np.pad(x, (0, n_fft - len(x)))
    frames = sliding_window_view(x, n_fft)[::hop] * np.hanning(n_fft).astype(np.float32)
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    mel = _mel_filters(sample_rate, n_fft, n_mels) @ power.T
    db = 10 * np.log10(np.maximum(mel, 1e-10) / max(float(mel.max()), 1e-10))
    return np.maximum(db, -80.0)


def spectrogram_png(audio: np.ndarray, sample_rate: int) -> bytes:
    """The clip's log-mel spectrogram (:func:`log_mel`) as PNG bytes."""
    db = log_mel(audio, sample_rate)
    fig = _new_figure(SPECTROGRAM_SIZE)
    ax = fig.add_axes((0.04, 0.24, 0.94, 0.72))
    ax.imshow(
        db,
        origin="lower",
        aspect="auto",
        cmap="magma",
        vmin=-80,
        vmax=0,
        extent=(0, len(audio) / sample_rate, 0, db.shape[0]),
    )
    ax.set_xlabel("s", fontsize=7)
    ax.set_yticks([])
    ax.tick_params(labelsize=7)
    return _png(fig)


def wav_bytes(audio: np.ndarray, sample_rate: int) -> bytes:
    """16-bit PCM WAV bytes (what ``ipywidgets.Audio`` plays)."""
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, np.asarray(audio, dtype=np.float32), sample_rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def img_tag(png: bytes | None, width: int | None = None) -> str:
    if not png:
        return ""
    w = f' width="{width}"' if width else ""
    return f'<img src="data:image/png;base64,{base64.b64encode(png).decode()}"{w}/>'


def record_html(record: dict[str, Any]) -> str:
    """The textual part of a record (summaries, concepts) as an HTML fragment."""
    e = html.escape
    parts = [f"<h3>{e(record['layer'])} · neuron {record['neuron']}</h3>"]
    if not record["described"]:
        parts.append("<p><i>No description for this neuron (run the concepts stage).</i></p>")
    for key, label in (
        ("calibrated_summary", "Calibrated summary"),
        ("high_summary", "Summary (highly activating)"),
        ("low_summary", "Summary (lowly activating)"),
    ):
        if record[key]:
            parts.append(f"<p><b>{label}:</b> {e(record[key])}</p>")
    if record["adjectives"]:
        parts.append(f"<p><b>Acoustic adjectives:</b> {e(', '.join(record['adjectives']))}</p>")
    if record["open_concepts"]:
        parts.append(f"<p><b>Open-set concepts:</b> {e(', '.join(record['open_concepts']))}</p>")
    closed = {k: v for k, v in record["closed_concepts"].items() if not k.endswith("_top5") and v}
    if closed:
        rows = "".join(
            f"<tr><td>{e(k)}</td><td><b>{e(v)}</b></td>"
            f"<td>{e(record['closed_concepts'].get(k + '_top5', ''))}</td></tr>"
            for k, v in closed.items()
        )
        parts.append(
            "<p><b>Closed-set concepts</b></p><table><tr><th>method</th><th>top-1</th>"
            f"<th>top-5</th></tr>{rows}</table>"
        )
    return "\n".join(parts)


def clip_html(c: dict[str, Any]) -> str:
    e = html.escape
    where = f" · {e(c['category'])}" if c.get("category") else ""
    return (
        f"<b>#{c['rank'] + 1}</b> <code>{e(c['clip_id'])}</code>{where} · "
        f"activation {c['activation']:.3f}<br/><i>{e(c['caption']) or '(no caption)'}</i>"
    )
