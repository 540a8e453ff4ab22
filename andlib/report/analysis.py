"""The analysis stage: the paper's analyses of a run's described neurons, as tables and figures.

:func:`run_stage` reads the run directory, computes every analysis whose inputs exist
(:func:`compute_tables`, the pure functions of :mod:`andlib.report.tables`), writes the tables
to ``<run>/analysis/`` and draws them (:func:`make_figures`, through
:mod:`andlib.report.plots`: PNG + PDF in ``figures/``). On the parent run of a ``strategies``
config it compares the strategies' runs instead (:mod:`andlib.report.comparison`). The names
of both modules stay importable from here.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from andlib.config import Config
from andlib.layout import (
    ANALYSIS_DIR,
    analysis_file,
    read_table,
    read_trend,
    sort_layers,
)

# the names of andlib.layout, report.tables and report.comparison, from their old import path
from andlib.layout import layer_depths as layer_depths
from andlib.layout import layer_sort_key as layer_sort_key
from andlib.layout import seed_runs as seed_runs
from andlib.layout import strategy_runs as strategy_runs
from andlib.report.comparison import PER_LAYER_METRICS as PER_LAYER_METRICS
from andlib.report.comparison import SEED_TABLES as SEED_TABLES
from andlib.report.comparison import compare_runs as compare_runs
from andlib.report.comparison import compare_seed_runs as compare_seed_runs
from andlib.report.comparison import comparison_figures as comparison_figures
from andlib.report.comparison import depth_trends as depth_trends
from andlib.report.comparison import run_comparison as run_comparison
from andlib.report.comparison import run_metrics as run_metrics
from andlib.report.comparison import seed_comparison as seed_comparison
from andlib.report.comparison import seed_trends as seed_trends
from andlib.report.seeds import MIN_SEEDS as MIN_SEEDS
from andlib.report.seeds import PER_NEURON_MEASURES as PER_NEURON_MEASURES
from andlib.report.seeds import run_measures as run_measures
from andlib.report.seeds import seed_measures as seed_measures
from andlib.report.seeds import seed_orderings as seed_orderings
from andlib.report.seeds import seed_summary as seed_summary
from andlib.report.seeds import seed_verdict as seed_verdict
from andlib.report.tables import adjective_counts as adjective_counts
from andlib.report.tables import adjective_trend as adjective_trend
from andlib.report.tables import adjectives_per_layer as adjectives_per_layer
from andlib.report.tables import balance_per_layer as balance_per_layer
from andlib.report.tables import caption_sentences as caption_sentences
from andlib.report.tables import chance_purity as chance_purity
from andlib.report.tables import class_purity as class_purity
from andlib.report.tables import cluster_captions as cluster_captions
from andlib.report.tables import cluster_spread as cluster_spread
from andlib.report.tables import description_balance as description_balance
from andlib.report.tables import distinct_items as distinct_items
from andlib.report.tables import empty_table as empty_table
from andlib.report.tables import feature_matrix as feature_matrix
from andlib.report.tables import linear_trend as linear_trend
from andlib.report.tables import polysemantic_per_layer as polysemantic_per_layer
from andlib.report.tables import polysemanticity as polysemanticity
from andlib.report.tables import purity_per_layer as purity_per_layer
from andlib.report.tables import r2_per_layer as r2_per_layer
from andlib.report.tables import ridge_cv_r2 as ridge_cv_r2
from andlib.report.tables import top_clips_table as top_clips_table
from andlib.report.tables import with_depth as with_depth
from andlib.store import (
    ActivationCache,
    RunDir,
    Stage,
    read_captions,
    read_clips,
    read_features,
    read_model_info,
    read_neurons,
    read_topk,
)

log = logging.getLogger(__name__)

STAGE = "analysis"
VERSION = 1
"""Algorithm version of the analysis stage (part of its cache key)."""


# --------------------------------------------------------------------------------------------
# Reading a run
# --------------------------------------------------------------------------------------------


def open_activations(run: RunDir) -> ActivationCache:
    """The run's activations (:class:`andlib.store.ActivationCache`: ``layers``, ``clip_ids``
    and memory-mapped ``[layer]`` arrays), read without torch."""
    run.require("activations/index.json", "record")
    return ActivationCache.load(run)


TABLES = (
    "adjective_counts.csv",
    "adjectives_per_layer.csv",
    "adjective_trend.json",
    "description_balance.csv",
    "acoustic_vs_concepts.csv",
    "caption_clusters.csv",
    "neuron_polysemanticity.csv",
    "polysemantic_per_layer.csv",
    "feature_r2.csv",
    "feature_r2_per_layer.csv",
    "class_purity.csv",
    "class_purity_per_layer.csv",
)
"""What :func:`compute_tables` may write under ``<run>/analysis/``."""
INPUTS = (
    "neurons.csv",
    "clips.csv",
    "captions.csv",
    "features.csv",
    "neuron_topk.csv",
    "activations/index.json",
)


def model_name(run: RunDir, cfg: Config | None = None) -> str:
    """A short name of the dissected model (``model.json``'s ``model_id``, else the config)."""
    info = read_model_info(run)
    if info.get("model_id"):
        return str(info["model_id"])
    return cfg.model.name if cfg is not None else run.path.name


# --------------------------------------------------------------------------------------------
# The stage
# --------------------------------------------------------------------------------------------


SPEC = Stage(
    STAGE,
    sections=("analysis", "k", "seed", "embedder"),
    upstream=("record", "caption", "concepts"),
    inputs=INPUTS,
    version=VERSION,
)
"""The analysis stage's cache key: its settings, :data:`VERSION`, the upstream stage keys
and the inputs' fingerprints (it reads no lexicon or prompt of its own)."""


def run_stage(cfg: Config, run: RunDir) -> dict[str, Any]:
    """Compute every analysis whose inputs exist, write ``analysis/*.csv`` and the figures.

    A config with ``strategies`` whose own run directory holds no ``neurons.csv`` (the parent
    of the per-strategy runs) runs the comparison (:func:`run_comparison`) instead.
    """
    if cfg.strategies and not run.exists("neurons.csv"):
        return run_comparison(cfg, run)
    key = SPEC.key(cfg, run)
    if run.is_fresh(STAGE, key):
        return {"analysis": "cached", **_summary(run)}
    logger = run.logger(STAGE)
    outputs = compute_tables(cfg, run, logger)
    figures = make_figures(cfg, run)
    import matplotlib.pyplot as plt

    for fig in figures.values():
        plt.close(fig)
    pngs = [str(cfg.figures_path / f"{name}.png") for name in figures]
    run.mark_done(STAGE, key, outputs=[*outputs, *pngs])
    return {"analysis_tables": len(outputs), "figures": sorted(figures), **_summary(run)}


def compute_tables(cfg: Config, run: RunDir, logger: logging.Logger | None = None) -> list[str]:
    """Write every analysis table whose inputs exist; return their run-relative paths."""
    logger = logger or log
    a = cfg.analysis
    written: list[str] = []
    for name in TABLES:  # a table whose inputs are gone must not outlive them
        analysis_file(run, name).unlink(missing_ok=True)

    def write(name: str, df: pd.DataFrame) -> None:
        run.write_csv(f"{ANALYSIS_DIR}/{name}", df)
        written.append(f"{ANALYSIS_DIR}/{name}")

    neurons = read_neurons(run) if run.exists("neurons.csv") else None
    if neurons is not None:
        write("adjective_counts.csv", adjective_counts(neurons))
        write("adjectives_per_layer.csv", adjectives_per_layer(neurons))
        run.write_json(
            f"{ANALYSIS_DIR}/adjective_trend.json",
            adjective_trend(neurons, confidence=a.confidence),
        )
        written.append(f"{ANALYSIS_DIR}/adjective_trend.json")
        balance = description_balance(neurons)
        write("description_balance.csv", balance)
        write("acoustic_vs_concepts.csv", balance_per_layer(balance))
    else:
        logger.warning("analysis: no neurons.csv; adjective and balance analyses skipped")

    tops = None  # each neuron's top-K clips, shared by polysemanticity and class purity
    if neurons is not None or run.exists("neuron_topk.csv"):
        topk = read_topk(run) if run.exists("neuron_topk.csv") else None
        tops = top_clips_table(neurons, topk, k=cfg.k)

    if run.exists("captions.csv") and tops is not None:
        captions = read_captions(run)
        captions = captions[captions["caption"].astype(str).str.strip() != ""]
        ids = captions["clip_id"].astype(str).tolist()
        texts = captions["caption"].astype(str).tolist()
        if a.cluster_unit == "sentence":  # AND: every caption sentence is one item
            ids, texts = caption_sentences(ids, texts)
        emb = caption_embeddings(cfg, run, texts)
        clusters = cluster_captions(ids, emb, a.n_clusters, cfg.seed, a.kmeans_n_init)
        write("caption_clusters.csv", clusters.reset_index())
        poly = polysemanticity(tops, clusters, a.polysemantic_threshold)
        write("neuron_polysemanticity.csv", poly)
        write("polysemantic_per_layer.csv", polysemantic_per_layer(poly))
    else:
        logger.warning("analysis: no captions/top clips; polysemanticity skipped")

    clips = read_clips(run) if run.exists("clips.csv") else None
    if tops is not None and clips is not None and "category" in clips:
        cats = clips["category"].fillna("").astype(str)
        purity = class_purity(tops, dict(zip(clips["clip_id"], cats, strict=True)))
        write("class_purity.csv", purity)
        chance = chance_purity(cats, cfg.k, cfg.seed)
        write("class_purity_per_layer.csv", purity_per_layer(purity, chance))
    else:
        logger.warning("analysis: no top clips or clip categories; class purity skipped")

    if run.exists("features.csv") and run.exists("activations/index.json"):
        acts = open_activations(run)
        X, cols = feature_matrix(read_features(run), acts.clip_ids)
        rows = ~np.isnan(X).all(1)
        frames = []
        for layer in sort_layers(acts.layers):
            Y = np.asarray(acts[layer], dtype=np.float64)[rows]
            r2 = ridge_cv_r2(X[rows], Y, a.ridge_alpha, a.cv_folds, cfg.seed)
            frames.append(pd.DataFrame({"layer": layer, "neuron": np.arange(len(r2)), "r2": r2}))
        r2_all = pd.concat(frames, ignore_index=True)
        write("feature_r2.csv", r2_all)
        write("feature_r2_per_layer.csv", r2_per_layer(r2_all))
        logger.info("analysis: ridge from %d acoustic features (%s)", len(cols), ", ".join(cols))
    else:
        logger.warning("analysis: no features.csv or activations; acoustic-feature R² skipped")
    return written


def caption_embeddings(cfg: Config, run: RunDir, texts: list[str]) -> np.ndarray:
    """Sentence embeddings of ``texts`` (the captions), from the embedder's disk cache
    (:class:`andlib.text.embeddings.EmbeddingCache`, shared with the concepts and evaluate stages),
    so changing only an analysis setting does not embed every caption again."""
    from andlib.text.embeddings import get_embedder

    analysis_file(run, "caption_embeddings.npz").unlink(missing_ok=True)  # the older cache
    return np.asarray(get_embedder(cfg).encode(texts), dtype=np.float32)


def _summary(run: RunDir) -> dict[str, Any]:
    out: dict[str, Any] = {}
    t = read_trend(run)
    if t is not None:
        out["adjective_slope"] = round(t["slope"], 4) if np.isfinite(t["slope"]) else None
    poly = read_table(run, "polysemantic_per_layer.csv")
    if poly is not None and len(poly):
        out["polysemantic_fraction"] = round(
            float(poly["n_polysemantic"].sum() / poly["n_neurons"].sum()), 4
        )
    r2 = read_table(run, "feature_r2_per_layer.csv")
    if r2 is not None and len(r2):
        out["feature_r2_median"] = round(float(r2["median_r2"].median()), 4)
    return out


def _name(prefix: str, name: str) -> str:
    return f"{prefix}_{name}" if prefix else name


def make_figures(cfg: Config, run: RunDir, prefix: str = "") -> dict[str, Any]:
    """Draw (and save as PNG + PDF) every figure whose table exists; ``{name: Figure}``.

    ``prefix`` (e.g. a model or strategy name) is prepended to each figure's file name.
    """
    from andlib.report import plots

    model = model_name(run, cfg)
    figs: dict[str, Any] = {}
    counts = read_table(run, "adjective_counts.csv")
    if counts is not None:
        figs["adjective_distribution"] = plots.plot_adjective_distribution(
            counts, top_n=cfg.analysis.top_n_adjectives, title=model
        )
    per_layer = read_table(run, "adjectives_per_layer.csv")
    if per_layer is not None:
        figs["adjectives_per_layer"] = plots.plot_adjectives_per_layer(
            per_layer, read_trend(run), model
        )
    poly = read_table(run, "polysemantic_per_layer.csv")
    if poly is not None:
        spread = read_table(run, "neuron_polysemanticity.csv")
        figs["polysemantic_neurons"] = plots.plot_polysemantic_neurons(
            poly, spread, cfg.analysis.polysemantic_threshold, model
        )
    balance = read_table(run, "acoustic_vs_concepts.csv")
    if balance is not None:
        figs["acoustic_vs_concepts"] = plots.plot_acoustic_vs_concepts(balance, model)
    r2 = read_table(run, "feature_r2.csv")
    if r2 is not None:
        figs["acoustic_feature_r2"] = plots.plot_acoustic_feature_r2(with_depth(r2), model)
    purity = read_table(run, "class_purity_per_layer.csv")
    if purity is not None:
        figs["class_purity"] = plots.plot_class_purity(purity, model)
    for name, fig in figs.items():
        plots.save_figure(fig, _name(prefix, name), cfg)
    return figs
