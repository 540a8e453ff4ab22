"""The neuron atlas: a static, shareable website of a run (``python -m andlib atlas``).

:func:`build_atlas` writes ``<run_dir>/atlas/``, a site that works from ``file://`` and from any
static host, with no server, no CDN and no build step: two HTML pages, one JavaScript file and
one stylesheet (copied from ``andlib/resources/atlas/``), and the data as ``.js`` files that
assign globals (Chromium refuses ``fetch()`` of local JSON under ``file://``; a ``<script>``
works everywhere).

- ``index.html``: the model, the probing set, each captioner's and the tagger's accuracy, the
  pruning result, a per-layer overview (neurons, mean simulation score beside its random
  baseline, polysemantic fraction, adjectives per neuron, class purity beside chance, pitch
  selectivity for pitch networks) with small inline-SVG charts, and a searchable, sortable
  table of every neuron.
- ``neuron.html#<layer>/<neuron>``: one neuron (hash routing; the page loads the layer's data
  file on demand): its summaries, calibrated summary, adjectives, DB/TAB/ICL and open
  concepts, simulation score with its baselines, activation histogram, and its top-K and
  bottom-K clips, each with an ``<audio>`` player, a spectrogram, its caption, label and
  activation.

Layout::

    atlas/index.html  neuron.html  atlas.js  atlas.css
    atlas/data/index.js          window.ATLAS_INDEX: run facts, layers, the neuron table
    atlas/data/clips.js          window.ATLAS_CLIPS: {clip_id: [label, caption, audio, image]}
    atlas/data/layer-<i>.js      window.ATLAS_LAYERS[<layer>]: every neuron's record
    atlas/audio/<clip>.ogg       each clip once, OGG Vorbis (as the model heard it)
    atlas/spec/<clip>.png        each clip's log-mel spectrogram once, a small palette PNG
    atlas/media.json             what each media file was made from (reused when unchanged)

Only the clips some neuron shows get media. Media are made in worker threads and reused
on the next build when the clip's source file and the settings are unchanged; the data files
are rewritten every time (seconds).

The data are built by :mod:`andlib.report.atlas_data`, the media made by
:mod:`andlib.report.atlas_media`; their names stay importable from here.
"""

from __future__ import annotations

import html
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from andlib.config import Config
from andlib.report.atlas_data import HIST_BINS as HIST_BINS
from andlib.report.atlas_data import SIM_NAMES as SIM_NAMES
from andlib.report.atlas_data import (
    _js_assign,
    _neuron_scores,
    _num,
    _simulation_rows,
    _text,
    _topk_lookup,
)
from andlib.report.atlas_data import closed_columns as closed_columns
from andlib.report.atlas_data import headline as headline
from andlib.report.atlas_data import layer_overview as layer_overview
from andlib.report.atlas_data import media_name as media_name
from andlib.report.atlas_data import neuron_records as neuron_records
from andlib.report.atlas_data import primary_concept_column as primary_concept_column
from andlib.report.atlas_data import run_facts as run_facts
from andlib.report.atlas_data import table_row as table_row
from andlib.report.atlas_media import MEDIA_VERSION as MEDIA_VERSION
from andlib.report.atlas_media import OGG_QUALITY as OGG_QUALITY
from andlib.report.atlas_media import SPEC_HOP as SPEC_HOP
from andlib.report.atlas_media import SPEC_MELS as SPEC_MELS
from andlib.report.atlas_media import SPEC_N_FFT as SPEC_N_FFT
from andlib.report.atlas_media import ogg_bytes as ogg_bytes
from andlib.report.atlas_media import spectrogram_image as spectrogram_image
from andlib.report.atlas_media import write_media as write_media
from andlib.store import RunDir, atomic_write_text

STAGE = "atlas"
VERSION = 2
ATLAS_DIR = "atlas"
TEMPLATE_DIR = Path(__file__).resolve().parent.parent / "resources" / "atlas"
TEMPLATES = ("index.html", "neuron.html", "atlas.js", "atlas.css")

log = logging.getLogger("andlib.report.atlas")


# --------------------------------------------------------------------------------------------
# The site
# --------------------------------------------------------------------------------------------


def atlas_path(run: RunDir) -> Path:
    return run.path / ATLAS_DIR


def _dir_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def build_atlas(
    run: RunDir | str | os.PathLike,
    cfg: Config | None = None,
    out: str | os.PathLike | None = None,
    k: int | None = None,
    workers: int | None = None,
    progress: bool = True,
    logger: logging.Logger | None = None,
) -> dict[str, Any]:
    """Write the atlas of ``run`` into ``out`` (default ``<run>/atlas``).

    ``cfg`` defaults to the run's ``config.yaml``; ``k`` (clips per end) to ``cfg.k``;
    ``workers`` (media threads) to the CPU count. Returns ``{atlas, index, n_neurons,
    n_layers, n_clips, n_media_errors, size_mb, seconds}``."""
    from andlib.report.browser import RunView

    t0 = time.time()
    run = run if isinstance(run, RunDir) else RunDir(run)
    log_ = logger or log
    view = RunView(run)
    cfg = cfg or view.config
    k = int(k or cfg.k)
    dest = Path(out) if out else atlas_path(run)
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "data").mkdir(exist_ok=True)

    # what every layer's records need, read once
    sim = _simulation_rows(run)
    sims: dict[tuple[str, int], dict[str, float | None]] = {}
    if sim is not None and len(sim):
        for r in sim.itertuples():
            sims.setdefault((str(r.layer), int(r.neuron)), {})[str(r.method)] = _num(r.pearson)
    scores = _neuron_scores(run)
    topk = _topk_lookup(view)

    layers = view.layers
    neurons_df = view.neurons
    primary = primary_concept_column(neurons_df.columns, cfg) if neurons_df is not None else None
    table: list[list[Any]] = []
    layer_files: dict[str, str] = {}
    n_neurons: dict[str, int] = {}
    shown: dict[str, None] = {}
    for i, layer in enumerate(layers):
        records = neuron_records(view, layer, k, topk, sims, scores=scores)
        n_neurons[layer] = len(records)
        for j, rec in records.items():
            table.append(table_row(layer, j, rec, primary))
            for c, _ in rec["top"] + rec["bot"]:
                shown[c] = None
        name = f"data/layer-{i}.js"
        layer_files[layer] = name
        atomic_write_text(
            dest / name,
            "window.ATLAS_LAYERS = window.ATLAS_LAYERS || {};\n"
            + _js_assign(f"window.ATLAS_LAYERS[{json.dumps(layer)}]", records),
        )
    for f in (dest / "data").glob("layer-*.js"):
        if f"data/{f.name}" not in layer_files.values():
            f.unlink()
    t_data = time.time() - t0
    log_.info("atlas: %d neurons of %d layers in %.1f s", len(table), len(layers), t_data)

    media = write_media(view, dest, list(shown), workers=workers, progress=progress, logger=log_)
    clips = view.clips
    clip_data = {}
    for clip_id in shown:
        label = ""
        if clip_id in clips.index:
            label = _text(clips.at[clip_id, "category"]) if "category" in clips else ""
            if not label and "label" in clips:
                label = _text(clips.at[clip_id, "label"])
        m = media.get(clip_id, {})
        clip_data[clip_id] = [
            label,
            view.captions.get(clip_id, ""),
            m.get("audio", ""),
            m.get("image", ""),
            m.get("seconds"),
        ]
    atomic_write_text(dest / "data/clips.js", _js_assign("window.ATLAS_CLIPS", clip_data))

    facts = run_facts(run, view, cfg)
    facts["primary"] = primary
    facts["closed_labels"] = closed_labels(
        closed_columns(neurons_df.columns) if neurons_df is not None else []
    )
    index = {
        "version": VERSION,
        "facts": facts,
        "layers": layer_overview(run, layers, n_neurons, neurons_df, primary),
        "layer_files": layer_files,
        "columns": [
            "layer",
            "neuron",
            "concept",
            "description",
            "adjectives",
            "sim",
            "concepts",
            "high",
            "metrics",
        ],
        "neurons": table,
    }
    atomic_write_text(dest / "data/index.js", _js_assign("window.ATLAS_INDEX", index))
    for name in TEMPLATES:
        text = (TEMPLATE_DIR / name).read_text(encoding="utf-8")
        if name.endswith(".html"):
            text = text.replace("{{title}}", html.escape(f"AND atlas · {cfg.name}"))
        atomic_write_text(dest / name, text)
    errors = sum(1 for m in media.values() if m.get("error"))
    seconds = time.time() - t0
    size = _dir_size(dest)
    log_.info(
        "atlas: %s (%.1f MB, %d clips, %d without media) in %.0f s",
        dest / "index.html",
        size / 1e6,
        len(shown),
        errors,
        seconds,
    )
    return {
        "atlas": str(dest),
        "index": str(dest / "index.html"),
        "n_neurons": len(table),
        "n_layers": len(layers),
        "n_clips": len(shown),
        "n_media_errors": errors,
        "size_mb": round(size / 1e6, 1),
        "seconds": round(seconds, 1),
    }


def closed_labels(columns: list[str]) -> dict[str, str]:
    """Readable names of the closed-set columns (``db_soft_wpmi`` -> ``DB · soft-WPMI``)."""
    names = {
        "soft_wpmi": "soft-WPMI",
        "wpmi": "WPMI",
        "cos": "cos",
        "cos3": "cos³",
        "rank_reorder": "rank reorder",
    }
    out = {}
    for c in columns:
        if c.startswith("db_"):
            out[c] = f"DB · {names.get(c[3:], c[3:])}"
        elif c == "tab":
            out[c] = "TAB (CLAP)"
        elif c == "icl":
            out[c] = "ICL (LLM)"
        elif c == "icl_embedding":
            out[c] = "ICL (embedding, no LLM)"
        else:
            out[c] = c
    return out


def run_stage(cfg: Config, run: RunDir) -> dict[str, Any]:
    """``python -m andlib atlas``: write ``<run_dir>/atlas/`` (see :func:`build_atlas`)."""
    return build_atlas(run, cfg, logger=run.logger(STAGE))
