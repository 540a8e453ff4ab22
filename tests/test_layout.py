"""andlib.layout: the depth order of layer keys and the per-seed tables of a comparison."""

from __future__ import annotations

import pandas as pd

from andlib import layout
from andlib.report import analysis as an


def test_layers_sort_by_block_then_kind_with_the_classifier_last():
    layers = ["classifier", "layers.10.out", "layers.2.mlp", "layers.2.out", "layers.2.attn"]
    layers += ["layers.10.attn", "pooler", "encoder.layer.3.intermediate"]
    assert an.sort_layers(layers) == [
        "layers.2.attn",
        "layers.2.mlp",
        "layers.2.out",
        "encoder.layer.3.intermediate",
        "layers.10.attn",
        "layers.10.out",
        "pooler",
        "classifier",
    ]
    assert an.layer_depths(["classifier", "layers.1.mlp", "layers.0.mlp"]) == {
        "layers.0.mlp": 0,
        "layers.1.mlp": 1,
        "classifier": 2,
    }


def test_an_sae_layer_takes_the_depth_of_the_layer_it_encodes():
    layers = ["layers.0.out", "sae.layers.1.out.k32", "layers.1.out", "classifier"]
    assert an.layer_depths(layers) == {
        "layers.0.out": 0,
        "layers.1.out": 1,
        "sae.layers.1.out.k32": 1,
        "classifier": 2,
    }


def test_sae_layers_are_named_by_their_prefix_and_know_their_base_layer():
    assert layout.is_sae_layer("sae.layers.2.out.k32") and not layout.is_sae_layer("layers.2.out")
    assert layout.sae_base_layer("sae.layers.2.out.k32") == "layers.2.out"
    assert layout.sae_base_layer("sae.encoder.k1.mlp.k16") == "encoder.k1.mlp"
    assert layout.sae_base_layer("classifier") == "classifier"


def test_seed_tables_are_read_by_seed_and_a_folder_without_provenance_is_left_out(tmp_path):
    import json

    from andlib.layout import PROVENANCE, read_seed_tables, seed_folder

    for seed in (10, 2):
        folder = seed_folder(tmp_path, seed)
        folder.mkdir()
        (folder / PROVENANCE).write_text(json.dumps({"seed": seed}))
        pd.DataFrame({"strategy": ["a"], "measure": ["m"], "value": [seed]}).to_csv(
            folder / "measures.csv", index=False
        )
    seed_folder(tmp_path, 3).mkdir()  # half-written: no provenance yet
    (tmp_path / "notes").mkdir()
    found = read_seed_tables(tmp_path)
    assert list(found) == [2, 10]
    assert found[10]["provenance"] == {"seed": 10}
    assert found[10]["measures.csv"]["value"].tolist() == [10]
    assert found[2]["training.csv"].empty
    assert read_seed_tables(tmp_path / "missing") == {}


def test_read_text_gives_an_analysis_text_file_or_none(tmp_path):
    from andlib.store import RunDir

    run = RunDir(tmp_path)
    assert layout.read_text(run, "sae_verdict.txt") is None
    (tmp_path / "analysis").mkdir()
    (tmp_path / "analysis" / "sae_verdict.txt").write_text("latents beat neurons\n")
    assert layout.read_text(run, "sae_verdict.txt") == "latents beat neurons\n"
