"""andlib.text.names: concept names compared case- and separator-insensitively."""

from __future__ import annotations

import pytest

from andlib.text.names import normalize_concept


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
