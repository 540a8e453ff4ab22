"""andlib.store: the list-cell codec, and one reader per artifact with its column rules."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from andlib import store
from andlib.store import RunDir, decode_list, encode_list

AWKWARD_IDS = [
    "008 - Chainsaw/3-118658-B",  # an ESC-10 folder id: spaces
    "a;b",
    "c,d",
    "back\\slash",
    "ends with \\",
    "\\;",
    " padded ",
    "dog",
]


@pytest.mark.parametrize(
    "items",
    [[], ["dog"], AWKWARD_IDS, ["", "x"], ["x", ""], ["1", "2.5", "-3e-05"]],
    ids=["empty", "one", "awkward", "empty-first", "empty-last", "numbers"],
)
def test_a_list_cell_reads_back_as_written(items):
    assert decode_list(encode_list(items)) == items


def test_plain_lists_are_semicolon_joined_and_separators_in_items_escaped():
    assert encode_list(["dog", "rain", "wind"]) == "dog;rain;wind"
    assert encode_list(["a;b", "c d"]) == "a\\;b;c d"
    assert encode_list(x for x in ("1", "2")) == "1;2"
    assert decode_list("a\\;b;c d") == ["a;b", "c d"]


@pytest.mark.parametrize("cell", ["", None, float("nan")])
def test_an_empty_cell_is_an_empty_list(cell):
    assert decode_list(cell) == []


def test_a_list_cell_survives_a_csv_round_trip_through_the_readers(tmp_path):
    run = RunDir(tmp_path / "run")
    half = len(AWKWARD_IDS) // 2
    summaries = pd.DataFrame(
        {
            "layer": ["layers.0.mlp"],
            "neuron": [3],
            "top_clips": [encode_list(AWKWARD_IDS[:half])],
            "bottom_clips": [encode_list(AWKWARD_IDS[half:])],
            "high_summary": ["NA"],
            "low_summary": [""],
        }
    )
    run.write_csv("summaries.csv", summaries)
    back = store.read_summaries(run)
    row = back.iloc[0]
    assert decode_list(row["top_clips"]) == AWKWARD_IDS[:half]
    assert decode_list(row["bottom_clips"]) == AWKWARD_IDS[half:]
    assert row["high_summary"] == "NA" and row["low_summary"] == ""  # text stays text
    assert back["neuron"].dtype.kind == "i" and row["layer"] == "layers.0.mlp"


def test_ids_are_text_wherever_they_are_read(tmp_path):
    run = RunDir(tmp_path / "run")
    run.write_csv("clips.csv", pd.DataFrame({"clip_id": ["001", "2"], "path": ["", ""]}))
    run.write_csv("captions.csv", pd.DataFrame({"clip_id": ["001", "2"], "caption": ["a", ""]}))
    topk = pd.DataFrame(
        {
            "layer": ["0"],
            "neuron": [1],
            "end": ["high"],
            "rank": [0],
            "clip_id": ["001"],
            "activation": [0.5],
        }
    )
    run.write_csv("neuron_topk.csv", topk)
    assert store.read_clips(run)["clip_id"].tolist() == ["001", "2"]
    assert store.caption_of(run) == {"001": "a", "2": ""}
    t = store.read_topk(run)
    assert t["clip_id"].tolist() == ["001"] and t["layer"].tolist() == ["0"]
    assert store.read_clips(run, ["2", "001"])["clip_id"].tolist() == ["2", "001"]


def test_numeric_tables_read_empty_cells_as_nan_and_others_as_written(tmp_path):
    run = RunDir(tmp_path / "run")
    run.write_csv(
        "pruning_summary.csv",
        pd.DataFrame({"strategy": ["null", "db"], "ci_low": [float("nan"), 0.5]}),
    )
    summary = store.read_pruning_summary(run)
    assert summary is not None
    assert summary["strategy"].tolist() == ["null", "db"]  # a name, not a missing value
    assert math.isnan(summary["ci_low"].iloc[0]) and summary["ci_low"].iloc[1] == 0.5
    run.write_csv("other.csv", pd.DataFrame({"a": ["", "x"]}))
    assert store.read_table(run, "other.csv")["a"].tolist() == ["", "x"]


def test_a_missing_artifact_names_the_stage_that_writes_it(tmp_path):
    run = RunDir(tmp_path / "run")
    with pytest.raises(FileNotFoundError, match="'caption' stage"):
        store.read_captions(run)
    assert store.read_table(run, "captions.csv", required=False) is None
    assert store.read_pruning_summary(run) is None
    assert store.read_model_info(run) == {}
    with pytest.raises(FileNotFoundError, match="'record' stage"):
        store.read_model_info(run, required=True)
    run.write_json("model.json", {"model_id": "m"})
    assert store.read_model_info(run) == {"model_id": "m"}


def test_read_neurons_fills_the_optional_list_columns(tmp_path):
    run = RunDir(tmp_path / "run")
    run.write_csv("neurons.csv", pd.DataFrame({"layer": ["classifier"], "neuron": ["2"]}))
    df = store.read_neurons(run)
    assert df["adjectives"].tolist() == [""] and df["open_concepts"].tolist() == [""]
    assert df["neuron"].tolist() == [2]


def test_every_declared_table_names_a_stage_of_the_pipeline():
    from andlib.pipeline import MODULES

    assert {t.stage for t in store.TABLES.values()} <= set(MODULES)
