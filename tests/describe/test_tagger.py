"""andlib.describe.tagger: the cross-fitted source tagger (no caption depends on its own clip's
label)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from andlib.config import ConfigError
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


@pytest.mark.parametrize("model", ["logistic", "ensemble"])
def test_a_clips_caption_does_not_change_when_labels_in_its_own_fold_are_shuffled(tmp_path, model):
    ps = _probing_set()
    before = TaggerCaptioner(tmp_path / "a", model=model).caption(ps)
    labels = ps.labels.copy()
    in_fold = np.flatnonzero(ps.meta["fold"].to_numpy() == 2)
    labels[in_fold] = np.random.default_rng(1).permutation(labels[in_fold])
    assert (labels[in_fold] != ps.labels[in_fold]).any()
    shuffled = _probing_set(labels.tolist())
    after = TaggerCaptioner(tmp_path / "b", model=model).caption(shuffled)
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

    monkeypatch.setattr(tagger, "_classifier", lambda c, model, seed, min_count: Recorder())
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


def test_esc50_folds_are_the_splits_whatever_else_the_metadata_holds():
    meta = pd.DataFrame(
        {
            "label": np.tile(np.arange(4), 10),
            "fold": np.repeat(np.arange(1, 6), 8),
            "src_file": np.arange(40),
            "group": np.arange(40) % 3,
        }
    )
    assert (cross_fit_splits(meta, 5, seed=0) == meta["fold"].to_numpy()).all()


def test_a_group_column_keeps_each_recording_on_one_side_of_every_split():
    rng = np.random.default_rng(0)
    meta = pd.DataFrame({"label": np.repeat(np.arange(4), 12), "group": rng.integers(0, 16, 48)})
    splits = cross_fit_splits(meta, 5, seed=1)
    for _, group in pd.Series(splits).groupby(meta["group"]):
        assert group.nunique() == 1
    assert len(np.unique(splits)) >= 2


def test_too_few_recordings_to_cross_fit_is_a_clear_error():
    meta = pd.DataFrame({"label": [0, 1, 0, 1], "group": ["a", "a", "a", "a"]})
    with pytest.raises(Exception, match="single recording"):
        cross_fit_splits(meta)


def test_report_names_the_grouping_and_the_features(tmp_path):
    ps = _probing_set()
    cap = TaggerCaptioner(tmp_path)
    cap.caption(ps)
    report = cap.last_report
    assert report["grouping"] == "esc50 folds" and report["n_groups"] == len(ps)
    assert report["features"] == "hand" and "top3" in report
    ps.meta = ps.meta.drop(columns=["fold"]).assign(group=[c.split("-")[1] for c in ps.clip_ids])
    ps.grouping = "group_pattern ^\\d+-(\\d+)"
    assert tagger.split_grouping(ps) == {"grouping": ps.grouping, "n_groups": 4}
    ps.meta = ps.meta.drop(columns=["group"])
    assert tagger.split_grouping(ps) == {"grouping": "none", "n_groups": len(ps)}


class _Columns:
    """Features that are the first two samples of each clip: known to the test."""

    settings = {"tagger_features": "first-samples"}
    description = "the first two samples"

    def __init__(self):
        self.calls = 0

    def get(self, audio, digests, sr):
        self.calls += 1
        return np.stack([a[:2] for a in audio])


def test_other_features_enter_the_settings_and_the_report(tmp_path):
    ps = _probing_set()
    hand = TaggerCaptioner(tmp_path)
    features = _Columns()
    other = TaggerCaptioner(tmp_path, features=features)
    assert other.settings == {**hand.settings, "tagger_features": "first-samples"}
    other.caption(ps)
    assert features.calls == 1
    assert other.last_report["features"] == "first-samples"
    assert other.last_report["tagger"] == "logistic regression on the first two samples"


def test_the_ensemble_tagger_enters_the_key_and_the_report_and_gives_probabilities(tmp_path):
    ps = _probing_set()
    logistic = TaggerCaptioner(tmp_path)
    ensemble = TaggerCaptioner(tmp_path, model="ensemble")
    assert "model" not in logistic.settings
    assert ensemble.settings == {**logistic.settings, "model": "ensemble"}
    probs, _, _ = ensemble.probabilities(ps)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-9)
    assert (probs.argmax(axis=1) == ps.labels).mean() >= 0.9
    ensemble.caption(ps)
    assert ensemble.last_report["tagger_model"] == "ensemble"
    assert ensemble.last_report["tagger"].startswith("mean of logistic regression, RBF SVM")


def test_the_ensemble_fits_when_a_class_has_fewer_clips_than_calibration_folds():
    x = np.random.default_rng(0).standard_normal((10, 3))
    for labels, with_svm in (
        ([0, 0, 0, 0, 1, 1, 2, 2, 3, 3], True),
        ([0] * 5 + [1] * 4 + [2], False),
    ):
        y = np.array(labels)
        model = tagger._classifier(1.0, "ensemble", 0, tagger._min_count(y))
        assert ("svm" in dict(model.estimators)) is with_svm
        probs = model.fit(x, y).predict_proba(x)
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-9)


def test_an_unknown_tagger_model_is_a_config_error():
    with pytest.raises(ConfigError, match="captioner.tagger_model: unknown classifier 'forest'"):
        tagger._classifier(1.0, "forest")


@pytest.mark.parametrize(
    ("label", "phrase"),
    [
        ("008 - Chainsaw", "a chainsaw running"),
        ("001 - Dog bark", "dog bark"),
        ("010 - Fire crackling", "fire crackling"),
        ("crying_baby", "a baby crying"),
        ("Crying_Baby", "a baby crying"),
        ("street-music", "street music"),
    ],
)
def test_a_folder_label_is_said_without_its_number_and_punctuation(label, phrase):
    assert tagger.source_phrase(label) == phrase


def test_esc10_folder_captions_name_sources_without_numbers(tmp_path):
    ps = _probing_set()
    folders = {"dog": "001 - Dog bark", "rooster": "009 - Rooster", "rain": "002 - Rain"}
    ps.meta["category"] = [folders.get(c, "005 - Clock tick") for c in ps.meta["category"]]
    captions = TaggerCaptioner(tmp_path).caption(ps)
    sources = " ".join(c.split(".")[0] for c in captions)
    assert "dog bark" in sources and "clock tick" in sources
    assert not any(ch.isdigit() for ch in sources)
