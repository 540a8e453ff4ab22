"""andlib.models.base_run: the record stage links a base run's fresh recording (no forward
pass for the neurons) and adds only the SAE layer; a missing or stale base run is one line
naming the command that makes it, unless ``record.base.missing: record``."""

from __future__ import annotations

import os

import numpy as np
import pytest

from andlib.config import ConfigError
from andlib.models import activations as act
from andlib.store import ActivationCache, RunDir
from tests.models.test_sae_layer import TOY_SAE, probing, toy_target

COMMAND = "python -m andlib record --config base.yaml"


@pytest.fixture
def loaded(monkeypatch):
    """The toy model and 15 clips with folds as the record stage's loaders; ``calls`` counts
    the clips each forward pass plays, ``stage`` runs the record stage on a config."""
    calls: list[int] = []

    def target(cfg):
        t = toy_target()
        forward = t.forward

        def counted(batch):
            calls.append(len(batch))
            return forward(batch)

        t.forward = counted  # type: ignore[method-assign]
        return t

    monkeypatch.setattr(act, "load_target", target)
    monkeypatch.setattr(act, "load_probing_set", lambda cfg: probing(15))

    def stage(cfg):
        return act.run_stage(cfg, RunDir.from_config(cfg))

    return calls, stage


def configs(tmp_cfg, tmp_path, base_pooling="mean", **base):
    """The base run's config (neurons only) and an SAE run's whose ``record.base`` is it."""
    common = {"record.layers": ["proj"], "model.name": "toy", "model.batch_size": 4}
    base_cfg = tmp_cfg(
        {**common, "run_dir": str(tmp_path / "base"), "record.pooling": base_pooling}
    )
    sae_cfg = tmp_cfg(
        {
            **common,
            **TOY_SAE,
            "run_dir": str(tmp_path / "sae"),
            "record.base.run_dir": str(tmp_path / "base"),
            "record.base.command": COMMAND,
            **{f"record.base.{k}": v for k, v in base.items()},
        }
    )
    return base_cfg, sae_cfg


def test_a_fresh_base_recording_is_linked_and_only_the_sae_layer_is_added(
    tmp_cfg, tmp_path, loaded, monkeypatch
):
    calls, stage = loaded
    base_cfg, sae_cfg = configs(tmp_cfg, tmp_path)
    stage(base_cfg)
    assert sum(calls) == 15  # the base run recorded its 15 clips
    calls.clear()
    monkeypatch.setattr(act, "record_target", lambda *a, **k: pytest.fail("neurons recorded"))
    summary = stage(sae_cfg)
    assert summary["base_run"] == str(base_cfg.run_path) and not summary["reused"]
    assert sum(calls) == 15  # the token capture's one pass, nothing more
    base, sae = (
        ActivationCache.load(RunDir(base_cfg.run_path)),
        ActivationCache.load(RunDir(sae_cfg.run_path)),
    )
    assert base.layers == ["proj"] and sae.layers == ["proj", "sae.proj.k2"]
    np.testing.assert_array_equal(np.asarray(sae["proj"]), np.asarray(base["proj"]))
    shard = base.files("proj")[1]
    assert os.path.samefile(base.folder / shard, sae.folder / shard)  # linked, not copied
    for name in ("clips.csv", "skipped.csv"):
        assert (sae_cfg.run_path / name).read_text() == (base_cfg.run_path / name).read_text()

    # another SAE run with the capture and the SAE cached: no forward pass at all
    monkeypatch.setattr(act, "load_target", lambda cfg: _no_forward())
    again = tmp_cfg({**_flat(sae_cfg), "run_dir": str(tmp_path / "again")})
    assert stage(again)["base_run"] == str(base_cfg.run_path)
    other = ActivationCache.load(RunDir(again.run_path))
    np.testing.assert_array_equal(np.asarray(other["proj"]), np.asarray(base["proj"]))
    np.testing.assert_array_equal(np.asarray(other["sae.proj.k2"]), np.asarray(sae["sae.proj.k2"]))


def _no_forward():
    t = toy_target()
    t.forward = lambda batch: pytest.fail("the model ran")  # type: ignore[method-assign]
    return t


def _flat(cfg):
    """The dotted overrides that rebuild ``cfg``'s settings used here."""
    return {
        "record.layers": cfg.record.layers,
        "model.name": cfg.model.name,
        "model.batch_size": cfg.model.batch_size,
        "record.base.run_dir": cfg.record.base.run_dir,
        "record.base.command": cfg.record.base.command,
        **{k: getattr(cfg.sae, k.split(".")[1]) for k in TOY_SAE},
    }


def test_a_missing_base_run_is_one_line_naming_the_command(tmp_cfg, tmp_path, loaded, monkeypatch):
    _, stage = loaded
    monkeypatch.setattr(act, "load_target", lambda cfg: pytest.fail("loaded a model"))
    _, sae_cfg = configs(tmp_cfg, tmp_path)
    with pytest.raises(ConfigError) as err:
        stage(sae_cfg)
    message = str(err.value)
    assert "\n" not in message and "has no finished recording" in message
    assert f"make it with: {COMMAND};" in message and str(tmp_path / "base") in message
    assert not (tmp_path / "base").exists()  # nothing made in its place


def test_a_stale_base_run_is_an_error_or_with_the_option_recorded_here(tmp_cfg, tmp_path, loaded):
    calls, stage = loaded
    base_cfg, sae_cfg = configs(tmp_cfg, tmp_path, base_pooling="max")  # another recording
    stage(base_cfg)
    with pytest.raises(ConfigError, match=f"recorded under another key.*make it with: {COMMAND}"):
        stage(sae_cfg)
    calls.clear()
    _, recording_here = configs(tmp_cfg, tmp_path, base_pooling="max", missing="record")
    summary = stage(recording_here)
    assert "base_run" not in summary
    assert sum(calls) == 2 * 15  # the neurons, then the token capture
    sae = ActivationCache.load(RunDir(recording_here.run_path))
    assert sae.layers == ["proj", "sae.proj.k2"]
    base = ActivationCache.load(RunDir(base_cfg.run_path))
    assert base.layers == ["proj"] and base.pooling == "max"  # the base run is left as it was


def test_a_base_run_is_never_the_run_itself(tmp_cfg, tmp_path, loaded):
    _, stage = loaded
    base_cfg, _ = configs(tmp_cfg, tmp_path)
    here = str(base_cfg.run_path)
    itself = tmp_cfg({**_flat(base_cfg), "run_dir": here, "record.base.run_dir": here})
    with pytest.raises(ConfigError, match="this run's own directory"):
        stage(itself)
