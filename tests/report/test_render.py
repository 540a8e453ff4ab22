"""andlib.report.render: a neuron's record drawn without pyplot."""

from __future__ import annotations

import io
import math

import numpy as np
import soundfile as sf

from andlib.report import render


def record(**extra):
    base = {
        "layer": "layers.0.mlp",
        "neuron": 3,
        "described": True,
        "calibrated_summary": "A <loud> dog.",
        "high_summary": "",
        "low_summary": "Quiet rain.",
        "adjectives": ["loud", "sharp"],
        "open_concepts": [],
        "closed_concepts": {"db_cos": "dog", "db_cos_top5": "dog;rain", "tab": ""},
        "activations": np.linspace(-1, 1, 50),
        "top": [{"activation": 0.9}],
        "bottom": [{"activation": math.nan}],
    }
    return {**base, **extra}


def test_the_record_html_escapes_text_and_leaves_out_empty_fields():
    html = render.record_html(record())
    assert "layers.0.mlp · neuron 3" in html and "A &lt;loud&gt; dog." in html
    assert "Acoustic adjectives:</b> loud, sharp" in html
    assert "Summary (highly activating)" not in html and "Open-set concepts" not in html
    assert "<td>db_cos</td><td><b>dog</b></td><td>dog;rain</td>" in html and ">tab<" not in html
    undescribed = render.record_html(record(described=False))
    assert "No description for this neuron" in undescribed


def test_images_are_pngs_and_a_record_without_activations_has_no_histogram():
    png = render.histogram_png(record())
    assert png is not None and png[:4] == b"\x89PNG"
    assert render.histogram_png(record(activations=None)) is None
    t = np.arange(8000) / 16000
    spec = render.spectrogram_png(np.sin(2 * np.pi * 440 * t).astype(np.float32), 16000)
    assert spec[:4] == b"\x89PNG"
    assert render.img_tag(None) == "" and render.img_tag(png, 90).startswith('<img src="data:')


def test_wav_bytes_decode_back_to_the_clip():
    audio = (0.25 * np.sin(np.linspace(0, 100, 4000))).astype(np.float32)
    back, sr = sf.read(io.BytesIO(render.wav_bytes(audio, 8000)))
    assert sr == 8000 and len(back) == 4000 and np.allclose(back, audio, atol=1e-3)
