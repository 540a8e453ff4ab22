"""andlib.evaluate.scorers.metrics: correlations against scipy and known cases."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import (
    average_precision_score,
    balanced_accuracy_score,
    f1_score,
    jaccard_score,
    roc_auc_score,
)

from andlib.evaluate.scorers.metrics import (
    auprc,
    auroc,
    crossfit_predict,
    fit_thresholds,
    paired_interval,
    threshold_metrics,
)
from andlib.evaluate.scores import (
    pearson,
    spearman,
)


def test_pearson_and_spearman_match_scipy_with_masks():
    gen = np.random.default_rng(0)
    x = gen.normal(size=(50, 4))
    y = x + gen.normal(size=(50, 4))
    y[3, 1] = y[7, 1] = 5.0  # ties
    mask = gen.random((50, 4)) > 0.3
    r, rho = pearson(x, y, mask), spearman(x, y, mask)
    for j in range(4):
        m = mask[:, j]
        assert r[j] == pytest.approx(stats.pearsonr(x[m, j], y[m, j])[0], abs=1e-10)
        assert rho[j] == pytest.approx(stats.spearmanr(x[m, j], y[m, j])[0], abs=1e-10)


def test_correlations_known_cases():
    x = np.arange(10.0)
    assert pearson(x, 2 * x + 1) == pytest.approx(1.0)
    assert spearman(x, x**3) == pytest.approx(1.0)
    assert pearson(x, x**3) < 0.95
    assert spearman(x, -x) == pytest.approx(-1.0)
    assert np.isnan(pearson(x, np.ones(10)))  # constant
    assert np.isnan(pearson(x[:2], x[:2]))  # too few clips
    with_nan = x.copy()
    with_nan[4] = np.nan
    assert pearson(with_nan, x) == pytest.approx(1.0)


def random_cases(seed: int, n: int = 60, m: int = 40):
    """Scores with ties (rounded), labels with both classes in every row, a mask that drops
    some samples but keeps both classes."""
    g = np.random.default_rng(seed)
    scores = np.round(g.normal(size=(n, m)), int(g.integers(0, 3)))
    labels = g.random((n, m)) < g.uniform(0.2, 0.8, size=(n, 1))
    labels[:, 0], labels[:, 1] = True, False
    mask = g.random((n, m)) > 0.2
    mask[:, :2] = True
    return scores, labels, mask


@pytest.mark.parametrize("seed", range(5))
def test_auroc_and_auprc_match_sklearn(seed):
    scores, labels, mask = random_cases(seed)
    got_roc, got_ap = auroc(scores, labels, mask), auprc(scores, labels, mask)
    for i in range(len(scores)):
        s, y = scores[i][mask[i]], labels[i][mask[i]]
        assert got_roc[i] == pytest.approx(roc_auc_score(y, s), abs=1e-9)
        assert got_ap[i] == pytest.approx(average_precision_score(y, s), abs=1e-9)


@pytest.mark.parametrize("seed", range(5))
def test_threshold_metrics_match_sklearn(seed):
    scores, labels, mask = random_cases(seed)
    pred = scores >= np.median(scores, axis=1, keepdims=True)
    got = threshold_metrics(pred, labels, mask)
    for i in range(len(scores)):
        p, y = pred[i][mask[i]], labels[i][mask[i]]
        expect = {
            "balanced_accuracy": balanced_accuracy_score(y, p),
            "f1": f1_score(y, p, zero_division=0),
            "iou": jaccard_score(y, p, zero_division=0),
        }
        for name, value in expect.items():
            assert got[name][i] == pytest.approx(value, abs=1e-9), (name, i)


def test_metrics_undefined_without_both_classes():
    scores = np.array([[0.1, 0.2, 0.3]])
    assert np.isnan(auroc(scores, [[True, True, True]])[0])
    assert np.isnan(auprc(scores, [[False, False, False]])[0])


def test_fitted_threshold_is_the_best_balanced_accuracy():
    scores = np.array([[0.1, 0.9, 0.8, 0.3, 0.7]])
    labels = np.array([[False, True, True, False, False]])
    t = fit_thresholds(scores, labels)[0]
    assert t == 0.8  # predicts exactly the two positives


def test_threshold_is_fitted_without_the_clips_it_scores():
    """Whatever fold 1 holds, the threshold applied to it is the one fold 0 alone gives."""
    g = np.random.default_rng(3)
    scores = g.normal(size=(30, 20))
    labels = g.random((30, 20)) < 0.5
    labels[:, :4] = [True, False, True, False]
    fold = np.tile(np.arange(20) % 2, (30, 1))
    _, before = crossfit_predict(scores, labels, fold)
    scores2, labels2 = scores.copy(), labels.copy()
    ones = fold == 1
    scores2[ones] = g.normal(size=ones.sum()) * 10
    labels2[ones] = ~labels2[ones]
    pred2, after = crossfit_predict(scores2, labels2, fold)
    np.testing.assert_array_equal(before[:, 1], after[:, 1])  # fold 1 is scored with fold 0's
    assert not np.array_equal(before[:, 0], after[:, 0])  # and fold 0 with fold 1's
    np.testing.assert_array_equal(pred2[ones], (scores2 >= after[:, [1]])[ones])


def test_paired_interval():
    out = paired_interval([1.0, 2.0, 3.0, np.nan])
    assert out["mean"] == 2.0 and out["n"] == 3
    assert out["ci_low"] < 2.0 < out["ci_high"]
    assert np.isnan(paired_interval([1.0])["ci_low"])
