"""Concept spread per layer and method, and the collapse warning."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from andlib.describe.spread import collapse_warnings, concept_spread, log_collapses


def _neurons(concepts: list[str], layer: str = "l") -> pd.DataFrame:
    return pd.DataFrame({"layer": layer, "neuron": range(len(concepts)), "db_cos": concepts})


def test_spread_share_entropy_and_count():
    spread = concept_spread(_neurons(["dog", "dog", "rain", "cat"]), ["db_cos"], 50)
    row = spread.iloc[0]
    assert row["top_concept"] == "dog" and row["top_share"] == 0.5
    assert row["entropy_bits"] == 1.5  # -(.5 log .5 + 2 * .25 log .25)
    assert row["max_entropy_bits"] == 2.0  # log2(min(50 concepts, 4 neurons))
    assert row["n_concepts"] == 3 and row["n_neurons"] == 4


def test_empty_concepts_are_left_out_and_a_method_without_any_gets_no_row():
    df = _neurons(["dog", "", "dog"])
    df["tab"] = ""
    spread = concept_spread(df, ["db_cos", "tab"], 50)
    assert spread["method"].tolist() == ["db_cos"]
    assert spread["n_neurons"].tolist() == [2]


def test_planted_collapse_warns_naming_layer_and_method(caplog):
    collapsed = _neurons(["wind"] * 6 + ["dog", "rain", "cat", "cow"], layer="layers.1.mlp")
    healthy = _neurons(["dog", "rain", "cat", "cow"], layer="layers.0.mlp")
    spread = concept_spread(pd.concat([healthy, collapsed]), ["db_cos"], 50)
    assert np.allclose(spread["top_share"], [0.25, 0.6])
    with caplog.at_level(logging.WARNING):
        messages = log_collapses(spread, logging.getLogger("test"))
    assert len(messages) == 1  # 25 % exactly is no collapse; 60 % is
    assert "layers.1.mlp" in caplog.text and "db_cos" in caplog.text and "'wind'" in caplog.text
    assert collapse_warnings(spread, share=0.1) and not collapse_warnings(spread, share=0.7)
