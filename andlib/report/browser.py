"""Explore described neurons: a record per neuron, a search, an ipywidgets app, a static page.

- :func:`neuron_record` assembles everything known about one neuron from the run directory:
  summaries, calibrated summary, closed-set concepts (``db_*``, ``tab``, ``icl`` or
  ``icl_embedding``), open-set concepts, acoustic adjectives, its activation over every clip,
  and its top-K / bottom-K clips (path, caption, activation).
- :func:`search_neurons` finds neurons by a concept or a word of their description.
- :class:`NeuronBrowser` is the interactive app (layer dropdown, neuron slider, search box;
  each clip with an audio player, a spectrogram and its caption). It builds without a display,
  so a notebook run by papermill does not fail; :func:`static_overview` renders a few neurons
  as plain HTML for such runs.

Only the documented run-directory files are read (``neurons.csv`` or ``summaries.csv``,
``captions.csv``, ``clips.csv``, ``neuron_topk.csv``, ``activations/``); any of them may be
missing and the record then has empty fields.
"""

from __future__ import annotations

import html
import os
import re
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from andlib.config import Config, load_config, resolve_path
from andlib.layout import layer_sort_key, sort_layers
from andlib.report.analysis import open_activations
from andlib.report.render import (
    clip_html,
    histogram_png,
    img_tag,
    record_html,
    spectrogram_png,
    wav_bytes,
)
from andlib.report.render import log_mel as log_mel  # re-exported: the old import path
from andlib.store import (
    RunDir,
    caption_of,
    concept_columns,
    decode_list,
    read_clips,
    read_neurons,
    read_summaries,
    read_topk,
)
from andlib.text.names import normalize_concept

# --------------------------------------------------------------------------------------------
# Reading a run (cached)
# --------------------------------------------------------------------------------------------


class RunView:
    """A read-only, lazily loaded view of a run directory: each file read once, by its reader
    in :mod:`andlib.store`."""

    def __init__(self, run: RunDir | str | os.PathLike):
        if not isinstance(run, RunDir):
            if not Path(run).is_dir():
                raise FileNotFoundError(f"run directory {run} does not exist")
            run = RunDir(run)
        self.run = run
        self._layer_cache: dict[str, np.ndarray] = {}

    @classmethod
    def of(cls, run: RunView | RunDir | str | os.PathLike) -> RunView:
        return run if isinstance(run, RunView) else cls(run)

    @cached_property
    def config(self) -> Config:
        """The run's ``config.yaml`` (defaults when absent or unreadable)."""
        try:
            return load_config(self.run / "config.yaml")
        except Exception:
            return Config()

    @cached_property
    def neurons(self) -> pd.DataFrame | None:
        """``neurons.csv``, else ``summaries.csv``, indexed by ``(layer, neuron)``."""
        for name, read in (("neurons.csv", read_neurons), ("summaries.csv", read_summaries)):
            if self.run.exists(name):
                return read(self.run).set_index(["layer", "neuron"], drop=False).sort_index()
        return None

    @cached_property
    def captions(self) -> dict[str, str]:
        """``{clip_id: caption}`` (empty when ``captions.csv`` is absent)."""
        return caption_of(self.run) if self.run.exists("captions.csv") else {}

    @cached_property
    def clips(self) -> pd.DataFrame:
        """``clips.csv`` indexed by clip id (empty when absent)."""
        if not self.run.exists("clips.csv"):
            return pd.DataFrame(columns=["path", "label", "category"])
        return read_clips(self.run).set_index("clip_id", drop=False)

    @cached_property
    def topk(self) -> pd.DataFrame | None:
        """``neuron_topk.csv`` (``None`` when absent)."""
        return read_topk(self.run) if self.run.exists("neuron_topk.csv") else None

    @cached_property
    def activations(self) -> Any | None:
        if not self.run.exists("activations/index.json"):
            return None
        return open_activations(self.run)

    @cached_property
    def clip_ids(self) -> list[str]:
        """Clip ids in activation-row order."""
        if self.activations is not None:
            return [str(c) for c in self.activations.clip_ids]
        return self.clips["clip_id"].tolist() if "clip_id" in self.clips else []

    @cached_property
    def clip_index(self) -> dict[str, int]:
        return {c: i for i, c in enumerate(self.clip_ids)}

    @cached_property
    def layers(self) -> list[str]:
        """Layer keys in depth order (recorded layers, else described ones)."""
        if self.activations is not None:
            return sort_layers(self.activations.layers)
        if self.neurons is not None:
            return sort_layers(self.neurons["layer"])
        return []

    def layer_activations(self, layer: str) -> np.ndarray | None:
        """``[n_clips, n_neurons]`` of one layer (``None`` without activations)."""
        if self.activations is None or layer not in self.activations.layers:
            return None
        if layer not in self._layer_cache:
            self._layer_cache[layer] = np.asarray(self.activations[layer], dtype=np.float32)
        return self._layer_cache[layer]

    def n_neurons(self, layer: str) -> int:
        acts = self.layer_activations(layer)
        if acts is not None:
            return int(acts.shape[1])
        described = self.described_neurons(layer)
        return max(described) + 1 if described else 0

    def described_neurons(self, layer: str) -> list[int]:
        """Neuron indices of ``layer`` that have a row in ``neurons.csv``."""
        if self.neurons is None:
            return []
        return sorted(self.neurons.loc[self.neurons["layer"] == layer, "neuron"].astype(int))

    def row(self, layer: str, neuron: int) -> dict[str, Any]:
        """The neuron's ``neurons.csv`` row as a dict (empty when not described)."""
        if self.neurons is None or (layer, neuron) not in self.neurons.index:
            return {}
        return self.neurons.loc[[(layer, neuron)]].iloc[0].to_dict()

    def clip_path(self, clip_id: str) -> str:
        if clip_id not in self.clips.index or "path" not in self.clips:
            return ""
        path = str(self.clips.at[clip_id, "path"] or "")
        if path and not Path(path).exists() and resolve_path(path).exists():
            path = str(resolve_path(path))
        return path

    def clip_audio(self, clip_id: str) -> tuple[np.ndarray, int] | None:
        """``(audio, sample_rate)`` of a clip: decoded from its path, or re-synthesized for a
        synthetic probe (no path); ``None`` when neither works."""
        from andlib.data import audio as audio_io
        from andlib.data import probing as data

        sr = self.config.data.sample_rate
        path = self.clip_path(clip_id)
        if path and Path(path).exists():
            try:
                return audio_io.load_audio(path, sr, self.config.data.duration, -200.0), sr
            except audio_io.AudioError:
                return None
        specs = {s.clip_id: s for s in data.probe_specs()}
        if clip_id in specs:
            duration = self.config.data.duration or 5.0
            return data.render_probe(specs[clip_id], sr, duration, self.config.seed), sr
        return None


# --------------------------------------------------------------------------------------------
# Records and search
# --------------------------------------------------------------------------------------------


def _closed_concepts(row: dict[str, Any]) -> dict[str, str]:
    keys = concept_columns(row, with_top5=True)
    return {k: str(row[k]) for k in keys}


def neuron_record(
    run: RunView | RunDir | str | os.PathLike, layer: str, neuron: int, k: int | None = None
) -> dict[str, Any]:
    """Everything known about one neuron.

    Keys: ``layer, neuron, described`` (has a ``neurons.csv`` row), ``high_summary,
    low_summary, calibrated_summary, adjectives`` (list),
    ``open_concepts`` (list), ``closed_concepts`` (``{column: value}`` for ``db_*``, ``tab``,
    ``icl`` or ``icl_embedding`` and their ``_top5``), ``activations`` (``[n_clips]`` array or ``None``), and
    ``top`` / ``bottom``: lists of ``{rank, clip_id, activation, path, caption, category}``.

    The top/bottom clips are those of ``neurons.csv`` (the clips the description was made
    from), else of ``neuron_topk.csv``, else the activation extremes; ``k`` defaults to the
    run's ``k``.
    """
    view = RunView.of(run)
    layer, neuron = str(layer), int(neuron)
    k = int(k or view.config.k)
    row = view.row(layer, neuron)
    acts = view.layer_activations(layer)
    values = None if acts is None else acts[:, neuron].copy()

    def ends(end: str) -> list[str]:
        column = "top_clips" if end == "high" else "bottom_clips"
        if row.get(column):
            return decode_list(row[column])[:k]
        if view.topk is not None:
            t = view.topk
            sel = t[(t["layer"] == layer) & (t["neuron"] == neuron) & (t["end"] == end)]
            if len(sel):
                return sel.sort_values("rank")["clip_id"].head(k).tolist()
        if values is not None:
            order = np.argsort(-values if end == "high" else values, kind="stable")[:k]
            return [view.clip_ids[i] for i in order]
        return []

    def clip(rank: int, clip_id: str, end: str) -> dict[str, Any]:
        activation = float("nan")
        if values is not None and clip_id in view.clip_index:
            activation = float(values[view.clip_index[clip_id]])
        elif view.topk is not None:
            t = view.topk
            hit = t[(t["layer"] == layer) & (t["neuron"] == neuron) & (t["clip_id"] == clip_id)]
            if len(hit):
                activation = float(hit["activation"].iloc[0])
        category = ""
        if clip_id in view.clips.index and "category" in view.clips:
            category = str(view.clips.at[clip_id, "category"])
        return {
            "rank": rank,
            "clip_id": clip_id,
            "activation": activation,
            "path": view.clip_path(clip_id),
            "caption": view.captions.get(clip_id, ""),
            "category": category,
        }

    return {
        "layer": layer,
        "neuron": neuron,
        "described": bool(row),
        "high_summary": str(row.get("high_summary", "")),
        "low_summary": str(row.get("low_summary", "")),
        "calibrated_summary": str(row.get("calibrated_summary", "")),
        "adjectives": decode_list(row.get("adjectives")),
        "open_concepts": decode_list(row.get("open_concepts")),
        "closed_concepts": _closed_concepts(row),
        "activations": values,
        "top": [clip(i, c, "high") for i, c in enumerate(ends("high"))],
        "bottom": [clip(i, c, "low") for i, c in enumerate(ends("low"))],
    }


_SEARCH_FIELDS = {  # column -> weight of a match ("closed": every closed-set column)
    "closed": 3.0,
    "open_concepts": 2.0,
    "adjectives": 2.0,
    "calibrated_summary": 1.0,
    "high_summary": 0.5,
    "low_summary": 0.25,
}


def search_neurons(
    run: RunView | RunDir | str | os.PathLike, query: str, limit: int | None = 50
) -> pd.DataFrame:
    """Neurons whose concepts or description contain ``query`` as whole words.

    Matching ignores case and treats ``_``/``-`` as spaces (``water drops`` finds
    ``water_drops``). Each matching field adds a weight (closed-set concept 3, open concept or
    adjective 2, calibrated summary 1, high summary 0.5, low summary 0.25). Returns
    ``layer, neuron, score, matched, calibrated_summary``, best first (then by depth).
    """
    view = RunView.of(run)
    columns = ["layer", "neuron", "score", "matched", "calibrated_summary"]
    q = normalize_concept(query)
    if not q or view.neurons is None:
        return pd.DataFrame(columns=columns)
    pattern = re.compile(rf"(?<![a-z0-9]){re.escape(q)}(?![a-z0-9])")
    df = view.neurons.reset_index(drop=True)
    closed = concept_columns(df.columns, with_top5=True)
    score = np.zeros(len(df))
    matched: list[list[str]] = [[] for _ in range(len(df))]
    fields = [(c, _SEARCH_FIELDS["closed"]) for c in closed] + [
        (c, w) for c, w in _SEARCH_FIELDS.items() if c != "closed" and c in df
    ]
    for column, weight in fields:
        hits = df[column].map(lambda v: bool(pattern.search(normalize_concept(v)))).to_numpy()
        score += weight * hits
        for i in np.flatnonzero(hits):
            matched[i].append(column)
    out = pd.DataFrame(
        {
            "layer": df["layer"],
            "neuron": df["neuron"],
            "score": score,
            "matched": [", ".join(m) for m in matched],
            "calibrated_summary": df.get("calibrated_summary", pd.Series([""] * len(df))),
        }
    )
    out = out[out["score"] > 0]
    order = sorted(
        out.index,
        key=lambda i: (
            -out.at[i, "score"],
            layer_sort_key(out.at[i, "layer"]),
            out.at[i, "neuron"],
        ),
    )
    out = out.loc[order].reset_index(drop=True)
    return out.head(limit) if limit else out


# --------------------------------------------------------------------------------------------
# The interactive app
# --------------------------------------------------------------------------------------------


class NeuronBrowser:
    """An ipywidgets app over a run directory.

    Pick a layer (dropdown) and a neuron (slider / number box), or search neurons by a concept
    or a word of their description and pick a result. The panel shows the record's text, the
    activation histogram, and for each top-K and bottom-K clip a spectrogram, an audio player
    and the caption. ``browser.widget`` is the root widget; a notebook displays the browser by
    ending a cell with it. Building it needs no display or front end.
    """

    def __init__(self, run: RunView | RunDir | str | os.PathLike, k: int | None = None):
        import ipywidgets as w

        self.view = RunView.of(run)
        self.k = k
        self.record: dict[str, Any] | None = None
        self._hold = False  # True while several controls change at once: render once after
        layers = self.view.layers
        self.layer = w.Dropdown(options=layers, description="layer")
        self.neuron = w.IntSlider(min=0, max=max(self._max_neuron(), 0), description="neuron")
        self.neuron_box = w.BoundedIntText(min=0, max=self.neuron.max, layout={"width": "90px"})
        w.link((self.neuron, "value"), (self.neuron_box, "value"))
        w.link((self.neuron, "max"), (self.neuron_box, "max"))
        self.query = w.Text(
            placeholder="concept or word, e.g. dog, water drops, high-pitched",
            continuous_update=False,
        )
        self.search_button = w.Button(description="search", icon="search")
        self.results = w.Select(options=[], rows=6, layout={"width": "100%"})
        self.status = w.HTML()
        self.panel = w.VBox()
        self.widget = w.VBox(
            [
                w.HBox([self.layer, self.neuron, self.neuron_box]),
                w.HBox([self.query, self.search_button]),
                self.results,
                self.status,
                self.panel,
            ]
        )
        self.layer.observe(self._on_layer, names="value")
        self.neuron.observe(lambda _: self._refresh(), names="value")
        self.query.observe(lambda change: self.search(change["new"]), names="value")
        self.search_button.on_click(lambda _: self.search(self.query.value))
        self.results.observe(self._on_result, names="value")
        if layers:
            self._refresh()
        else:
            self.status.value = "<i>No layers in this run yet (run the record stage).</i>"

    def _max_neuron(self) -> int:
        return self.view.n_neurons(self.layer.value) - 1 if self.layer.value else 0

    def _on_layer(self, _change: Any) -> None:
        if not self._hold:
            self.show(self.layer.value, self.neuron.value)

    def _on_result(self, change: Any) -> None:
        if change["new"]:
            self.show(*change["new"])

    def _refresh(self) -> None:
        if not self._hold and self.layer.value is not None:
            self.panel.children = self._render(self.layer.value, self.neuron.value)

    def show(self, layer: str, neuron: int) -> NeuronBrowser:
        """Select ``layer`` / ``neuron`` (clamped to the layer's size) and render it once."""
        self._hold = True
        try:
            self.layer.value = layer
            top = max(self._max_neuron(), 0)
            self.neuron.max = top
            self.neuron.value = min(int(neuron), top)
        finally:
            self._hold = False
        self._refresh()
        return self

    def search(self, query: str) -> pd.DataFrame:
        """Run :func:`search_neurons` and list the hits in the results box."""
        hits = search_neurons(self.view, query, limit=100)
        self.results.options = [
            (
                f"{r.layer} #{r.neuron} [{r.score:g}] {str(r.calibrated_summary)[:90]}",
                (r.layer, int(r.neuron)),
            )
            for r in hits.itertuples()
        ]
        self.status.value = f"{len(hits)} neuron(s) match <b>{html.escape(query)}</b>"
        return hits

    def _render(self, layer: str, neuron: int) -> list[Any]:
        import ipywidgets as w

        record = neuron_record(self.view, layer, neuron, self.k)
        self.record = record
        children: list[Any] = [w.HTML(record_html(record))]
        hist = histogram_png(record)
        if hist:
            children.append(w.Image(value=hist, format="png"))
        for key, label in (
            ("top", "Top-K (most activating)"),
            ("bottom", "Bottom-K (least activating)"),
        ):
            children.append(w.HTML(f"<h4>{label}</h4>"))
            children += [self._clip_widget(c) for c in record[key]]
        return children

    def _clip_widget(self, clip: dict[str, Any]) -> Any:
        import ipywidgets as w

        parts: list[Any] = [w.HTML(clip_html(clip))]
        loaded = self.view.clip_audio(clip["clip_id"])
        if loaded is None:
            parts.append(w.HTML("<i>audio not available</i>"))
            return w.VBox(parts)
        audio, sr = loaded
        parts.append(w.Audio(value=wav_bytes(audio, sr), format="wav", autoplay=False, loop=False))
        spec = w.Image(value=spectrogram_png(audio, sr), format="png", layout={"width": "300px"})
        return w.HBox([spec, w.VBox(parts)])

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)


# --------------------------------------------------------------------------------------------
# The static page (papermill, exported notebooks)
# --------------------------------------------------------------------------------------------


def pick_neurons(run: RunView | RunDir | str | os.PathLike, n: int = 3) -> list[tuple[str, int]]:
    """``n`` neurons worth a look: from layers spread evenly over depth, in each the neuron
    with the largest activation (else the first described one)."""
    view = RunView.of(run)
    layers = view.layers
    if not layers or n < 1:
        return []
    picked: list[tuple[str, int]] = []
    for i in range(n):
        layer = layers[round(i * (len(layers) - 1) / max(n - 1, 1))]
        acts = view.layer_activations(layer)
        if acts is not None:
            candidates = [int(j) for j in np.argsort(-acts.max(axis=0), kind="stable")]
        else:
            candidates = view.described_neurons(layer)
        for j in candidates:
            if (layer, j) not in picked:
                picked.append((layer, j))
                break
    return picked


def static_overview(
    run: RunView | RunDir | str | os.PathLike,
    n: int = 3,
    neurons: list[tuple[str, int]] | None = None,
    k: int | None = None,
):
    """A self-contained HTML overview of a few neurons (``IPython.display.HTML``): the record's
    text, histogram, and each top/bottom clip's spectrogram and caption (no audio, to keep the
    notebook small). ``neurons`` defaults to :func:`pick_neurons`."""
    from IPython.display import HTML

    view = RunView.of(run)
    chosen = neurons if neurons is not None else pick_neurons(view, n)
    if not chosen:
        return HTML("<p><i>Nothing to show: this run has no recorded or described neurons.</i></p>")
    blocks = []
    for layer, neuron in chosen:
        record = neuron_record(view, layer, neuron, k)
        rows = []
        for key, label in (("top", "top-K"), ("bottom", "bottom-K")):
            for c in record[key]:
                loaded = view.clip_audio(c["clip_id"])
                img = img_tag(spectrogram_png(*loaded), width=220) if loaded else ""
                rows.append(f"<tr><td>{label}</td><td>{img}</td><td>{clip_html(c)}</td></tr>")
        blocks.append(
            "<div style='border-top:1px solid #ccc;margin-top:1em'>"
            + record_html(record)
            + img_tag(histogram_png(record))
            + f"<table>{''.join(rows)}</table></div>"
        )
    return HTML("\n".join(blocks))
