"""andlib.describe.tagger: the cross-fitted source tagger (no caption depends on its own clip's
label)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from andlib.data.audio import ProbingSet
from andlib.describe import tagger
from andlib.describe.tagger import (
    TaggerCaptioner,
    cross_fit_splits,
    cross_fitted_probabilities,
    source_sentence,
)

SR = 16000


CLASSES = ["dog", "rooster", "rain", "clock_tick"]


def _clip(cls: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(SR) / SR
    if cls == 0:
        y = np.sin(2 * np.pi * rng.uniform(180, 240) * t)
    elif cls == 1:
        y = np.sin(2 * np.pi * rng.uniform(1500, 1800) * t)
    elif cls == 2:
        y = rng.standard_normal(SR) * 0.3
    else:
        y = np.zeros(SR)
        y[:: int(SR / rng.uniform(4, 6))] = 1.0
    return (0.3 * y + 0.01 * rng.standard_normal(SR)).astype(np.float32)


def _probing_set(labels_by_clip: list[int] | None = None, n_folds: int = 3) -> ProbingSet:
    rng = np.random.default_rng(0)
    rows, audio = [], []
    for fold in range(1, n_folds + 1):
        for cls in range(len(CLASSES)):
            for take in range(3):
                audio.append(_clip(cls, rng))
                rows.append({"clip_id": f"{fold}-{cls}-{take}", "label": cls, "fold": fold})
    meta = pd.DataFrame(rows)
    if labels_by_clip is not None:
        meta["label"] = labels_by_clip
    meta["category"] = [CLASSES[c] for c in meta["label"]]
    meta["path"] = meta["clip_id"]
    return ProbingSet("toy", SR, audio, meta, class_names=CLASSES)


def test_a_clips_caption_does_not_change_when_labels_in_its_own_fold_are_shuffled(tmp_path):
    ps = _probing_set()
    before = TaggerCaptioner(tmp_path / "a").caption(ps)
    labels = ps.labels.copy()
    in_fold = np.flatnonzero(ps.meta["fold"].to_numpy() == 2)
    labels[in_fold] = np.random.default_rng(1).permutation(labels[in_fold])
    assert (labels[in_fold] != ps.labels[in_fold]).any()
    shuffled = _probing_set(labels.tolist())
    after = TaggerCaptioner(tmp_path / "b").caption(shuffled)
    for i in in_fold:
        assert after[i] == before[i]


def test_captions_name_the_source_from_the_audio_and_report_accuracy(tmp_path):
    ps = _probing_set()
    cap = TaggerCaptioner(tmp_path)
    captions = cap.caption(ps)
    assert cap.last_report is not None and cap.last_report["top1"] >= 0.9
    assert captions[0].startswith("Most likely a dog barking")
    assert "rain" in captions[6] and "clock" in captions[9]
    assert set(cap.last_predictions.columns) >= {"clip_id", "split", "top1", "p1"}


def test_cross_fitting_never_trains_on_the_predicted_split(monkeypatch):
    seen: list[tuple[set[int], set[int]]] = []

    class Recorder:
        def fit(self, x, y):
            self.train = set(x[:, 0].astype(int).tolist())
            self.classes_ = np.unique(y)
            return self

        def predict_proba(self, x):
            seen.append((self.train, set(x[:, 0].astype(int).tolist())))
            return np.full((len(x), len(self.classes_)), 1 / len(self.classes_))

    monkeypatch.setattr(tagger, "_classifier", lambda c: Recorder())
    n = 40
    x = np.arange(n, dtype=float)[:, None]
    labels = np.arange(n) % 4
    splits = np.arange(n) % 5
    cross_fitted_probabilities(x, labels, splits, 4)
    assert len(seen) == 5
    for train, test in seen:
        assert not train & test
        assert len(train) + len(test) == n


def test_splits_without_folds_are_seeded_and_keep_a_source_file_together():
    meta = pd.DataFrame(
        {"label": np.repeat(np.arange(4), 10), "src_file": np.repeat(np.arange(20), 2)}
    )
    a = cross_fit_splits(meta, 5, seed=3)
    assert (a == cross_fit_splits(meta, 5, seed=3)).all()
    for _, group in pd.Series(a).groupby(meta["src_file"]):
        assert group.nunique() == 1
    assert len(np.unique(a)) == 5


def test_source_sentence_hedges_by_confidence():
    assert source_sentence(["a dog barking", "rain"], [0.9, 0.05]) == "Most likely a dog barking."
    assert (
        source_sentence(["a dog barking", "rain"], [0.5, 0.3])
        == "Most likely a dog barking, possibly rain."
    )
    assert "unclear" in source_sentence(["a dog barking", "rain"], [0.2, 0.15])


def test_unlabelled_sets_are_a_clear_error(tmp_path):
    ps = _probing_set()
    ps.meta["label"] = -1
    with pytest.raises(Exception, match="labelled probing set"):
        TaggerCaptioner(tmp_path).caption(ps)


def test_new_clips_get_sources_from_a_tagger_fitted_on_the_whole_reference_set(tmp_path):
    ref = _probing_set()
    rng = np.random.default_rng(7)
    meta = pd.DataFrame({"clip_id": ["x", "y"], "path": ["x", "y"], "label": -1, "category": ""})
    new = ProbingSet("files", SR, [_clip(0, rng), _clip(2, rng)], meta)
    captions = TaggerCaptioner(tmp_path).caption_new(new, ref)
    assert captions[0].startswith("Most likely a dog barking")
    assert "rain" in captions[1].split(".")[0]
