"""Results pages and the README block are generated from a run's files."""

from __future__ import annotations

import pandas as pd

from andlib.report.results import markdown_table, replace_block


def test_readme_block_is_replaced_between_its_markers_only():
    text = "a\n<!-- results:default -->\nold line\n<!-- /results -->\nb\n"
    out = replace_block(text, "default", "new 1\nnew 2")
    assert out == "a\n<!-- results:default -->\nnew 1\nnew 2\n<!-- /results -->\nb\n"
    assert replace_block(out, "default", "new 1\nnew 2") == out  # idempotent
    empty = "<!-- results:default -->\n<!-- /results -->"
    assert replace_block(empty, "default", "x") == "<!-- results:default -->\nx\n<!-- /results -->"
    assert replace_block(text, "other", "x") == text  # no markers for that run


def test_markdown_table_formats_floats_and_missing_values():
    df = pd.DataFrame({"a": ["x", "y"], "b": [0.12345, float("nan")]})
    assert markdown_table(df, 2).splitlines() == [
        "| a | b |",
        "|---|---|",
        "| x | 0.12 |",
        "| y | — |",
    ]


def test_comparison_page_lists_the_models_table_and_each_strategy_run(tmp_path):
    from andlib.config import Config
    from andlib.report.results import SEEDS_TITLE, comparison_page
    from andlib.store import RunDir

    cfg = Config(strategies=["m1"], strategy_models={"m1": "whisper-base"}, run_dir=str(tmp_path))
    run = RunDir(tmp_path)
    (tmp_path / "analysis").mkdir()
    pd.DataFrame({"model": ["ast", "m1"], "heldout_accuracy": [0.5, 0.8]}).to_csv(
        tmp_path / "analysis/models_table.csv", index=False
    )
    sub = RunDir(tmp_path / "m1")
    sub.write_json("last_layer.json", {"tagger+acoustic": {"db_wpmi": {"top1": 0.9, "top5": 1}}})
    from andlib.config import dump_config

    (tmp_path / "m1" / "config.yaml").write_text(
        dump_config(Config(model={"name": "whisper-base"}))
    )
    page = comparison_page(run, cfg)
    assert "| heldout_accuracy | 0.500 | 0.800 |" in page
    assert "| model | whisper-base |" in page  # the run's own model, not the parent config's
    assert "BEATs frozen" in page and "## m1" in page
    assert SEEDS_TITLE not in page  # a checkpoint's comparison, no seed kept
    trained = Config(strategies=["supervised"], run_dir=str(tmp_path), name="nothing-kept")
    assert f"## {SEEDS_TITLE}" in comparison_page(run, trained)


def test_the_sae_tables_come_from_sae_json_and_the_comparison(tmp_path):
    from andlib.report.results import sae_tables
    from andlib.store import RunDir

    run = RunDir(tmp_path / "run")
    assert sae_tables(run) == {}
    report = {"k": 32, "variance_explained": 0.8, "eval_l0": 35.0, "n_dead": 3, "dead_share": 0.1}
    run.write_json("sae.json", {"sae.layers.2.out.k32": report})
    (run.path / "analysis").mkdir()
    pd.DataFrame(
        {"layer": ["layers.2.out"], "sae_layer": ["sae.layers.2.out.k32"], "measure": ["x"],
         "difference": [0.1], "interval": ["bootstrap over units"]}
    ).to_csv(run.path / "analysis" / "sae_comparison.csv", index=False)  # fmt: skip
    sae, comparison = sae_tables(run).values()
    assert sae.iloc[0]["sae layer"] == "sae.layers.2.out.k32" and sae.iloc[0]["n_dead"] == 3
    assert comparison["difference"].tolist() == [0.1] and "interval" not in comparison


def test_seeds_section_states_the_seeds_devices_spread_and_what_holds_in_every_seed(tmp_path):
    from andlib.config import Config
    from andlib.report.results import SEEDS_TITLE, seeds_figure, seeds_section
    from andlib.report.seed_tables import committed_comparison
    from tests.report.test_seed_tables import plant_seed

    for seed, shift in ((0, 0.0), (1, 0.02)):
        plant_seed(tmp_path, seed, {"supervised": 0.6 + shift, "ssl-frozen": 0.3 + shift})
    result = committed_comparison(tmp_path / "tables", "configs/strategies.yaml")
    cfg = Config(name="strategies", figures_dir=str(tmp_path / "figures"))
    text = "\n".join(seeds_section(cfg, result))
    assert f"## {SEEDS_TITLE}" in text and "(seeds 0, 1;" in text
    assert "--seed K" in text
    assert "| 1 | ssl-frozen | 0.320 | 12.500 | 2 | cpu |" in text  # the device of each seed
    assert "### Held-out accuracy between seeds" in text
    assert "| supervised | 2 | 0.610 | 0.014 | 0.600 | 0.620 | 0.020 |" in text
    assert "- held-out classification accuracy: supervised (mean 0.61" in text
    assert seeds_figure(cfg, result["per_seed"]) == "strategies_seeds"
    assert (tmp_path / "figures" / "strategies_seeds.png").is_file()


def test_seeds_section_names_a_refusal_or_the_command_that_makes_a_seed():
    from andlib.config import Config
    from andlib.report.results import seeds_section

    cfg = Config(name="strategies")
    refused = seeds_section(cfg, {"error": "seeds 0 were made from other stage keys", "seeds": []})
    assert refused[-1] == (
        "The comparison over seeds is refused: seeds 0 were made from other stage keys."
    )
    empty = seeds_section(cfg, {"seeds": []})
    assert "python -m andlib strategies-seed --config configs/strategies.yaml --seed K" in empty[-1]


def test_the_sae_comparison_title_carries_the_verdict_the_stage_wrote(tmp_path):
    from andlib.report.results import sae_tables
    from andlib.store import RunDir

    run = RunDir(tmp_path / "run")
    (run.path / "analysis").mkdir()
    pd.DataFrame({"layer": ["layers.2.out"], "difference": [0.1]}).to_csv(
        run.path / "analysis" / "sae_comparison.csv", index=False
    )
    (run.path / "analysis" / "sae_verdict.txt").write_text(
        "layers.2.out, 128 neurons\nneither beats the other here\n"
    )
    (title,) = sae_tables(run)
    assert title.endswith("Verdict: neither beats the other here")
