"""Stage keys cover what changes a result besides the config: shipped resources and prompts."""

from __future__ import annotations

import dataclasses
import importlib
import shutil
from pathlib import Path

import pytest

from andlib.config import load_config
from andlib.describe import captioning, concepts, summarize
from andlib.evaluate import prune
from andlib.evaluate import scores as evaluate
from andlib.models import activations
from andlib.report import analysis
from andlib.store import RESOURCE_DIR, RunDir, Stage, resource_digest, resource_path
from andlib.text.prompts import PROMPTS

STAGES = ("record", "caption", "summarize", "concepts", "evaluate", "prune", "analysis")
UPSTREAM_OF_CONCEPTS = {"record", "caption", "summarize"}


MODULES = {
    "record": activations,
    "caption": captioning,
    "summarize": summarize,
    "concepts": concepts,
    "evaluate": evaluate,
    "prune": prune,
    "analysis": analysis,
}


def stage_keys(cfg, run: RunDir) -> dict[str, str]:
    """Every stage's key in pipeline order, each recorded as done so the next one sees it."""
    keys = {}
    for stage in STAGES:
        keys[stage] = MODULES[stage].SPEC.key(cfg, run)
        run.mark_done(stage, keys[stage], outputs=[])
    return keys


def changed(before: dict[str, str], after: dict[str, str]) -> set[str]:
    return {s for s in STAGES if before[s] != after[s]}


@pytest.fixture
def run_and_cfg(tmp_path, monkeypatch):
    monkeypatch.delenv("ANDLIB_RESOURCES", raising=False)
    cfg = load_config("configs/smoke.yaml", {"run_dir": str(tmp_path / "run")})
    return RunDir(cfg.run_path), cfg


@pytest.fixture
def resource_copy(tmp_path, monkeypatch) -> Path:
    """A copy of the shipped resources that ``$ANDLIB_RESOURCES`` points at."""
    copy = tmp_path / "resources"
    shutil.copytree(RESOURCE_DIR, copy)
    monkeypatch.setenv("ANDLIB_RESOURCES", str(copy))
    return copy


def test_resource_digest_hashes_contents_only_and_is_deterministic(resource_copy, monkeypatch):
    names = ("sound_adjectives.txt", "esc50_concepts.txt", "prompts:summarize", "prompts:icl")
    in_copy = resource_digest(*names)
    assert in_copy == resource_digest(*names)  # deterministic
    monkeypatch.delenv("ANDLIB_RESOURCES")
    assert resource_digest(*names) == in_copy  # same bytes elsewhere: same digest
    assert set(in_copy) == set(names) and len(set(in_copy.values())) == len(names)
    monkeypatch.setenv("ANDLIB_RESOURCES", str(resource_copy))
    with (resource_copy / "sound_adjectives.txt").open("a") as f:
        f.write("glorpy\n")
    edited = resource_digest(*names)
    assert {n for n in names if edited[n] != in_copy[n]} == {"sound_adjectives.txt"}
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        resource_digest("nope.txt")
    with pytest.raises(KeyError, match="prompts:nope"):
        resource_digest("prompts:nope")


def test_the_stage_reads_the_resource_it_hashes(resource_copy):
    assert resource_path("sound_adjectives.txt") == resource_copy / "sound_adjectives.txt"
    assert "glorpy" not in concepts.load_adjective_lexicon()
    with (resource_copy / "sound_adjectives.txt").open("a") as f:
        f.write("glorpy\n")
    assert "glorpy" in concepts.load_adjective_lexicon()
    (resource_copy / "esc50_concepts.txt").write_text("dog\nglorp\n")
    assert concepts.load_concept_set("esc50") == ["dog", "glorp"]


def test_stage_keys_are_deterministic(run_and_cfg):
    run, cfg = run_and_cfg
    assert stage_keys(cfg, run) == stage_keys(cfg, run)


def test_editing_the_adjective_lexicon_recomputes_concepts_and_what_follows(
    run_and_cfg, resource_copy
):
    run, cfg = run_and_cfg
    before = stage_keys(cfg, run)
    (resource_copy / "unrelated.txt").write_text("not read by any stage\n")
    assert stage_keys(cfg, run) == before  # a file no stage reads changes nothing
    with (resource_copy / "sound_adjectives.txt").open("a") as f:
        f.write("glorpy\n")
    after = stage_keys(cfg, run)
    assert changed(before, after) == set(STAGES) - UPSTREAM_OF_CONCEPTS
    assert stage_keys(cfg, run) == after


def test_editing_the_concept_set_recomputes_concepts_and_what_follows(run_and_cfg, resource_copy):
    run, cfg = run_and_cfg
    before = stage_keys(cfg, run)
    with (resource_copy / "esc50_concepts.txt").open("a") as f:
        f.write("glorp\n")
    assert changed(before, stage_keys(cfg, run)) == set(STAGES) - UPSTREAM_OF_CONCEPTS


def test_a_user_lexicon_file_is_hashed_by_content(run_and_cfg, tmp_path):
    run, _ = run_and_cfg
    lexicon = tmp_path / "mine.txt"
    lexicon.write_text("loud\n")
    cfg = load_config(
        "configs/smoke.yaml",
        {"run_dir": str(run.path), "concepts.adjective_lexicon": str(lexicon)},
    )
    before = stage_keys(cfg, run)
    lexicon.write_text("loud\nquiet\n")
    assert changed(before, stage_keys(cfg, run)) == set(STAGES) - UPSTREAM_OF_CONCEPTS


def test_editing_the_summarize_prompt_recomputes_summarize_and_what_follows(
    run_and_cfg, monkeypatch
):
    run, cfg = run_and_cfg
    before = stage_keys(cfg, run)
    monkeypatch.setitem(PROMPTS["summarize"], "user", PROMPTS["summarize"]["user"] + " Be brief.")
    assert changed(before, stage_keys(cfg, run)) == set(STAGES) - {"record", "caption"}


@pytest.mark.parametrize("task", ["icl", "adjective"])
def test_editing_a_concepts_prompt_leaves_the_summaries_alone(run_and_cfg, monkeypatch, task):
    run, cfg = run_and_cfg
    before = stage_keys(cfg, run)
    monkeypatch.setitem(PROMPTS[task], "system", PROMPTS[task]["system"] + " Be brief.")
    assert changed(before, stage_keys(cfg, run)) == set(STAGES) - UPSTREAM_OF_CONCEPTS


def test_a_stage_version_bump_recomputes_that_stage_and_what_follows(run_and_cfg, monkeypatch):
    run, cfg = run_and_cfg
    before = stage_keys(cfg, run)
    assert concepts.SPEC.version == concepts.VERSION
    bumped = dataclasses.replace(concepts.SPEC, version=concepts.VERSION + 1)
    monkeypatch.setattr(concepts, "SPEC", bumped)
    assert changed(before, stage_keys(cfg, run)) == set(STAGES) - UPSTREAM_OF_CONCEPTS
    monkeypatch.undo()
    assert stage_keys(cfg, run) == before
    monkeypatch.setitem(PROMPTS["simulate"], "user", PROMPTS["simulate"]["user"] + " ")
    assert changed(before, stage_keys(cfg, run)) == {"evaluate"}


def test_every_keyed_stage_declares_its_spec():
    """The pipeline's stages that are skipped when fresh declare one :class:`Stage` each,
    named as the stage, whose upstream stages come before it in the pipeline."""
    from andlib import pipeline

    order = [s for stages in pipeline.STAGES.values() for s in stages]
    for stage, module_name in pipeline.MODULES.items():
        module = importlib.import_module(module_name)
        if stage in ("atlas", "pitch_comparison", "figures", "results"):  # these always run
            assert not hasattr(module, "SPEC"), stage
            continue
        spec = module.SPEC
        assert isinstance(spec, Stage) and spec.name == stage
        assert all(order.index(u) < order.index(stage) for u in spec.upstream), stage
