"""andlib.text.names: concept names and labels compared case- and separator-insensitively."""

from __future__ import annotations

import pytest

from andlib.text.names import normalize_concept, normalize_label, stem, stems


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
        ("dog's bark (far)", "dog s bark far"),
        ("Café-Lärm", "café lärm"),
        ("10 dogs", "dogs"),
        ("", ""),
    ],
)
def test_normalize_label_drops_the_numeric_prefix_and_punctuation(label, normalized):
    assert normalize_label(label) == normalized


def test_the_evaluation_compares_labels_with_the_same_normaliser():
    from andlib.evaluate import labels

    assert labels.normalize_label is normalize_label


def test_a_normalized_label_is_a_normalized_concept():
    for label in ("001 - Dog bark", "Water_Drops", "chirping-birds"):
        assert normalize_concept(normalize_label(label)) == normalize_label(label)
    assert normalize_label("Water_Drops") == normalize_concept("Water_Drops")


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("drops", "drop"),
        ("crying", "cry"),
        ("cries", "cry"),
        ("dripping", "drip"),
        ("sneezing", "sneeze"),
        ("glasses", "glass"),
        ("crackling", "crackle"),
        ("waves", "wave"),
        ("barked", "bark"),
    ],
)
def test_word_forms_share_a_stem(a, b):
    assert stem(a) == stem(b)


def test_short_words_and_double_s_keep_their_stem():
    assert stem("bus") == "bus" and stem("glass") == "glass" and stem("sing") == "sing"
    assert stem("dog") != stem("door")


def test_stems_of_a_name_follow_its_words():
    assert stems("Water_Drops") == ["water", "drop"]
    assert stems("crying-baby") == stems("cries baby")
    assert stems("") == []
