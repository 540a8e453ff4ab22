"""andlib.report.measures: the run measures, their labels and their order."""

from __future__ import annotations

from andlib.report.measures import MEASURES, measure_label, measure_order


def test_every_measure_has_a_label():
    assert all(measure_label(m) == MEASURES[m] for m in MEASURES)
    assert measure_label("something_else") == "something_else"


def test_last_layer_measures_name_their_captioner_and_method():
    label = measure_label("last_layer_top1: tagger+acoustic / icl")
    assert label == "last-layer description accuracy (top-1), tagger+acoustic / icl"


def test_known_measures_come_first_in_their_order_then_the_rest_sorted():
    given = ["zeta", "simulation_pearson", "heldout_accuracy", "alpha", "heldout_accuracy"]
    assert measure_order(given) == ["heldout_accuracy", "simulation_pearson", "alpha", "zeta"]
    assert measure_order([]) == []


def test_hidden_layer_and_pruning_measures_name_their_method():
    assert measure_label("hidden_top1: db_soft_wpmi").endswith("(top-1), db_soft_wpmi")
    assert "pruning" in measure_label("pruning: db") and "db neurons" in measure_label(
        "pruning: db"
    )
