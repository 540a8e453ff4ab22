"""The paper's analyses of described neurons, as tables and figures.

Pure functions take DataFrames / arrays and return DataFrames; :func:`run_stage` reads the
run directory, writes the tables to ``<run>/analysis/`` and :func:`make_figures` draws them
through :mod:`andlib.report.plots` (PNG + PDF in ``figures/``).

- **Acoustic adjectives** (paper Fig. 3): :func:`adjective_counts` counts the calibrated
  acoustic adjectives over all described neurons (each neuron counts an adjective once).
- **Adjectives per layer** (paper Fig. 5): :func:`adjectives_per_layer` gives the mean number
  of distinct adjectives per neuron for each layer in depth order (:func:`sort_layers`);
  :func:`linear_trend` fits ``n_adjectives ~ depth`` over *neurons* (x = the layer's position
  in depth order, 0 = shallowest) and gives the slope with a t-distribution confidence interval.
- **Polysemantic neurons** (paper Fig. 6): every clip's caption is embedded and the clips are
  clustered by those embeddings with KMeans (:func:`cluster_captions`). A caption (one or two
  sentences about one clip) is one item, so each clip belongs to exactly one cluster; the
  spread of a neuron is the number of distinct clusters among its top-K clips
  (:func:`cluster_spread`), and a neuron whose spread reaches ``polysemantic_threshold`` is
  polysemantic (:func:`polysemantic_per_layer`). ``analysis.cluster_unit: sentence`` clusters
  caption sentences instead, as AND's code does (:func:`caption_sentences`).
- **Acoustic features vs concepts** (paper finding i): :func:`description_balance` counts
  acoustic adjectives against open-set concept nouns per neuron (``acoustic`` / ``concept`` /
  ``tie``), :func:`balance_per_layer` gives the three shares per layer; :func:`ridge_cv_r2`
  measures how well the captioner's numeric acoustic measurements alone predict each neuron's
  activation (cross-validated ridge R², all neurons of a layer fitted at once).
- **Class purity** (how narrow a neuron is, by the known labels): :func:`class_purity` is the
  share of a neuron's top-K clips that belong to their most common ESC-50 class;
  :func:`purity_per_layer` averages it per layer beside the same share for random K-sets of
  clips (chance). It uses labels the descriptions never see, so it checks finding (ii)
  independently of the captioner.
- **Training strategies** (issue 8): :func:`compare_runs` gathers per-layer metrics of several
  runs (one per model) into one tidy table for :func:`andlib.report.plots.plot_strategies_comparison`.
  Over training seeds (issue 18, ``seeds``): :func:`seed_measures` gives each run's scalar
  measures with their within-run intervals, :func:`seed_summary` the mean and spread between
  seeds per model and measure, :func:`seed_orderings` which orderings hold in every seed, and
  :func:`seed_verdict` says so in words (:func:`run_comparison` writes them all).
"""

from __future__ import annotations

import json
import logging
import re
import warnings
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from andlib.config import Config
from andlib.report.measures import _measure_order, measure_label
from andlib.store import ActivationCache, RunDir, Stage, atomic_write_text, read_neurons

log = logging.getLogger(__name__)

ANALYSIS_DIR = "analysis"
STAGE = "analysis"
VERSION = 1
"""Algorithm version of the analysis stage (part of its cache key)."""
KIND_ORDER = {"attn": 0, "attention": 0, "mlp": 1, "intermediate": 1, "out": 2, "output": 2}
_INT = re.compile(r"(?:^|[._/])(\d+)(?=$|[._/])")


# --------------------------------------------------------------------------------------------
# Layers and list-valued cells
# --------------------------------------------------------------------------------------------


def layer_sort_key(layer: str) -> tuple[int, int, int, str]:
    """Depth ordering of layer keys: ``layers.<i>.<kind>`` by block then kind, classifier last.

    Within a block the order is ``attn < mlp < out``; other keys with a block number (module
    paths such as ``encoder.layer.3.intermediate``) sort by that number; keys without one come
    after the numbered layers, and ``classifier`` (or any key ending in ``classifier``) last.
    """
    name = str(layer)
    if name.split(".")[-1] == "classifier" or name == "classifier":
        return (2, 0, 0, name)
    m = _INT.search(name)
    if m is None:
        return (1, 0, 0, name)
    rest = name[m.end() :].strip("._/").split(".")[0]
    return (0, int(m.group(1)), KIND_ORDER.get(rest, 3), name)


def sort_layers(layers: Iterable[str]) -> list[str]:
    """Distinct layer keys in depth order (see :func:`layer_sort_key`)."""
    return sorted({str(x) for x in layers}, key=layer_sort_key)


def layer_depths(layers: Iterable[str]) -> dict[str, int]:
    """``{layer: position in depth order}`` (0 = shallowest)."""
    return {layer: i for i, layer in enumerate(sort_layers(layers))}


def split_items(value: Any, sep: str = ";") -> list[str]:
    """A ``;``-joined cell as a list of distinct, lower-cased, stripped items (order kept)."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return []
    items = (s.strip().lower() for s in str(value).split(sep))
    return list(dict.fromkeys(s for s in items if s))


def split_clips(value: Any) -> list[str]:
    """A space-separated clip-id cell as a list."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return []
    return str(value).split()


def _with_depth(df: pd.DataFrame, layers: Iterable[str] | None = None) -> pd.DataFrame:
    """Add a ``depth`` column and sort rows by it (``layers`` fixes the ordering's universe)."""
    depths = layer_depths(layers if layers is not None else df["layer"])
    out = df.copy()
    out.insert(1, "depth", out["layer"].astype(str).map(depths).astype(int))
    return out.sort_values(["depth", *[c for c in ("neuron",) if c in out]]).reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# Acoustic adjectives (Fig. 3, Fig. 5)
# --------------------------------------------------------------------------------------------


def adjective_counts(neurons: pd.DataFrame, column: str = "adjectives") -> pd.DataFrame:
    """How many described neurons use each acoustic adjective.

    Returns ``adjective, count, fraction`` (fraction of all neurons in ``neurons``), most
    frequent first, ties alphabetical.
    """
    counter: Counter[str] = Counter()
    for cell in neurons[column]:
        counter.update(split_items(cell))
    df = pd.DataFrame(sorted(counter.items(), key=lambda kv: (-kv[1], kv[0])))
    df = df.set_axis(["adjective", "count"], axis=1) if len(df) else _empty("adjective", "count")
    df["count"] = df["count"].astype(int)
    df["fraction"] = df["count"] / max(len(neurons), 1)
    return df


def adjectives_per_layer(neurons: pd.DataFrame, column: str = "adjectives") -> pd.DataFrame:
    """Mean number of distinct acoustic adjectives per neuron, for each layer in depth order.

    Returns ``layer, depth, n_neurons, mean_adjectives, std, sem``.
    """
    n = neurons[column].map(lambda c: len(split_items(c)))
    df = pd.DataFrame({"layer": neurons["layer"].astype(str), "n": n})
    g = df.groupby("layer")["n"]
    out = pd.DataFrame(
        {
            "n_neurons": g.size(),
            "mean_adjectives": g.mean(),
            "std": g.std(ddof=1),
            "sem": g.sem(ddof=1),
        }
    ).reset_index()
    return _with_depth(out)


def linear_trend(x: Iterable[float], y: Iterable[float], confidence: float = 0.95) -> dict:
    """Least-squares line ``y = slope * x + intercept`` with a confidence interval on the slope.

    The interval is ``slope ± t_{(1+confidence)/2, n-2} * stderr`` (``scipy.stats.linregress``).
    Also returned: ``r``, ``p_value``, ``stderr``, ``n``, and ``resid_std``, ``x_mean``,
    ``sxx`` for drawing the confidence band of the fitted line. Values that cannot be computed
    (fewer than three points for the interval, constant ``x``) are NaN.
    """
    from scipy import stats

    xs = np.asarray(list(x), dtype=float)
    ys = np.asarray(list(y), dtype=float)
    keep = np.isfinite(xs) & np.isfinite(ys)
    xs, ys = xs[keep], ys[keep]
    n = len(xs)
    nan = float("nan")
    out = {
        "slope": nan,
        "intercept": nan,
        "ci_low": nan,
        "ci_high": nan,
        "r": nan,
        "p_value": nan,
        "stderr": nan,
        "n": int(n),
        "confidence": float(confidence),
        "resid_std": nan,
        "x_mean": float(xs.mean()) if n else nan,
        "sxx": float(((xs - xs.mean()) ** 2).sum()) if n else nan,
    }
    if n < 2 or np.ptp(xs) == 0:
        return out
    res = stats.linregress(xs, ys)
    out.update(
        slope=float(res.slope),
        intercept=float(res.intercept),
        r=float(res.rvalue),
        p_value=float(res.pvalue),
        stderr=float(res.stderr),
    )
    if n > 2:
        t = float(stats.t.ppf((1 + confidence) / 2, n - 2))
        out["ci_low"] = out["slope"] - t * out["stderr"]
        out["ci_high"] = out["slope"] + t * out["stderr"]
        resid = ys - (res.slope * xs + res.intercept)
        out["resid_std"] = float(np.sqrt((resid**2).sum() / (n - 2)))
    return out


def adjective_trend(
    neurons: pd.DataFrame, column: str = "adjectives", confidence: float = 0.95
) -> dict:
    """Regression of each neuron's adjective count on its layer's depth position (Fig. 5)."""
    depths = layer_depths(neurons["layer"])
    x = neurons["layer"].astype(str).map(depths)
    y = neurons[column].map(lambda c: len(split_items(c)))
    return {"x": "layer depth position", "y": "acoustic adjectives per neuron"} | linear_trend(
        x, y, confidence
    )


# --------------------------------------------------------------------------------------------
# Polysemantic neurons (Fig. 6)
# --------------------------------------------------------------------------------------------


def cluster_captions(
    clip_ids: Iterable[str],
    embeddings: np.ndarray,
    n_clusters: int = 11,
    seed: int = 0,
    n_init: int = 10,
) -> pd.Series:
    """KMeans over caption embeddings: ``Series`` clip id -> cluster (0..k-1).

    ``k`` is lowered to the number of distinct embeddings when there are fewer (duplicate
    captions), so KMeans never has to invent empty clusters.
    """
    from sklearn.cluster import KMeans

    ids = list(clip_ids)
    emb = np.asarray(embeddings, dtype=np.float64)
    if len(ids) != len(emb):
        raise ValueError(f"{len(ids)} clip ids but {len(emb)} embeddings")
    if not ids:
        return pd.Series([], index=pd.Index([], name="clip_id"), name="cluster", dtype=int)
    k = int(min(n_clusters, len(np.unique(emb.round(6), axis=0))))
    km = KMeans(n_clusters=max(k, 1), n_init=n_init, random_state=seed).fit(emb)
    return pd.Series(km.labels_.astype(int), index=pd.Index(ids, name="clip_id"), name="cluster")


def top_clips_table(
    neurons: pd.DataFrame | None = None, topk: pd.DataFrame | None = None, k: int | None = None
) -> pd.DataFrame:
    """``layer, neuron, clips`` (list of the top-``k`` clip ids, most activating first).

    From ``neuron_topk.csv`` rows (``end == "high"``) when given, else from the
    ``top_clips`` column of ``neurons.csv``/``summaries.csv``.
    """
    if topk is not None and len(topk):
        high = topk[topk["end"].astype(str) == "high"].sort_values(["layer", "neuron", "rank"])
        if k is not None:
            high = high[high["rank"].astype(int) < k]
        grouped = high.groupby(["layer", "neuron"], sort=False)["clip_id"].agg(
            lambda s: [str(c) for c in s]
        )
        return grouped.rename("clips").reset_index()
    if neurons is None:
        raise ValueError("need neuron_topk rows or a neurons table with top_clips")
    clips = neurons["top_clips"].map(split_clips)
    if k is not None:
        clips = clips.map(lambda c: c[:k])
    return pd.DataFrame({"layer": neurons["layer"], "neuron": neurons["neuron"], "clips": clips})


def caption_sentences(
    clip_ids: Iterable[str], captions: Iterable[str]
) -> tuple[list[str], list[str]]:
    """Every sentence of every caption as its own item: ``(clip id per sentence, sentences)``
    (AND's unit of clustering, ``analysis.cluster_unit: sentence``). A caption without a
    split point is one sentence; empty captions give none."""
    from andlib.describe.concepts import split_sentences

    ids: list[str] = []
    texts: list[str] = []
    for cid, caption in zip(clip_ids, captions, strict=True):
        for sentence in split_sentences(str(caption)):
            ids.append(str(cid))
            texts.append(sentence)
    return ids, texts


def cluster_spread(top_clips: pd.DataFrame, clusters: Mapping[str, int] | pd.Series) -> pd.Series:
    """Number of distinct caption clusters among each neuron's top clips (clips without a
    cluster, e.g. uncaptioned, are ignored). Aligned with ``top_clips`` rows.

    A ``Series`` may name a clip several times (one row per caption sentence, see
    :func:`caption_sentences`): the clip then counts with all its sentences' clusters.
    """
    lookup: dict[Any, set[int]] = {}
    for clip, cluster in clusters.items():
        lookup.setdefault(clip, set()).add(int(cluster))
    return (
        top_clips["clips"]
        .map(lambda clips: len(set().union(*(lookup.get(c, set()) for c in clips))))
        .astype(int)
    )


def polysemanticity(
    top_clips: pd.DataFrame, clusters: Mapping[str, int] | pd.Series, threshold: int
) -> pd.DataFrame:
    """``layer, neuron, n_clusters, polysemantic`` (spread ≥ ``threshold``)."""
    spread = cluster_spread(top_clips, clusters)
    return pd.DataFrame(
        {
            "layer": top_clips["layer"].astype(str).to_numpy(),
            "neuron": top_clips["neuron"].astype(int).to_numpy(),
            "n_clusters": spread.to_numpy(),
            "polysemantic": (spread >= threshold).to_numpy(),
        }
    )


def class_purity(top_clips: pd.DataFrame, category: Mapping[str, str]) -> pd.DataFrame:
    """``layer, neuron, purity, top_class``: the share of each neuron's top clips (those with a
    known category) in their most common category; NaN when none has a category."""
    purity, top_class = [], []
    for clips in top_clips["clips"]:
        cats = Counter(category[str(c)] for c in clips if category.get(str(c)))
        if cats:
            name, count = cats.most_common(1)[0]
            purity.append(count / sum(cats.values()))
            top_class.append(name)
        else:
            purity.append(np.nan)
            top_class.append("")
    return pd.DataFrame(
        {
            "layer": top_clips["layer"].astype(str).to_numpy(),
            "neuron": top_clips["neuron"].astype(int).to_numpy(),
            "purity": purity,
            "top_class": top_class,
        }
    )


def chance_purity(categories: Iterable[str], k: int, seed: int, draws: int = 2000) -> float:
    """Mean :func:`class_purity` of ``draws`` random ``k``-sets of the clips (seeded)."""
    cats = np.asarray([c for c in categories if c])
    if len(cats) == 0 or k < 1:
        return float("nan")
    gen = np.random.default_rng(seed)
    k = min(k, len(cats))
    total = 0.0
    for _ in range(draws):
        picked = cats[gen.choice(len(cats), size=k, replace=False)]
        total += Counter(picked.tolist()).most_common(1)[0][1] / k
    return total / draws


def purity_per_layer(purity: pd.DataFrame, chance: float) -> pd.DataFrame:
    """``layer, depth, n_neurons, mean_purity, share_pure, chance`` per layer (``share_pure``:
    neurons whose top clips all share one class)."""
    g = purity.dropna(subset=["purity"]).groupby("layer")["purity"]
    out = pd.DataFrame(
        {
            "n_neurons": g.size(),
            "mean_purity": g.mean(),
            "share_pure": g.apply(lambda p: (p >= 1).mean()),
        }
    ).reset_index()
    out["chance"] = chance
    return _with_depth(out)


def polysemantic_per_layer(poly: pd.DataFrame) -> pd.DataFrame:
    """``layer, depth, n_neurons, n_polysemantic, fraction, mean_clusters`` per layer."""
    g = poly.groupby("layer")
    out = pd.DataFrame(
        {
            "n_neurons": g.size(),
            "n_polysemantic": g["polysemantic"].sum().astype(int),
            "mean_clusters": g["n_clusters"].mean(),
        }
    ).reset_index()
    out.insert(3, "fraction", out["n_polysemantic"] / out["n_neurons"])
    return _with_depth(out)


# --------------------------------------------------------------------------------------------
# Acoustic features vs high-level concepts (finding i)
# --------------------------------------------------------------------------------------------


def description_balance(
    neurons: pd.DataFrame, adjectives: str = "adjectives", concepts: str = "open_concepts"
) -> pd.DataFrame:
    """Per neuron: ``n_adjectives``, ``n_concepts`` and which dominates its description.

    ``dominant`` is ``acoustic`` (more adjectives than concept nouns), ``concept`` (more nouns)
    or ``tie`` (equal, including neither).
    """
    n_adj = neurons[adjectives].map(lambda c: len(split_items(c))).astype(int)
    n_con = neurons[concepts].map(lambda c: len(split_items(c))).astype(int)
    dominant = np.where(n_adj > n_con, "acoustic", np.where(n_con > n_adj, "concept", "tie"))
    return pd.DataFrame(
        {
            "layer": neurons["layer"].astype(str).to_numpy(),
            "neuron": neurons["neuron"].astype(int).to_numpy(),
            "n_adjectives": n_adj.to_numpy(),
            "n_concepts": n_con.to_numpy(),
            "dominant": dominant,
        }
    )


def balance_per_layer(balance: pd.DataFrame) -> pd.DataFrame:
    """``layer, depth, n_neurons, acoustic, concept, tie`` (shares summing to 1) per layer."""
    shares = pd.crosstab(balance["layer"], balance["dominant"], normalize="index")
    shares = shares.reindex(columns=["acoustic", "concept", "tie"], fill_value=0.0)
    shares.columns.name = None
    out = shares.reset_index()
    out.insert(1, "n_neurons", out["layer"].map(balance["layer"].value_counts()).astype(int))
    return _with_depth(out)


def feature_matrix(features: pd.DataFrame, clip_ids: Iterable[str]) -> tuple[np.ndarray, list[str]]:
    """The numeric measurements of ``features.csv`` as ``[n_clips, n_features]`` float64 rows in
    ``clip_ids`` order (missing clips / values are NaN); returns the matrix and column names.

    Every numeric (or boolean) column except ``clip_id`` and metadata (``label``, ``fold``,
    ``target``) is a feature.
    """
    meta = {"clip_id", "label", "fold", "target"}
    df = features.set_index(features["clip_id"].astype(str))
    numeric = {}
    for col in df.columns:
        if col in meta:
            continue
        s = df[col]
        if pd.api.types.is_bool_dtype(s) or pd.api.types.is_numeric_dtype(s):
            numeric[col] = s.astype(float)
            continue
        text = s.astype(str).str.strip()
        missing = text.str.lower().isin(["", "nan", "none", "null"])
        values = pd.to_numeric(text.where(~missing), errors="coerce")
        if values.notna().any() and values.notna().sum() == (~missing).sum():
            numeric[col] = values  # a numeric column read as text (empty cells)
    mat = pd.DataFrame(numeric, index=df.index).reindex([str(c) for c in clip_ids])
    return mat.to_numpy(dtype=np.float64), list(numeric)


def ridge_cv_r2(
    X: np.ndarray, Y: np.ndarray, alpha: float = 1.0, folds: int = 5, seed: int = 0
) -> np.ndarray:
    """Cross-validated R² of a ridge fit from features ``X`` to each column of ``Y``.

    ``X``: ``[n, f]`` (NaNs allowed: imputed with the training fold's median), ``Y``:
    ``[n, n_neurons]``. Per ``KFold`` split (shuffled, seeded) the features are standardized
    on the training rows and one multi-output ``Ridge`` fits all neurons at once; R² is
    computed per neuron from the pooled out-of-fold predictions (``1 - SS_res / SS_tot``, so
    it is ≤ 0 when the features predict nothing). Constant neurons get NaN.
    """
    from sklearn.linear_model import Ridge
    from sklearn.model_selection import KFold

    X = np.asarray(X, dtype=np.float64)
    Y = np.asarray(Y, dtype=np.float64)
    if Y.ndim == 1:
        Y = Y[:, None]
    n = len(X)
    if n != len(Y):
        raise ValueError(f"{n} feature rows but {len(Y)} activation rows")
    if n < 3 or X.shape[1] == 0:
        return np.full(Y.shape[1], np.nan)
    pred = np.empty_like(Y)
    for train, test in KFold(min(folds, n), shuffle=True, random_state=seed).split(X):
        Xtr, Xte = X[train], X[test]
        with warnings.catch_warnings():  # an all-NaN column has no median: use 0
            warnings.simplefilter("ignore", RuntimeWarning)
            med = np.nanmedian(Xtr, axis=0)
        med = np.where(np.isfinite(med), med, 0.0)
        Xtr = np.where(np.isnan(Xtr), med, Xtr)
        Xte = np.where(np.isnan(Xte), med, Xte)
        mu, sd = Xtr.mean(0), Xtr.std(0)
        sd[sd == 0] = 1.0
        model = Ridge(alpha=alpha).fit((Xtr - mu) / sd, Y[train])
        pred[test] = model.predict((Xte - mu) / sd).reshape(len(test), -1)
    ss_res = ((Y - pred) ** 2).sum(0)
    ss_tot = ((Y - Y.mean(0)) ** 2).sum(0)
    varying = ss_tot > 1e-10 * (Y**2).sum(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(varying, 1.0 - ss_res / ss_tot, np.nan)


def r2_per_layer(r2: pd.DataFrame) -> pd.DataFrame:
    """``layer, depth, n_neurons, mean_r2, median_r2, q25, q75`` from ``layer, neuron, r2``."""
    g = r2.dropna(subset=["r2"]).groupby("layer")["r2"]
    out = pd.DataFrame(
        {
            "n_neurons": g.size(),
            "mean_r2": g.mean(),
            "median_r2": g.median(),
            "q25": g.quantile(0.25),
            "q75": g.quantile(0.75),
        }
    ).reset_index()
    return _with_depth(out)


# --------------------------------------------------------------------------------------------
# Reading a run
# --------------------------------------------------------------------------------------------


def open_activations(run: RunDir) -> ActivationCache:
    """The run's activations (:class:`andlib.store.ActivationCache`: ``layers``, ``clip_ids``
    and memory-mapped ``[layer]`` arrays), read without torch."""
    run.require("activations/index.json", "record")
    return ActivationCache.load(run)


def _analysis_file(run: RunDir, name: str) -> Path:
    return run.path / ANALYSIS_DIR / name


def read_table(run: RunDir, name: str) -> pd.DataFrame | None:
    """``<run>/analysis/<name>`` as a DataFrame, or ``None`` when that analysis was not run."""
    p = _analysis_file(run, name)
    return pd.read_csv(p, keep_default_na=True) if p.exists() else None


def read_trend(run: RunDir) -> dict[str, Any] | None:
    """The adjectives-per-layer regression (``analysis/adjective_trend.json``), if computed."""
    p = _analysis_file(run, "adjective_trend.json")
    return json.loads(p.read_text()) if p.exists() else None


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
    if run.exists("model.json"):
        info = run.read_json("model.json")
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
        _analysis_file(run, name).unlink(missing_ok=True)

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
        topk = run.read_csv("neuron_topk.csv") if run.exists("neuron_topk.csv") else None
        tops = top_clips_table(neurons, topk, k=cfg.k)

    if run.exists("captions.csv") and tops is not None:
        captions = run.read_csv("captions.csv")
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

    clips = run.read_csv("clips.csv", dtype={"clip_id": str}) if run.exists("clips.csv") else None
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
        X, cols = feature_matrix(pd.read_csv(run / "features.csv"), acts.clip_ids)
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

    _analysis_file(run, "caption_embeddings.npz").unlink(missing_ok=True)  # the older cache
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
        figs["acoustic_feature_r2"] = plots.plot_acoustic_feature_r2(_with_depth(r2), model)
    purity = read_table(run, "class_purity_per_layer.csv")
    if purity is not None:
        figs["class_purity"] = plots.plot_class_purity(purity, model)
    for name, fig in figs.items():
        plots.save_figure(fig, _name(prefix, name), cfg)
    return figs


# --------------------------------------------------------------------------------------------
# Supervised vs self-supervised (issue 8)
# --------------------------------------------------------------------------------------------


def seed_runs(cfg: Config) -> dict[str, dict[int | None, RunDir]]:
    """``{strategy: {seed: RunDir}}``: the run directories of ``cfg.strategies`` that exist.

    With ``cfg.seeds``, a trained strategy has one run per training seed
    (``<run_dir>/<strategy>/seed<k>``) and a strategy mapped to a checkpoint one run under the
    seed ``None`` (``<run_dir>/<strategy>``); without, every strategy has that one run.
    Missing runs (and strategies with none) are left out.
    """
    from andlib.models.families.registry import family_of
    from andlib.store import strategy_run_path

    out: dict[str, dict[int | None, RunDir]] = {}
    for s in cfg.strategies:
        seeds: list[int | None] = [None]
        if cfg.seeds and family_of(cfg.strategy_model(s)).trains:
            seeds = list(cfg.seeds)
        paths = {k: strategy_run_path(cfg, s, k) for k in seeds}
        found = {k: RunDir(p) for k, p in paths.items() if p.is_dir()}
        if found:
            out[s] = found
    return out


def strategy_runs(cfg: Config) -> dict[str, RunDir]:
    """``{strategy: RunDir}`` for each of ``cfg.strategies`` whose run directory
    (``cfg.run_path / strategy``) exists; missing ones are left out. With ``cfg.seeds``: each
    strategy's first seed found (:func:`seed_runs` has them all)."""
    return {s: next(iter(by_seed.values())) for s, by_seed in seed_runs(cfg).items()}


def run_metrics(run: RunDir) -> pd.DataFrame:
    """One run's comparable metrics as ``metric, layer, value`` rows.

    Per layer: ``polysemantic_fraction`` and ``feature_r2_median`` (from ``analysis/``),
    ``mean_adjectives`` and ``acoustic_share`` (from ``analysis/`` or ``neurons.csv``),
    ``simulation_pearson`` (mean Pearson r of the ``description`` method in
    ``simulation_scores.csv``), ``class_purity`` (and ``class_purity_chance``). Per
    captioner/method (as ``layer``): ``last_layer_top1`` and ``last_layer_top5`` from
    ``last_layer.json``. ``heldout_accuracy`` (layer ``model``): the model's own held-out
    classification accuracy from ``model.json``. Missing inputs add no rows.
    """
    rows: list[pd.DataFrame] = []

    def add(metric: str, layers: pd.Series, values: pd.Series) -> None:
        rows.append(
            pd.DataFrame(
                {
                    "metric": metric,
                    "layer": layers.astype(str).to_numpy(),
                    "value": values.to_numpy(dtype=float),
                }
            )
        )

    poly = read_table(run, "polysemantic_per_layer.csv")
    if poly is not None:
        add("polysemantic_fraction", poly["layer"], poly["fraction"])
    adj = read_table(run, "adjectives_per_layer.csv")
    bal = read_table(run, "acoustic_vs_concepts.csv")
    if (adj is None or bal is None) and run.exists("neurons.csv"):
        neurons = read_neurons(run)
        adj = adj if adj is not None else adjectives_per_layer(neurons)
        bal = bal if bal is not None else balance_per_layer(description_balance(neurons))
    if adj is not None:
        add("mean_adjectives", adj["layer"], adj["mean_adjectives"])
    if bal is not None:
        add("acoustic_share", bal["layer"], bal["acoustic"])
    r2 = read_table(run, "feature_r2_per_layer.csv")
    if r2 is not None:
        add("feature_r2_median", r2["layer"], r2["median_r2"])
    purity = read_table(run, "class_purity_per_layer.csv")
    if purity is not None:
        add("class_purity", purity["layer"], purity["mean_purity"])
        add("class_purity_chance", purity["layer"], purity["chance"])
    if run.exists("model.json"):
        held = run.read_json("model.json").get("heldout_accuracy")
        if held is not None:
            add("heldout_accuracy", pd.Series(["model"]), pd.Series([held]))
    if run.exists("simulation_scores.csv"):
        sim = run.read_csv("simulation_scores.csv")
        sim = sim[sim["method"].astype(str) == "description"]
        sim = sim.assign(pearson=pd.to_numeric(sim["pearson"], errors="coerce"))
        mean = sim.groupby(sim["layer"].astype(str))["pearson"].mean()
        add("simulation_pearson", mean.index.to_series(), mean)
    if run.exists("last_layer.json"):
        for captioner, methods in run.read_json("last_layer.json").items():
            for method, scores in methods.items():
                for top in ("top1", "top5"):
                    if scores.get(top) is not None:
                        add(
                            f"last_layer_{top}",
                            pd.Series([f"{captioner} / {method}"]),
                            pd.Series([scores[top]]),
                        )
    if not rows:
        return pd.DataFrame(columns=["metric", "layer", "value"])
    return pd.concat(rows, ignore_index=True)


PER_LAYER_METRICS = (
    "polysemantic_fraction",
    "mean_adjectives",
    "acoustic_share",
    "feature_r2_median",
    "simulation_pearson",
    "class_purity",
    "class_purity_chance",
)


def compare_runs(run_dirs: Mapping[str, RunDir]) -> pd.DataFrame:
    """Side-by-side metrics of several runs: ``model, metric, layer, depth, value``.

    ``run_dirs`` maps a model name (e.g. the training strategy) to its run directory; see
    :func:`run_metrics` for the metrics. ``depth`` is the layer's position in the depth order
    of all runs' layers together (NaN for the last-layer accuracy rows, whose ``layer`` is
    ``"<captioner> / <method>"``).
    """
    frames = []
    for model, run in run_dirs.items():
        m = run_metrics(run)
        m.insert(0, "model", model)
        frames.append(m)
    if not frames:
        return pd.DataFrame(columns=["model", "metric", "layer", "depth", "value"])
    return _add_depth(pd.concat(frames, ignore_index=True))


def _add_depth(df: pd.DataFrame) -> pd.DataFrame:
    """Insert ``depth`` before ``value``: the layer's position in the depth order of all the
    table's per-layer rows (NaN for the other metrics)."""
    per_layer = df["metric"].isin(PER_LAYER_METRICS)
    depths = layer_depths(df.loc[per_layer, "layer"])
    df.insert(df.columns.get_loc("value"), "depth", df["layer"].map(depths).where(per_layer))
    return df


def depth_trends(run_dirs: Mapping[str, RunDir], confidence: float = 0.95) -> pd.DataFrame:
    """How each model's neurons change with depth, over its hidden layers (the classifier,
    whose neurons are the classes, is left out): per neuron ``class_purity`` and
    ``polysemantic`` (0/1) regressed on the layer's block index (``layers.<i>``).

    Returns ``model, metric, mean, slope, ci_low, ci_high, p_value, n`` (the slope per block,
    with its confidence interval); a model without the per-neuron tables adds no rows.
    """
    rows = []
    for model, run in run_dirs.items():
        for metric, df in _per_neuron_measures(run):
            df = df.dropna(subset=["block", "value"])
            fit = linear_trend(df["block"], df["value"], confidence)
            rows.append(
                {
                    "model": model,
                    "metric": metric,
                    "mean": float(df["value"].mean()) if len(df) else float("nan"),
                    **{k: fit[k] for k in ("slope", "ci_low", "ci_high", "p_value", "n")},
                }
            )
    columns = ["model", "metric", "mean", "slope", "ci_low", "ci_high", "p_value", "n"]
    return pd.DataFrame(rows, columns=columns)


def seed_comparison(cfg: Config) -> dict[str, Any]:
    """The strategies over their seeds (:func:`seed_runs`), computed (nothing written):
    ``runs``, ``comparison`` (:func:`compare_runs`, with a ``seed`` column when ``cfg.seeds``
    is set), ``trends`` (likewise), ``per_seed`` (:func:`seed_measures`), ``summary``
    (:func:`seed_summary`), ``orderings`` (:func:`seed_orderings`) and ``verdict``
    (:func:`seed_verdict`)."""
    runs = seed_runs(cfg)
    confidence = cfg.analysis.confidence
    if cfg.seeds:
        comparison = compare_seed_runs(runs)
        trends = seed_trends(runs, confidence)
    else:
        single = {model: next(iter(by_seed.values())) for model, by_seed in runs.items()}
        comparison = compare_runs(single)
        trends = depth_trends(single, confidence)
    per_seed = seed_measures(runs, confidence)
    orderings = seed_orderings(per_seed)
    summary = seed_summary(per_seed, orderings)
    return {
        "runs": runs,
        "comparison": comparison,
        "trends": trends,
        "per_seed": per_seed,
        "orderings": orderings,
        "summary": summary,
        "verdict": seed_verdict(summary, orderings),
    }


SEED_TABLES = {
    "per_seed": "strategies_seed_measures.csv",
    "summary": "strategies_seed_summary.csv",
    "orderings": "strategies_orderings.csv",
}
"""The seed tables :func:`run_comparison` writes under ``<run>/analysis/``."""


def run_comparison(cfg: Config, run: RunDir) -> dict[str, Any]:
    """Compare the per-strategy runs of ``cfg.strategies`` (each of ``cfg.seeds``, when set):
    write ``analysis/strategies_comparison.csv``, ``strategies_trends.csv``, the seed tables
    (:data:`SEED_TABLES`), ``strategies_verdict.txt`` and the ``strategies_*`` figures."""
    import matplotlib.pyplot as plt

    from andlib.models.families.registry import family_of

    result = seed_comparison(cfg)
    runs = result["runs"]
    if not runs:
        log.warning("no per-strategy run directories under %s", cfg.run_path)
        return {"comparison": "no strategy runs", "missing": list(cfg.strategies)}
    run.write_csv(f"{ANALYSIS_DIR}/strategies_comparison.csv", result["comparison"])
    run.write_csv(f"{ANALYSIS_DIR}/strategies_trends.csv", result["trends"])
    for key, name in SEED_TABLES.items():
        run.write_csv(f"{ANALYSIS_DIR}/{name}", result[key])
    atomic_write_text(_analysis_file(run, "strategies_verdict.txt"), result["verdict"] + "\n")
    first = {model: next(iter(by_seed.values())) for model, by_seed in runs.items()}
    figs = comparison_figures(cfg, first, result["comparison"], result["per_seed"])
    for fig in figs.values():
        plt.close(fig)
    missing = [
        f"{s}/seed{k}" if k is not None else s
        for s in cfg.strategies
        for k in (cfg.seeds if cfg.seeds and family_of(cfg.strategy_model(s)).trains else [None])
        if k not in runs.get(s, {})
    ]
    return {
        "comparison_models": list(runs),
        "seeds": {m: [k for k in by_seed if k is not None] for m, by_seed in runs.items()},
        "missing": missing,
        "figures": sorted(figs),
        "verdict": result["verdict"],
    }


def comparison_figures(
    cfg: Config,
    runs: Mapping[str, RunDir],
    comparison: pd.DataFrame | None = None,
    per_seed: pd.DataFrame | None = None,
) -> dict[str, Any]:
    """The comparison figures (saved): ``strategies_comparison`` (four panels; one line per
    seed when ``comparison`` has a ``seed`` column), ``strategies_adjective_distribution``
    (one bar chart per model) and, given ``per_seed`` (:func:`seed_measures`),
    ``strategies_seeds`` (one panel per measure, one marker per seed)."""
    from andlib.report import plots

    comparison = compare_runs(runs) if comparison is None else comparison
    figs = {"strategies_comparison": plots.plot_strategies_comparison(comparison)}
    if per_seed is not None and not per_seed.empty:
        figs["strategies_seeds"] = plots.plot_seed_measures(per_seed)
    counts = []
    for model, run in runs.items():
        table = read_table(run, "adjective_counts.csv")
        if table is None and run.exists("neurons.csv"):
            table = adjective_counts(read_neurons(run))
        if table is not None:
            counts.append(table.assign(model=model))
    if counts:
        figs["strategies_adjective_distribution"] = plots.plot_adjective_distribution(
            pd.concat(counts, ignore_index=True), top_n=cfg.analysis.top_n_adjectives
        )
    for name, fig in figs.items():
        plots.save_figure(fig, name, cfg)
    return figs


# --------------------------------------------------------------------------------------------
# The strategies over training seeds (issue 18): does an ordering survive a retrain?
# --------------------------------------------------------------------------------------------

MIN_SEEDS = 2
"""An ordering is stated only when at least one of the two models has this many seeds."""


def _per_neuron(run: RunDir, table: str, column: str) -> pd.DataFrame | None:
    """A per-neuron analysis table with ``block`` (the ``layers.<i>`` index, NaN for the
    classifier and other layers) and ``value`` (``column`` as float)."""
    df = read_table(run, table)
    if df is None:
        return None
    block = df["layer"].astype(str).str.extract(r"^layers\.(\d+)\.", expand=False)
    return df.assign(block=pd.to_numeric(block), value=df[column].astype(float))


PER_NEURON_MEASURES = (
    ("class_purity", "class_purity.csv", "purity"),
    ("polysemantic", "neuron_polysemanticity.csv", "polysemantic"),
)
"""``(measure, table, column)``: the per-neuron measures the depth trends regress on depth."""


def _per_neuron_measures(run: RunDir) -> Iterator[tuple[str, pd.DataFrame]]:
    """``(measure, table)`` of each of :data:`PER_NEURON_MEASURES` the run has (tables as
    :func:`_per_neuron` reads them; hidden-layer rows are those with a ``block``)."""
    for measure, table, column in PER_NEURON_MEASURES:
        df = _per_neuron(run, table, column)
        if df is not None:
            yield measure, df


def _mean_interval(values: Iterable[float], confidence: float) -> dict[str, Any]:
    """Mean with a t interval over the values (``n`` of them; NaN bounds below two)."""
    from scipy import stats

    v = np.asarray([x for x in values if np.isfinite(x)], dtype=float)
    n = len(v)
    mean = float(v.mean()) if n else float("nan")
    half = float("nan")
    if n > 1:
        half = float(stats.t.ppf((1 + confidence) / 2, n - 1) * v.std(ddof=1) / np.sqrt(n))
    return {"value": mean, "ci_low": mean - half, "ci_high": mean + half, "n": n}


def _wilson(p: float, n: int | None, confidence: float) -> dict[str, Any]:
    """A proportion ``p`` of ``n`` trials with its Wilson score interval."""
    from scipy import stats

    if not n or not np.isfinite(p):
        return {"value": p, "ci_low": float("nan"), "ci_high": float("nan"), "n": n or 0}
    z = float(stats.norm.ppf((1 + confidence) / 2))
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return {"value": p, "ci_low": centre - half, "ci_high": centre + half, "n": int(n)}


def run_measures(run: RunDir, confidence: float = 0.95) -> pd.DataFrame:
    """One run's scalar measures, each with its within-run interval:
    ``measure, value, ci_low, ci_high, n, interval``.

    :data:`MEASURES`: held-out accuracy (Wilson interval over the held-out clips of
    ``model.json``), mean class purity and polysemantic fraction of the hidden-layer neurons
    (``layers.<i>.*``; t interval over neurons) and their slopes per block (the regression
    interval of :func:`depth_trends`), class purity of the classifier neurons, the mean
    simulation score of the descriptions (t interval over the scored neurons); and per
    captioner and method the last-layer top-1 accuracy (Wilson over the class neurons).
    Missing inputs add no rows.
    """
    rows: list[dict[str, Any]] = []

    def add(measure: str, interval: str, stats_: dict[str, Any]) -> None:
        rows.append({"measure": measure, **stats_, "interval": interval})

    if run.exists("model.json"):
        info = run.read_json("model.json")
        held = info.get("heldout_accuracy")
        if held is not None:
            add(
                "heldout_accuracy",
                "wilson",
                _wilson(float(held), info.get("n_heldout"), confidence),
            )
    for name, df in _per_neuron_measures(run):
        hidden = df.dropna(subset=["block", "value"])
        add(f"{name}_hidden", "t over neurons", _mean_interval(hidden["value"], confidence))
        fit = linear_trend(hidden["block"], hidden["value"], confidence)
        add(
            f"{name}_slope",
            "regression",
            {
                "value": fit["slope"],
                "ci_low": fit["ci_low"],
                "ci_high": fit["ci_high"],
                "n": fit["n"],
            },
        )
        if name == "class_purity":
            classifier = df.loc[df["layer"].astype(str) == "classifier", "value"]
            if len(classifier):
                add(
                    "class_purity_classifier",
                    "t over neurons",
                    _mean_interval(classifier, confidence),
                )
    if run.exists("simulation_scores.csv"):
        sim = run.read_csv("simulation_scores.csv")
        sim = sim[sim["method"].astype(str) == "description"]
        pearson = pd.to_numeric(sim["pearson"], errors="coerce")
        add("simulation_pearson", "t over neurons", _mean_interval(pearson, confidence))
    if run.exists("last_layer.json"):
        for captioner, methods in run.read_json("last_layer.json").items():
            for method, scores in methods.items():
                if isinstance(scores, dict) and scores.get("top1") is not None:
                    add(
                        f"last_layer_top1: {captioner} / {method}",
                        "wilson",
                        _wilson(float(scores["top1"]), scores.get("n_neurons"), confidence),
                    )
    columns = ["measure", "value", "ci_low", "ci_high", "n", "interval"]
    return pd.DataFrame(rows, columns=columns)


def seed_measures(
    runs: Mapping[str, Mapping[int | None, RunDir]], confidence: float = 0.95
) -> pd.DataFrame:
    """:func:`run_measures` of every run of every model: ``model, seed, measure, value,
    ci_low, ci_high, n, interval`` (``seed`` empty for a model with one run that no seed
    changes, e.g. a checkpoint)."""
    frames = []
    for model, by_seed in runs.items():
        for seed, run in by_seed.items():
            m = run_measures(run, confidence)
            m.insert(0, "model", model)
            m.insert(1, "seed", pd.array([seed] * len(m), dtype="Int64"))
            frames.append(m)
    columns = ["model", "seed", "measure", "value", "ci_low", "ci_high", "n", "interval"]
    if not frames:
        return pd.DataFrame(columns=columns)
    return pd.concat(frames, ignore_index=True)[columns]


def seed_orderings(per_seed: pd.DataFrame) -> pd.DataFrame:
    """Per measure and pair of models, which is higher and whether that holds in every seed.

    ``measure, higher, lower, higher_mean, lower_mean, n_higher, n_lower, share_of_pairs,
    holds_in_every_seed``: ``higher`` is the model with the larger mean over its seeds;
    ``share_of_pairs`` the share of (seed of ``higher``, seed of ``lower``) pairs in which
    ``higher`` is above. The ordering holds in every seed when every seed of ``higher`` is
    above every seed of ``lower`` (their seed ranges do not overlap, so it holds however
    the seeds are paired) and at least one of the two has :data:`MIN_SEEDS` seeds.
    """
    rows = []
    data = per_seed.dropna(subset=["value"])
    for measure in _measure_order(data["measure"]):
        sub = data[data["measure"] == measure]
        values = {m: g["value"].to_numpy(dtype=float) for m, g in sub.groupby("model", sort=False)}
        models = list(values)
        for i, a in enumerate(models):
            for b in models[i + 1 :]:
                hi, lo = (a, b) if values[a].mean() >= values[b].mean() else (b, a)
                above = values[hi][:, None] > values[lo][None, :]
                enough = max(len(values[hi]), len(values[lo])) >= MIN_SEEDS
                rows.append(
                    {
                        "measure": measure,
                        "higher": hi,
                        "lower": lo,
                        "higher_mean": float(values[hi].mean()),
                        "lower_mean": float(values[lo].mean()),
                        "n_higher": len(values[hi]),
                        "n_lower": len(values[lo]),
                        "share_of_pairs": float(above.mean()),
                        "holds_in_every_seed": bool(enough and above.all()),
                    }
                )
    columns = [
        "measure",
        "higher",
        "lower",
        "higher_mean",
        "lower_mean",
        "n_higher",
        "n_lower",
        "share_of_pairs",
        "holds_in_every_seed",
    ]
    return pd.DataFrame(rows, columns=columns)


def _format_values(values: Iterable[float]) -> str:
    return " ".join(f"{v:.4g}" for v in values)


def seed_summary(per_seed: pd.DataFrame, orderings: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per model and measure: the mean over its seeds, the spread between seeds and
    the within-run interval beside it.

    ``model, measure, n_seeds, seeds, values, mean, sd, min, max, spread, within_half_width,
    holds_in_every_seed, rank``: ``sd`` is the standard deviation between seeds (NaN for one),
    ``spread`` = ``max - min``, ``within_half_width`` the mean half-width of the seeds'
    within-run intervals (:func:`run_measures`); ``holds_in_every_seed``: the model's order
    against every other model on this measure holds in every seed (:func:`seed_orderings`),
    and then ``rank`` is its place (1 = highest), else NaN.
    """
    orderings = seed_orderings(per_seed) if orderings is None else orderings
    rows = []
    data = per_seed.dropna(subset=["value"])
    for measure in _measure_order(data["measure"]):
        sub = data[data["measure"] == measure]
        pairs = orderings[orderings["measure"] == measure]
        for model, g in sub.groupby("model", sort=False):
            v = g["value"].to_numpy(dtype=float)
            mine = pairs[(pairs["higher"] == model) | (pairs["lower"] == model)]
            holds = bool(len(mine)) and bool(mine["holds_in_every_seed"].all())
            half = ((g["ci_high"] - g["ci_low"]) / 2).astype(float)
            seeds = g["seed"]
            rows.append(
                {
                    "model": model,
                    "measure": measure,
                    "n_seeds": len(v),
                    "seeds": " ".join(str(s) for s in seeds.dropna()) or "one run",
                    "values": _format_values(v),
                    "mean": float(v.mean()),
                    "sd": float(v.std(ddof=1)) if len(v) > 1 else float("nan"),
                    "min": float(v.min()),
                    "max": float(v.max()),
                    "spread": float(v.max() - v.min()),
                    "within_half_width": float(half.mean()) if half.notna().any() else np.nan,
                    "holds_in_every_seed": holds,
                    "rank": float(1 + (mine["lower"] == model).sum()) if holds else np.nan,
                }
            )
    columns = [
        "model",
        "measure",
        "n_seeds",
        "seeds",
        "values",
        "mean",
        "sd",
        "min",
        "max",
        "spread",
        "within_half_width",
        "holds_in_every_seed",
        "rank",
    ]
    return pd.DataFrame(rows, columns=columns)


def seed_verdict(summary: pd.DataFrame, orderings: pd.DataFrame) -> str:
    """The comparison in plain language: per measure, the orderings that hold in every seed
    (with each model's mean and range over its seeds), or that none does."""
    if summary.empty:
        return "No strategy runs to compare yet."
    n_max = int(summary["n_seeds"].max())
    if n_max < MIN_SEEDS:
        return (
            "One run per model: no ordering is stated, since a single run cannot tell an "
            "effect from the spread between retrains. Set seeds (e.g. seeds: [0, 1, 2]) to "
            "train and dissect every trained strategy several times."
        )
    stats_ = summary.set_index(["model", "measure"])

    def describe(model: str, measure: str) -> str:
        row = stats_.loc[(model, measure)]
        if row["n_seeds"] < 2:
            return f"{model} ({row['mean']:.3g}, one run)"
        return (
            f"{model} (mean {row['mean']:.3g}, seeds {row['min']:.3g} to {row['max']:.3g}, "
            f"SD {row['sd']:.2g})"
        )

    seeds = sorted({s for text in summary["seeds"] for s in text.split() if s.isdigit()}, key=int)
    lines = [
        f"Over training seeds {', '.join(seeds)} (an ordering is stated only where it holds "
        "in every seed):"
    ]
    for measure in _measure_order(summary["measure"]):
        pairs = orderings[orderings["measure"] == measure]
        held = pairs[pairs["holds_in_every_seed"]]
        label = measure_label(measure)
        if held.empty:
            lines.append(f"- {label}: no ordering holds in every seed.")
            continue
        stated = "; ".join(
            f"{describe(r.higher, measure)} > {describe(r.lower, measure)}"
            for r in held.itertuples()
        )
        rest = pairs[~pairs["holds_in_every_seed"]]
        tail = ""
        if len(rest):
            tail = "; not in every seed: " + ", ".join(
                f"{r.higher} vs {r.lower}" for r in rest.itertuples()
            )
        lines.append(f"- {label}: {stated}{tail}.")
    return "\n".join(lines)


def compare_seed_runs(runs: Mapping[str, Mapping[int | None, RunDir]]) -> pd.DataFrame:
    """:func:`compare_runs` over every seed: ``model, seed, metric, layer, depth, value``."""
    frames = []
    for model, by_seed in runs.items():
        for seed, run in by_seed.items():
            m = run_metrics(run)
            m.insert(0, "model", model)
            m.insert(1, "seed", pd.array([seed] * len(m), dtype="Int64"))
            frames.append(m)
    if not frames:
        return pd.DataFrame(columns=["model", "seed", "metric", "layer", "depth", "value"])
    return _add_depth(pd.concat(frames, ignore_index=True))


def seed_trends(
    runs: Mapping[str, Mapping[int | None, RunDir]], confidence: float = 0.95
) -> pd.DataFrame:
    """:func:`depth_trends` of every seed, with a ``seed`` column after ``model``."""
    frames = []
    for model, by_seed in runs.items():
        for seed, run in by_seed.items():
            t = depth_trends({model: run}, confidence)
            t.insert(1, "seed", pd.array([seed] * len(t), dtype="Int64"))
            frames.append(t)
    if not frames:
        return depth_trends({}, confidence).assign(seed=pd.Series(dtype="Int64"))
    return pd.concat(frames, ignore_index=True)


def _empty(*columns: str) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
