"""The per-run analyses of described neurons, as pure functions on tables.

Each takes DataFrames or arrays and returns a DataFrame (a ``depth`` column where it is per
layer: :func:`with_depth`); :mod:`andlib.report.analysis` runs them on a run directory.

- **Acoustic adjectives** (paper Fig. 3): :func:`adjective_counts` counts the calibrated
  acoustic adjectives over all described neurons (each neuron counts an adjective once).
- **Adjectives per layer** (paper Fig. 5): :func:`adjectives_per_layer` gives the mean number
  of distinct adjectives per neuron for each layer in depth order
  (:func:`andlib.layout.sort_layers`); :func:`linear_trend` fits ``n_adjectives ~ depth`` over
  *neurons* (x = the layer's position in depth order, 0 = shallowest) and gives the slope with
  a t-distribution confidence interval.
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
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from andlib.layout import (
    is_sae_layer,
    layer_depths,
)
from andlib.store import decode_list

# --------------------------------------------------------------------------------------------
# List-valued cells
# --------------------------------------------------------------------------------------------


def distinct_items(cell: Any) -> list[str]:
    """The distinct items of a list cell (:func:`andlib.store.decode_list`), lower-cased and
    stripped, order kept: what the adjective and concept counts count."""
    items = (s.strip().lower() for s in decode_list(cell))
    return list(dict.fromkeys(s for s in items if s))


def with_depth(df: pd.DataFrame, layers: Iterable[str] | None = None) -> pd.DataFrame:
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
        counter.update(distinct_items(cell))
    df = pd.DataFrame(sorted(counter.items(), key=lambda kv: (-kv[1], kv[0])))
    df = (
        df.set_axis(["adjective", "count"], axis=1)
        if len(df)
        else empty_table("adjective", "count")
    )
    df["count"] = df["count"].astype(int)
    df["fraction"] = df["count"] / max(len(neurons), 1)
    return df


def adjectives_per_layer(neurons: pd.DataFrame, column: str = "adjectives") -> pd.DataFrame:
    """Mean number of distinct acoustic adjectives per neuron, for each layer in depth order.

    Returns ``layer, depth, n_neurons, mean_adjectives, std, sem``.
    """
    n = neurons[column].map(lambda c: len(distinct_items(c)))
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
    return with_depth(out)


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
    """Regression of each neuron's adjective count on its layer's depth position (Fig. 5);
    the latents of an SAE's virtual layer are not neurons of a depth and are left out."""
    neurons = neurons[~neurons["layer"].astype(str).map(is_sae_layer)]
    depths = layer_depths(neurons["layer"])
    x = neurons["layer"].astype(str).map(depths)
    y = neurons[column].map(lambda c: len(distinct_items(c)))
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
    clips = neurons["top_clips"].map(decode_list)
    if k is not None:
        clips = clips.map(lambda c: c[:k])
    return pd.DataFrame({"layer": neurons["layer"], "neuron": neurons["neuron"], "clips": clips})


def caption_sentences(
    clip_ids: Iterable[str], captions: Iterable[str]
) -> tuple[list[str], list[str]]:
    """Every sentence of every caption as its own item: ``(clip id per sentence, sentences)``
    (AND's unit of clustering, ``analysis.cluster_unit: sentence``). A caption without a
    split point is one sentence; empty captions give none."""
    from andlib.describe.calibration import split_sentences

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
    return with_depth(out)


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
    return with_depth(out)


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
    n_adj = neurons[adjectives].map(lambda c: len(distinct_items(c))).astype(int)
    n_con = neurons[concepts].map(lambda c: len(distinct_items(c))).astype(int)
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
    return with_depth(out)


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
    return with_depth(out)


def empty_table(*columns: str) -> pd.DataFrame:
    """A table with these columns and no rows."""
    return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
