"""andlib.report.atlas_data: the atlas's headline numbers and media names."""

from __future__ import annotations

import pytest

from andlib.report.atlas import build_atlas, headline, media_name
from andlib.store import RunDir
from tests.report.test_atlas import enrich_run
from tests.report.test_browser import K, make_run_dir


@pytest.fixture
def built(tmp_cfg):
    cfg = tmp_cfg({"k": K})
    run = make_run_dir(cfg)
    enrich_run(run)
    return run, cfg, build_atlas(run, cfg, workers=1)


def test_headline_numbers(built):
    run, cfg, _ = built
    h = headline(run, cfg)
    assert h["heldout_accuracy"] == 0.5 and h["caption_top1"] == 0.7
    assert h["primary_method"] == "db_soft_wpmi"
    assert h["last_layer_top1"] == {"tagger+acoustic": 0.67, "acoustic": 0.33}
    assert set(h["simulation"]) == {"description", "random_description", "label", "label_oracle"}
    assert h["pruning"] == {"db": 0.4, "random": 0.05}
    assert headline(RunDir(run.path.parent / "empty"))["simulation"] == {}


def test_media_names_are_safe_and_distinct():
    assert media_name("1-137-A-32") == "1-137-A-32"
    odd = [media_name(c) for c in ("a/b", "a?b", "../x", ".hidden")]
    assert len(set(odd)) == 4
    assert all("/" not in n and not n.startswith(".") for n in odd)
