"""Metrics of the scorers, each over many neurons at once.

Correlations (:func:`pearson`, :func:`spearman`) work column-wise on ``[n_clips, n_neurons]``
with a mask of usable entries. The detection metrics work row-wise on ``[n_neurons,
n_samples]`` arrays of simulator scores and true labels (activating or not), with an optional
mask of usable samples: :func:`auroc`, :func:`auprc` (average precision, as scikit-learn's
``average_precision_score``), and at a threshold :func:`threshold_metrics` (balanced accuracy,
F1, IoU). :func:`fit_thresholds` and :func:`crossfit_predict` choose the threshold on one
half of the samples and apply it to the other. :func:`paired_interval` is the mean of paired
differences with its t interval.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# --------------------------------------------------------------------------------------------
# Correlations (column-wise, with a mask of usable entries)
# --------------------------------------------------------------------------------------------


def _prepare(pred: Any, true: Any, mask: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    x = np.asarray(pred, dtype=np.float64)
    y = np.asarray(true, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"prediction shape {x.shape} != activation shape {y.shape}")
    vector = x.ndim == 1
    if vector:
        x, y = x[:, None], y[:, None]
    m = np.isfinite(x) & np.isfinite(y)
    if mask is not None:
        m &= np.asarray(mask, dtype=bool).reshape(x.shape)
    return x, y, m, vector


def _pearson(x: np.ndarray, y: np.ndarray, m: np.ndarray) -> np.ndarray:
    n = m.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        xc = np.where(m, x - np.where(m, x, 0).sum(axis=0) / n, 0.0)
        yc = np.where(m, y - np.where(m, y, 0).sum(axis=0) / n, 0.0)
        den = np.sqrt((xc**2).sum(axis=0) * (yc**2).sum(axis=0))
        r = (xc * yc).sum(axis=0) / den
    r[(n < 3) | ~(den > 1e-12)] = np.nan
    return np.clip(r, -1.0, 1.0)


def pearson(pred: Any, true: Any, mask: Any = None) -> np.ndarray | float:
    """Pearson correlation per column of ``[n_clips, n_neurons]`` (or of two vectors).

    Only entries where ``mask`` is true and both values are finite count. Fewer than three
    usable entries or a constant column give NaN.
    """
    x, y, m, vector = _prepare(pred, true, mask)
    r = _pearson(x, y, m)
    return float(r[0]) if vector else r


def spearman(pred: Any, true: Any, mask: Any = None) -> np.ndarray | float:
    """Spearman rank correlation per column (ties get average ranks); see :func:`pearson`."""
    from scipy.stats import rankdata

    x, y, m, vector = _prepare(pred, true, mask)
    # Unused entries rank last (+inf), so the used ones get exactly the ranks 1..n among themselves.
    rx = rankdata(np.where(m, x, np.inf), axis=0, method="average")
    ry = rankdata(np.where(m, y, np.inf), axis=0, method="average")
    r = _pearson(rx, ry, m)
    return float(r[0]) if vector else r


# --------------------------------------------------------------------------------------------
# Detection metrics (row-wise: one row per neuron)
# --------------------------------------------------------------------------------------------


def _rows(scores: Any, labels: Any, mask: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    s = np.atleast_2d(np.asarray(scores, dtype=np.float64))
    y = np.atleast_2d(np.asarray(labels)).astype(bool)
    if s.shape != y.shape:
        raise ValueError(f"scores shape {s.shape} != labels shape {y.shape}")
    m = np.isfinite(s)
    if mask is not None:
        m &= np.atleast_2d(np.asarray(mask, dtype=bool))
    return s, y & m, m


def auroc(scores: Any, labels: Any, mask: Any = None) -> np.ndarray:
    """Area under the ROC curve per row (ties count one half; scikit-learn's
    ``roc_auc_score``). NaN for a row without both classes among its usable samples."""
    from scipy.stats import rankdata

    s, y, m = _rows(scores, labels, mask)
    ranks = rankdata(np.where(m, s, np.inf), axis=1, method="average")
    n_pos = y.sum(axis=1).astype(np.float64)
    n_neg = m.sum(axis=1) - n_pos
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (np.where(y, ranks, 0.0).sum(axis=1) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    out[(n_pos == 0) | (n_neg == 0)] = np.nan
    return out


def auprc(scores: Any, labels: Any, mask: Any = None) -> np.ndarray:
    """Average precision per row: the sum over score thresholds of the recall gained times the
    precision there, tied scores forming one threshold (scikit-learn's
    ``average_precision_score``). NaN for a row without a usable positive."""
    s, y, m = _rows(scores, labels, mask)
    order = np.argsort(np.where(m, -s, np.inf), axis=1, kind="stable")
    s_sorted = np.take_along_axis(np.where(m, s, -np.inf), order, axis=1)
    y_sorted = np.take_along_axis(y, order, axis=1).astype(np.float64)
    tp = np.cumsum(y_sorted, axis=1)
    seen = np.arange(1, s.shape[1] + 1, dtype=np.float64)
    # the last position of each group of tied scores is where its threshold is evaluated
    end = np.ones_like(s_sorted, dtype=bool)
    end[:, :-1] = s_sorted[:, :-1] != s_sorted[:, 1:]
    end_at = np.where(end, np.arange(s.shape[1]), s.shape[1])
    end_at = np.minimum.accumulate(end_at[:, ::-1], axis=1)[:, ::-1]
    precision = np.take_along_axis(tp / seen, end_at, axis=1)
    n_pos = y.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (y_sorted * precision).sum(axis=1) / n_pos
    out[n_pos == 0] = np.nan
    return out


def confusion(pred: Any, labels: Any, mask: Any = None) -> dict[str, np.ndarray]:
    """``{tp, fp, fn, tn}`` per row of boolean predictions against labels (usable samples)."""
    p = np.atleast_2d(np.asarray(pred)).astype(bool)
    y = np.atleast_2d(np.asarray(labels)).astype(bool)
    m = np.ones_like(p) if mask is None else np.atleast_2d(np.asarray(mask, dtype=bool))
    return {
        "tp": (p & y & m).sum(axis=1),
        "fp": (p & ~y & m).sum(axis=1),
        "fn": (~p & y & m).sum(axis=1),
        "tn": (~p & ~y & m).sum(axis=1),
    }


def threshold_metrics(pred: Any, labels: Any, mask: Any = None) -> dict[str, np.ndarray]:
    """``{balanced_accuracy, f1, iou}`` per row of boolean predictions (scikit-learn's
    ``balanced_accuracy_score``, ``f1_score`` and ``jaccard_score``; F1 and IoU are 0 when
    nothing is predicted or true, balanced accuracy NaN without both classes)."""
    c = {k: v.astype(np.float64) for k, v in confusion(pred, labels, mask).items()}
    tp, fp, fn, tn = c["tp"], c["fp"], c["fn"], c["tn"]
    with np.errstate(invalid="ignore", divide="ignore"):
        bal = 0.5 * (tp / (tp + fn) + tn / (tn + fp))
        f1 = np.where(tp > 0, 2 * tp / (2 * tp + fp + fn), 0.0)
        iou = np.where(tp > 0, tp / (tp + fp + fn), 0.0)
    return {"balanced_accuracy": bal, "f1": f1, "iou": iou}


def fit_thresholds(scores: Any, labels: Any, mask: Any = None) -> np.ndarray:
    """Per row, the threshold ``t`` (one of the row's usable scores) whose prediction
    ``score >= t`` has the highest balanced accuracy on the usable samples; the lowest such
    score on ties. NaN for a row without both classes."""
    s, y, m = _rows(scores, labels, mask)
    cand = np.where(m, s, np.nan)  # [n, c]
    pred = s[:, None, :] >= cand[:, :, None]  # [n, c, j]: candidate c predicts sample j
    mm = m[:, None, :]
    yy = y[:, None, :]
    tp = (pred & yy & mm).sum(axis=2)
    tn = (~pred & ~yy & mm).sum(axis=2)
    n_pos = y.sum(axis=1, keepdims=True)
    n_neg = m.sum(axis=1, keepdims=True) - n_pos
    with np.errstate(invalid="ignore", divide="ignore"):
        bal = 0.5 * (tp / n_pos + tn / n_neg)
    bal = np.where(m, bal, -np.inf)
    best = bal.max(axis=1, keepdims=True)
    tied = np.where(bal == best, cand, np.inf)
    out = tied.min(axis=1)
    out[(n_pos[:, 0] == 0) | (n_neg[:, 0] == 0)] = np.nan
    return out


def crossfit_predict(
    scores: Any, labels: Any, fold: Any, mask: Any = None
) -> tuple[np.ndarray, np.ndarray]:
    """Cross-fitted predictions: each sample of fold ``f`` (0 or 1) is predicted with the
    threshold fitted on the other fold's usable samples alone (:func:`fit_thresholds`).
    Returns ``(pred [n, m] bool, thresholds [n, 2])``: ``thresholds[:, f]`` is the one applied
    to fold ``f``. A fold whose other fold lacks a class is predicted with NaN (all negative)."""
    s, y, m = _rows(scores, labels, mask)
    f = np.atleast_2d(np.asarray(fold)).astype(int)
    pred = np.zeros_like(m)
    thresholds = np.full((s.shape[0], 2), np.nan)
    for k in (0, 1):
        t = fit_thresholds(s, y, m & (f != k))
        thresholds[:, k] = t
        with np.errstate(invalid="ignore"):
            pred |= (f == k) & (s >= t[:, None])
    return pred, thresholds


# --------------------------------------------------------------------------------------------
# Paired differences
# --------------------------------------------------------------------------------------------


def paired_interval(diff: Any, confidence: float = 0.95) -> dict[str, float]:
    """``{mean, ci_low, ci_high, n}`` of paired differences (finite ones), t interval; NaN
    bounds with fewer than two."""
    from scipy import stats

    d = np.asarray(diff, dtype=np.float64)
    d = d[np.isfinite(d)]
    n = len(d)
    if n == 0:
        return {"mean": np.nan, "ci_low": np.nan, "ci_high": np.nan, "n": 0}
    mean = float(d.mean())
    if n < 2:
        return {"mean": mean, "ci_low": np.nan, "ci_high": np.nan, "n": n}
    sem = float(d.std(ddof=1) / np.sqrt(n))
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * sem
    return {"mean": mean, "ci_low": mean - half, "ci_high": mean + half, "n": n}
