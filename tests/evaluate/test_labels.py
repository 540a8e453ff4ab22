"""andlib.evaluate.labels: a probing-set label names a class with certainty, or not at all."""

from __future__ import annotations

import pytest

from andlib.evaluate.labels import match_class

CLASSES = ["dog", "crying_baby", "door_wood_knock", "water_drops", "rain"]


@pytest.mark.parametrize(
    ("label", "index"),
    [
        ("Dog", 0),  # equal after normalisation
        ("001 - Dog", 0),  # a numeric prefix
        ("baby cry", 1),  # equal stems
        ("babies crying", 1),
        ("dripping water drop", 3),  # stems contain the class's
        ("knock", 2),  # the one class whose stems contain the label's
    ],
)
def test_a_label_that_names_one_class_maps_to_it(label, index):
    assert match_class(label, CLASSES) == index


@pytest.mark.parametrize("label", ["", "cat", "water"])
def test_a_label_that_names_no_class_or_several_maps_to_none(label):
    classes = [*CLASSES, "water_pouring"]  # "water" would name two classes
    assert match_class(label, classes) is None
