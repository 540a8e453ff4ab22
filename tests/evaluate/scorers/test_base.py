"""andlib.evaluate.scorers.base: held-out clips and the label oracle."""

from __future__ import annotations

import numpy as np

from andlib.evaluate.scores import (
    heldout_mask,
    label_oracle,
)


def test_heldout_mask_excludes_description_clips():
    mask = heldout_mask(["a", "b", "c", "d"], [["a", "d"], [], ["b", "zz"]])
    assert mask.tolist() == [
        [False, True, True],
        [True, True, False],
        [True, True, True],
        [False, True, True],
    ]


def test_label_oracle_is_leave_one_out_class_mean():
    acts = np.array([[1.0], [3.0], [5.0], [10.0], [20.0]])
    labels = ["a", "a", "a", "b", ""]
    mask = np.array([[True], [True], [True], [True], [True]])
    pred = label_oracle(acts, labels, mask)[:, 0]
    assert pred[:3].tolist() == [4.0, 3.0, 2.0]
    assert np.isnan(pred[3]) and np.isnan(pred[4])  # alone in its class / no label
    mask[2, 0] = False  # a clip outside the held-out set is not averaged in
    assert label_oracle(acts, labels, mask)[0, 0] == 3.0
