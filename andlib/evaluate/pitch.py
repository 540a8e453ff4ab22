"""Descriptions of pitch networks scored against exact ground truth.

A pretrained pitch network (:mod:`andlib.models.pitch`: CREPE, PESTO) dissected on the pitched
probing set (:mod:`andlib.data.pitched`) has two kinds of truth the descriptions never see:

**Output layer** (``classifier``): every output neuron is a pitch bin with a known centre
frequency. :func:`output_layer_scores` reads the pitch a neuron's description states
(:func:`andlib.data.notes.parse_pitches`: Hz, else a note name) and compares it with the bin. Of
the *in-range* bins (those inside the pitched notes' f0 range; the others never have a note
near them) it reports the share described within +-1 semitone, the median error in
semitones (a neuron whose description states no pitch counts as an infinite error, so the
median is ``null`` when fewer than half state one) and the same share with the stated
pitches shuffled across the in-range neurons (chance, averaged over seeded permutations).
Descriptions scored: the calibrated summary (the primary result; the high summary where
calibration left nothing), the high summary, and each DB/ICL concept whose name states a
pitch (a note-name concept set such as the shipped ``note_concepts.txt``). Written to
``pitch_last_layer.json`` (``within_1_semitone, median_error_semitones,
chance_within_1_semitone, n_neurons`` of the primary description, plus every method under
``methods``) and per neuron to ``pitch_output_neurons.csv``.

**Every layer** (tuning curves): over the synthetic notes only, each neuron's mean-pooled
activation against each attribute of :data:`andlib.data.pitched.ATTRIBUTES` (f0 in semitones and
the timbre parameters), binned into quantile bins (:data:`N_BINS` for each timbre parameter,
a semitone each for f0: :data:`F0_BIN_SEMITONES`); the share of the
activation's variance the bins explain (the correlation ratio eta², adjusted for the number
of bins so that chance is about 0) says which attribute drives the neuron
(``top_attribute``, when its adjusted eta² is at least :data:`MIN_ETA2`, else ``none``). Then:

- whether the neuron's description names that attribute (:data:`ATTRIBUTE_WORDS`; chance:
  the descriptions shuffled within the layer);
- for the neurons f0 drives, whether the description states their *preferred* pitch (the
  median f0 of their top-K notes) within +-1 semitone, as for the output layer
  (``states_preferred_f0``; chance: the stated pitches shuffled across those neurons);
- **pitch selectivity**: the spread (median absolute deviation from the median, in
  semitones; :func:`spread`) of the f0 of the neuron's top-K notes (the K synthetic notes it
  responds to most); chance is the spread of random K-sets of notes.

Written per neuron to ``pitch_tuning.csv`` (and the binned curves to
``pitch_tuning_curves.csv``), per layer to ``pitch_layers.csv`` together with the run's
polysemantic fraction (``analysis/polysemantic_per_layer.csv``) and simulation score
(``scores.csv``: the simulation scorer's Pearson r), each layer at its relative depth (0 = first recorded layer, 1 =
the output).

The comparison of several pitch networks (the parent run of ``configs/pitch.yaml``) is
:mod:`andlib.report.pitch`.

Public surface: :func:`is_pitch_config`, :func:`pitch_runs`, :func:`output_layer_scores`,
:func:`last_layer_report`, :func:`tuning`, :func:`names_attribute`, :func:`layer_table`,
:func:`run_stage`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from andlib.config import Config, rng
from andlib.data.notes import parse_pitches
from andlib.data.pitched import ATTRIBUTES
from andlib.layout import read_table, sort_layers, strategy_runs
from andlib.store import (
    RunDir,
    Stage,
    concept_columns,
    read_clips,
    read_model_info,
    read_scores,
)

log = logging.getLogger(__name__)

STAGE = "pitch"
VERSION = 4
"""Part of the stage key: raise it when a change of the code changes the outputs."""
OUTPUTS = [
    "pitch_last_layer.json",
    "pitch_output_neurons.csv",
    "pitch_tuning.csv",
    "pitch_tuning_curves.csv",
    "pitch_layers.csv",
]
N_BINS = 10
F0_BIN_SEMITONES = 1.0
"""f0 is binned finer than the timbre parameters, a semitone a bin (68 bins of 5 notes on the
default set; at least 4 notes a bin and at least :data:`N_BINS` bins): a pitch network's
neurons can be tuned to a semitone, which a 7-semitone bin averages away."""
"""Quantile bins per attribute for the tuning curves (34 notes a bin on the default set)."""
MIN_ETA2 = 0.1
"""A neuron is driven by an attribute when the bins of that attribute explain at least this
share of its activation variance (adjusted eta²); below it, ``top_attribute`` is ``none``."""
N_SHUFFLES = 200
"""Seeded permutations behind each chance level."""
PRIMARY = "description"
"""The primary method of ``pitch_last_layer.json``: the calibrated summary (else the high)."""

ATTRIBUTE_WORDS: dict[str, re.Pattern[str]] = {
    "f0": re.compile(
        r"\b(?:pitch\w*|[a-z]+-pitched|k?hz|note|octave)\b|\b[A-G]#?-?\d\b",
        re.I,
    ),
    "rolloff": re.compile(
        r"\b(?:bright\w*|dull\w*|harmonics?|sine-like|pure|timbre|mellow|brilliant|"
        r"high-frequency|low-frequency|midrange|treble|bass)\b",
        re.I,
    ),
    "odd_even": re.compile(r"\b(?:hollow|nasal|odd|even|clarinet\w*|square)\b", re.I),
    "inharmonicity": re.compile(
        r"\b(?:inharmonic\w*|metallic|bell\w*|stretched|partials?)\b", re.I
    ),
    "vibrato": re.compile(r"\b(?:vibrato|waver\w*|wobbl\w*|trill\w*|tremolo)\b", re.I),
    "noise": re.compile(r"\b(?:nois\w*|breath\w*|hiss\w*|partly tonal|airy|broadband)\b", re.I),
    "attack": re.compile(
        r"\b(?:sharp|sudden\w*|attack|percussive|impulsive|abrupt\w*|plucked|click\w*)\b", re.I
    ),
    "decay": re.compile(
        r"\b(?:fad\w*|decay\w*|steady|sustained|continuous|burst\w*|falls silent|short|brief|"
        r"ring\w*)\b",
        re.I,
    ),
}
"""Words by which a description names an attribute (the acoustic captioner's vocabulary for
it, plus the usual words an LLM would use). The captioner has no word for the odd/even
balance or for inharmonicity, so descriptions cannot name those from its captions."""


# --------------------------------------------------------------------------------------------
# Which runs are pitch runs
# --------------------------------------------------------------------------------------------


def _is_pitch_model(name: str) -> bool:
    """Whether the model's family has pitch-bin outputs."""
    from andlib.models.families.registry import family_of

    return family_of(name).outputs == "pitch"


def is_pitch_config(cfg: Config) -> bool:
    """Whether the config dissects a pitch network (itself, or in each of its ``strategies``)."""
    if cfg.strategies:
        return any(_is_pitch_model(cfg.strategy_model(s)) for s in cfg.strategies)
    return _is_pitch_model(cfg.model.name)


def pitch_runs(cfg: Config) -> dict[str, RunDir]:
    """``{model: RunDir}`` of a comparison config's per-model runs that exist."""
    return {s: r for s, r in strategy_runs(cfg).items() if _is_pitch_model(cfg.strategy_model(s))}


# --------------------------------------------------------------------------------------------
# Output layer
# --------------------------------------------------------------------------------------------


def stated_pitch(text: Any) -> float:
    """The first pitch a text states, in Hz (NaN when it states none)."""
    found = parse_pitches(str(text or ""))
    return float(found[0]) if found else float("nan")


def _errors(stated_hz: np.ndarray, true_hz: np.ndarray) -> np.ndarray:
    """|stated - true| in semitones; ``inf`` where nothing is stated."""
    with np.errstate(invalid="ignore", divide="ignore"):
        err = np.abs(12.0 * np.log2(stated_hz / true_hz))
    return np.where(np.isfinite(err), err, np.inf)


def _median(err: np.ndarray) -> float | None:
    if not len(err):
        return None
    m = float(np.median(err))
    return m if np.isfinite(m) else None


def output_layer_scores(
    stated_hz: Sequence[float], true_hz: Sequence[float], seed: int = 0, shuffles: int = N_SHUFFLES
) -> dict[str, Any]:
    """Scores of stated against true pitches of the same neurons (in-range ones only).

    Returns ``within_1_semitone`` (share with ``|error| <= 1`` semitone), ``median_error_semitones``
    (``None`` when the median neuron states no pitch), ``chance_within_1_semitone`` (the share
    with ``stated_hz`` permuted across the neurons, mean of ``shuffles`` seeded permutations),
    ``n_neurons``, ``n_stated`` and ``median_error_stated`` (over the neurons that state one).
    """
    stated = np.asarray(stated_hz, dtype=np.float64)
    true = np.asarray(true_hz, dtype=np.float64)
    if stated.shape != true.shape:
        raise ValueError(f"{stated.shape} stated pitches for {true.shape} neurons")
    n = len(true)
    err = _errors(stated, true)
    gen = np.random.default_rng(seed)
    chance = (
        float(
            np.mean(
                [np.mean(_errors(gen.permutation(stated), true) <= 1.0) for _ in range(shuffles)]
            )
        )
        if n
        else float("nan")
    )
    has = np.isfinite(err)
    return {
        "within_1_semitone": float(np.mean(err <= 1.0)) if n else float("nan"),
        "median_error_semitones": _median(err),
        "chance_within_1_semitone": chance,
        "n_neurons": int(n),
        "n_stated": int(has.sum()),
        "median_error_stated": _median(err[has]),
    }


def bin_hz(run: RunDir) -> np.ndarray:
    """The output bins' centre frequencies of the run's model (from ``model.json``)."""
    from andlib.models.pitch import bin_frequencies

    info = read_model_info(run, required=True)
    return np.asarray(bin_frequencies(str(info["model_id"])), dtype=np.float64)


def _clips(run: RunDir) -> pd.DataFrame:
    clips = read_clips(run)
    for col in {"f0_hz", "midi", *ATTRIBUTES.values()} & set(clips.columns):
        clips[col] = pd.to_numeric(clips[col], errors="coerce")
    return clips


def note_range_hz(run: RunDir) -> tuple[float, float]:
    """The lowest and highest f0 of the run's synthetic notes."""
    f0 = _clips(run).get("f0_hz", pd.Series(dtype=float)).dropna()
    if f0.empty:
        raise ValueError(f"{run.path}: clips.csv has no f0_hz: not a pitched probing set")
    return float(f0.min()), float(f0.max())


def _description_methods(rows: pd.DataFrame) -> dict[str, list[str]]:
    """Texts per method for the output neurons: descriptions and concept columns."""
    from andlib.evaluate.scores import description_of

    out = {
        PRIMARY: [description_of(r) for _, r in rows.iterrows()],
        "high_summary": rows.get("high_summary", pd.Series([""] * len(rows))).astype(str).tolist(),
    }
    for col in concept_columns(rows.columns):  # icl_embedding: ICL without an LLM
        texts = rows[col].astype(str).tolist()
        if any(np.isfinite(stated_pitch(t)) for t in texts):
            out[col] = texts
    return out


def last_layer_report(cfg: Config, run: RunDir, layer: str = "classifier") -> dict[str, Any]:
    """``pitch_last_layer.json``'s content; also writes ``pitch_output_neurons.csv``."""
    from andlib.store import read_neurons

    freqs = bin_hz(run)
    lo, hi = note_range_hz(run)
    neurons = read_neurons(run)
    rows = neurons[neurons["layer"].astype(str) == layer].copy()
    rows["neuron"] = rows["neuron"].astype(int)
    rows = rows.sort_values("neuron")
    rows = rows[rows["neuron"] < len(freqs)]
    true = freqs[rows["neuron"].to_numpy()]
    in_range = (true >= lo * 2 ** (-1 / 24)) & (true <= hi * 2 ** (1 / 24))
    methods = _description_methods(rows)
    table = pd.DataFrame(
        {"neuron": rows["neuron"].to_numpy(), "bin_hz": true, "in_range": in_range}
    )
    results: dict[str, Any] = {}
    for method, texts in methods.items():
        stated = np.array([stated_pitch(t) for t in texts])
        table[f"{method}_hz"] = stated
        table[f"{method}_error"] = _errors(stated, true)
        seed = int(rng(cfg, "pitch", "chance", method).integers(2**31))
        results[method] = output_layer_scores(stated[in_range], true[in_range], seed)
    run.write_csv("pitch_output_neurons.csv", table.replace([np.inf], np.nan))
    primary = results[PRIMARY]
    return {
        "within_1_semitone": primary["within_1_semitone"],
        "median_error_semitones": primary["median_error_semitones"],
        "chance_within_1_semitone": primary["chance_within_1_semitone"],
        "n_neurons": primary["n_neurons"],
        "n_stated": primary["n_stated"],
        "model": str(read_model_info(run).get("model_id", "")),
        "layer": layer,
        "method": "calibrated summary (high summary where calibration left nothing)",
        "in_range_hz": [round(lo, 2), round(hi, 2)],
        "n_output_neurons": int(len(rows)),
        "methods": results,
    }


# --------------------------------------------------------------------------------------------
# Tuning curves
# --------------------------------------------------------------------------------------------


def _quantile_bins(values: np.ndarray, n_bins: int) -> np.ndarray:
    """Bin index ``0..b-1`` of each value (quantile edges; ties kept together)."""
    edges = np.unique(np.quantile(values, np.linspace(0, 1, n_bins + 1)[1:-1]))
    idx = np.searchsorted(edges, values, side="right")
    return np.unique(idx, return_inverse=True)[1].reshape(-1)  # no empty bins


def tuning(
    acts: np.ndarray,
    attributes: pd.DataFrame,
    n_bins: int = N_BINS,
    bins: Mapping[str, int] | None = None,
) -> tuple[pd.DataFrame, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Adjusted eta² of every neuron against every attribute, and the binned curves.

    ``acts`` is ``[notes, neurons]``, ``attributes`` has one column per attribute (one row
    per note); each attribute is cut into ``bins[attribute]`` (else ``n_bins``) quantile
    bins. The adjustment (``1 - (1 - eta²)(n - 1)/(n - b)``) puts chance at about 0 for any
    number of bins ``b``, so attributes binned differently compare. Returns ``(eta2, curves)``: ``eta2`` a frame ``[neurons, attributes]`` (NaN for
    a constant neuron) and ``curves[attribute] = (bin centres, mean activation [bins,
    neurons])``.
    """
    x = np.asarray(acts, dtype=np.float64)
    n = x.shape[0]
    centred = x - x.mean(axis=0)
    total = (centred**2).sum(axis=0)
    eta2: dict[str, np.ndarray] = {}
    curves: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name in attributes.columns:
        values = attributes[name].to_numpy(dtype=np.float64)
        idx = _quantile_bins(values, (bins or {}).get(name, n_bins))
        b = int(idx.max()) + 1
        onehot = np.zeros((n, b))
        onehot[np.arange(n), idx] = 1.0
        counts = onehot.sum(axis=0)
        means = (onehot.T @ x) / counts[:, None]
        between = (counts[:, None] * (means - x.mean(axis=0)) ** 2).sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            raw = np.where(total > 0, between / total, np.nan)
        adjusted = 1.0 - (1.0 - raw) * (n - 1) / max(n - b, 1) if b > 1 else raw * 0
        eta2[name] = adjusted
        centres = (onehot.T @ values) / counts
        curves[name] = (centres, means)
    return pd.DataFrame(eta2), curves


def names_attribute(description: str, attribute: str) -> bool:
    """Whether a description names ``attribute`` (:data:`ATTRIBUTE_WORDS`)."""
    pattern = ATTRIBUTE_WORDS.get(attribute)
    return bool(pattern and pattern.search(str(description or "")))


def spread(midi: np.ndarray, axis: int = 0) -> np.ndarray:
    """The spread of a set of pitches in semitones: the median absolute deviation from their
    median (robust: one note an octave off among five moves it little, unlike the std)."""
    centre = np.median(midi, axis=axis, keepdims=True)
    return np.median(np.abs(midi - centre), axis=axis)


def _selectivity(acts: np.ndarray, midi: np.ndarray, k: int) -> np.ndarray:
    """:func:`spread` (semitones) of the f0 of each neuron's top-``k`` notes."""
    k = max(1, min(k, len(midi)))
    top = np.argsort(-acts, axis=0, kind="stable")[:k]
    return spread(midi[top], axis=0)


def chance_selectivity(midi: np.ndarray, k: int, seed: int, draws: int = 2000) -> float:
    """Mean :func:`spread` of ``draws`` random ``k``-sets of notes."""
    gen = np.random.default_rng(seed)
    k = max(1, min(k, len(midi)))
    picks = np.stack([gen.choice(len(midi), k, replace=False) for _ in range(draws)], axis=1)
    return float(np.mean(spread(midi[picks], axis=0)))


def relative_depths(layers: Sequence[str]) -> dict[str, float]:
    """``{layer: position / (n - 1)}`` in depth order (0 = first, 1 = last recorded layer)."""
    ordered = sort_layers(layers)
    span = max(len(ordered) - 1, 1)
    return {layer: i / span for i, layer in enumerate(ordered)}


def tuning_tables(cfg: Config, run: RunDir) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``pitch_tuning.csv`` and ``pitch_tuning_curves.csv`` of every recorded layer."""
    from andlib.evaluate.scores import description_of
    from andlib.store import activation_index, load_activations, read_neurons

    index = activation_index(run)
    clip_ids = [str(c) for c in index["clip_ids"]]
    clips = _clips(run).set_index("clip_id").loc[clip_ids].reset_index()
    notes = clips["f0_hz"].notna().to_numpy()
    if notes.sum() < 2 * N_BINS:
        raise ValueError(f"{run.path}: {int(notes.sum())} synthetic notes; tuning needs more")
    attrs = pd.DataFrame({a: clips.loc[notes, col].to_numpy() for a, col in ATTRIBUTES.items()})
    midi = clips.loc[notes, "midi"].to_numpy(dtype=np.float64)
    span = float(midi.max() - midi.min()) / F0_BIN_SEMITONES
    f0_bins = max(N_BINS, min(int(round(span)), len(midi) // 4))
    neurons = read_neurons(run)
    desc = {(str(r["layer"]), int(r["neuron"])): description_of(r) for _, r in neurons.iterrows()}
    depths = relative_depths(list(index["layers"]))
    rows, curve_rows = [], []
    for layer in index["layers"]:
        acts = np.asarray(load_activations(run, layer, index), dtype=np.float64)[notes]
        eta2, curves = tuning(acts, attrs, bins={"f0": f0_bins})
        best = eta2.fillna(-np.inf).to_numpy()
        top = np.array(list(attrs.columns))[best.argmax(axis=1)]
        top_eta = best.max(axis=1)
        top = np.where(top_eta >= MIN_ETA2, top, "none")
        f0_centres, f0_means = curves["f0"]
        table = pd.DataFrame(
            {
                "layer": layer,
                "depth": depths[layer],
                "neuron": np.arange(acts.shape[1]),
                "top_attribute": top,
                "top_eta2": np.where(np.isfinite(top_eta), top_eta, np.nan),
                "best_f0_hz": 440.0 * 2 ** ((f0_centres[f0_means.argmax(axis=0)] - 69) / 12),
                "selectivity_semitones": _selectivity(acts, midi, cfg.k),
                "preferred_f0_hz": 440.0 * 2 ** ((_preferred(acts, midi, cfg.k) - 69) / 12),
            }
        )
        for a in attrs.columns:
            table[f"eta2_{a}"] = eta2[a].to_numpy()
        table["description"] = [desc.get((layer, int(j)), "") for j in table["neuron"]]
        table["names_top"] = [
            names_attribute(d, a) if a != "none" else False
            for d, a in zip(table["description"], table["top_attribute"], strict=True)
        ]
        table["stated_hz"] = [stated_pitch(d) for d in table["description"]]
        table["states_preferred_f0"] = (
            _errors(table["stated_hz"].to_numpy(), table["preferred_f0_hz"].to_numpy()) <= 1.0
        )
        rows.append(table)
        for a, (centres, means) in curves.items():
            b, m = means.shape
            curve_rows.append(
                pd.DataFrame(
                    {
                        "layer": layer,
                        "neuron": np.tile(np.arange(m), b),
                        "attribute": a,
                        "bin": np.repeat(np.arange(b), m),
                        "centre": np.repeat(centres, m),
                        "mean_activation": means.reshape(-1),
                    }
                )
            )
    return pd.concat(rows, ignore_index=True), pd.concat(curve_rows, ignore_index=True)


def _preferred(acts: np.ndarray, midi: np.ndarray, k: int) -> np.ndarray:
    """The median f0 (MIDI) of each neuron's top-``k`` notes: the pitch it prefers."""
    k = max(1, min(k, len(midi)))
    top = np.argsort(-acts, axis=0, kind="stable")[:k]
    return np.median(midi[top], axis=0)


def _preferred_chance(f0_driven: pd.DataFrame, seed: int, shuffles: int = N_SHUFFLES) -> float:
    """:func:`output_layer_scores`' chance for the f0-driven neurons of a layer: stated
    pitches permuted across them, against each one's preferred f0."""
    if f0_driven.empty:
        return float("nan")
    return output_layer_scores(
        f0_driven["stated_hz"].to_numpy(), f0_driven["preferred_f0_hz"].to_numpy(), seed, shuffles
    )["chance_within_1_semitone"]


def _naming_chance(table: pd.DataFrame, seed: int, shuffles: int = 50) -> float:
    """Share of driven neurons whose top attribute a shuffled description (within the layer)
    names, averaged over seeded permutations (``table``: one layer, index ``0..n-1``)."""
    driven = table[table["top_attribute"] != "none"]
    if driven.empty:
        return float("nan")
    gen = np.random.default_rng(seed)
    descs = table["description"].tolist()
    shares = []
    for _ in range(shuffles):
        perm = gen.permutation(len(descs))
        picked = [descs[perm[i]] for i in driven.index]
        shares.append(
            np.mean(
                [
                    names_attribute(d, a)
                    for d, a in zip(picked, driven["top_attribute"], strict=True)
                ]
            )
        )
    return float(np.mean(shares))


def layer_table(cfg: Config, run: RunDir, tuning_table: pd.DataFrame) -> pd.DataFrame:
    """``pitch_layers.csv``: per layer its relative depth and the pitch measures (see module)."""
    clips = _clips(run)
    midi = clips["midi"].dropna().to_numpy(dtype=np.float64)
    chance_sel = chance_selectivity(
        midi, cfg.k, int(rng(cfg, "pitch", "selectivity").integers(2**31))
    )
    poly = read_table(run, "polysemantic_per_layer.csv")
    poly_of = (
        dict(zip(poly["layer"].astype(str), pd.to_numeric(poly["fraction"]), strict=True))
        if poly is not None
        else {}
    )
    sim_of: dict[str, float] = {}
    sim = read_scores(run, scorer="simulation", metric="pearson", variant="own")
    if sim is not None:
        sim_of = sim.groupby(sim["layer"])["value"].mean().to_dict()
    rows = []
    for layer, t in tuning_table.groupby("layer", sort=False):
        t = t.reset_index(drop=True)
        driven = t[t["top_attribute"] != "none"]
        f0_driven = t[t["top_attribute"] == "f0"]
        shares = t["top_attribute"].value_counts(normalize=True)
        rows.append(
            {
                "layer": layer,
                "depth": float(t["depth"].iloc[0]),
                "n_neurons": len(t),
                "selectivity_semitones": float(t["selectivity_semitones"].median()),
                "selectivity_chance": chance_sel,
                **{f"mean_eta2_{a}": float(t[f"eta2_{a}"].mean()) for a in ATTRIBUTES},
                "top_attribute": str(t["top_attribute"].mode().iloc[0]),
                **{f"share_{a}": float(shares.get(a, 0.0)) for a in [*ATTRIBUTES, "none"]},
                "names_top_attribute": float(driven["names_top"].mean()) if len(driven) else np.nan,
                "names_top_attribute_chance": _naming_chance(
                    t, int(rng(cfg, "pitch", "naming", layer).integers(2**31))
                ),
                "states_preferred_f0": (
                    float(f0_driven["states_preferred_f0"].mean()) if len(f0_driven) else np.nan
                ),
                "states_preferred_f0_chance": _preferred_chance(
                    f0_driven, int(rng(cfg, "pitch", "preferred", layer).integers(2**31))
                ),
                "polysemantic_fraction": poly_of.get(layer, np.nan),
                "simulation_pearson": float(sim_of.get(layer, np.nan)),
            }
        )
    return pd.DataFrame(rows).sort_values("depth").reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# The stage
# --------------------------------------------------------------------------------------------


SPEC = Stage(
    STAGE,
    sections=("k", "seed"),
    upstream=("concepts", "analysis", "evaluate"),
    version={
        "version": VERSION,
        "n_bins": N_BINS,
        "f0_bin": F0_BIN_SEMITONES,
        "min_eta2": MIN_ETA2,
    },
)
"""Keyed by ``k``, ``seed``, the concepts stage key (which covers the recording, captions
and summaries), the analysis and evaluate stage keys (the polysemantic fraction and the
simulation scores it copies) and :data:`VERSION` with the binning constants."""


def run_stage(cfg: Config, run: RunDir) -> dict[str, Any]:
    """Score one pitch network's run against the ground truth: writes :data:`OUTPUTS`. The
    parent run of a comparison config (``strategies``) has no network of its own: nothing to
    score (:mod:`andlib.report.pitch` compares its runs)."""
    if cfg.strategies:
        return {}
    key = SPEC.key(cfg, run)
    logger = run.logger(STAGE)
    if run.is_fresh(STAGE, key):
        logger.info("pitch: up to date")
        return _summary(run)
    report = last_layer_report(cfg, run, cfg.evaluate.classifier_layer)
    run.write_json("pitch_last_layer.json", report)
    logger.info(
        "pitch output layer: %.3f within 1 semitone (chance %.3f) of %d neurons",
        report["within_1_semitone"],
        report["chance_within_1_semitone"],
        report["n_neurons"],
    )
    table, curves = tuning_tables(cfg, run)
    run.write_csv("pitch_tuning.csv", table)
    run.write_csv("pitch_tuning_curves.csv", curves)
    run.write_csv("pitch_layers.csv", layer_table(cfg, run, table))
    run.mark_done(STAGE, key, outputs=OUTPUTS)
    return _summary(run)


def _summary(run: RunDir) -> dict[str, Any]:
    report = run.read_json("pitch_last_layer.json")
    return {k: report[k] for k in ("model", "within_1_semitone", "median_error_semitones",
                                   "chance_within_1_semitone", "n_neurons")}  # fmt: skip
