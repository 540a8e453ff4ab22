"""andlib.text.names: concept names and labels compared case- and separator-insensitively."""

from __future__ import annotations

import pytest

from andlib.text.names import normalize_concept, normalize_label


@pytest.mark.parametrize(
    ("name", "normalized"),
    [
        ("Water_Drops", "water drops"),
        ("water-drops", "water drops"),
        ("  WATER   drops ", "water drops"),
        ("crackling_fire", "crackling fire"),
        ("dog", "dog"),
        ("", ""),
        ("_-_", ""),
        (440, "440"),
    ],
)
def test_normalize_concept(name, normalized):
    assert normalize_concept(name) == normalized


def test_equal_names_compare_equal():
    assert normalize_concept("Chirping_Birds") == normalize_concept("chirping-birds")
    assert normalize_concept("door wood knock") != normalize_concept("door wood creaks")


@pytest.mark.parametrize(
    ("label", "normalized"),
    [
        ("001 - Dog bark", "dog bark"),
        ("008 - Chainsaw", "chainsaw"),
        ("12_street_music", "street music"),
        ("Crying_Baby", "crying baby"),
        ("air-conditioner", "air conditioner"),
        ("2024", "2024"),
    ],
)
def test_normalize_label_drops_a_numeric_prefix_and_punctuation(label, normalized):
    assert normalize_label(label) == normalized


def test_the_evaluation_compares_labels_with_the_same_normaliser():
    from andlib.evaluate import labels

    assert labels.normalize_label is normalize_label
