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
    from andlib.report.results import comparison_page
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

    (tmp_path / "m1" / "config.yaml").write_text(dump_config(Config(model={"name": "whisper-base"})))
    page = comparison_page(run, cfg)
    assert "| heldout_accuracy | 0.500 | 0.800 |" in page
    assert "| model | whisper-base |" in page  # the run's own model, not the parent config's
    assert "BEATs frozen" in page and "## m1" in page
