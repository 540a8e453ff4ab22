"""andlib.models.families.base: what a model family declares."""

from __future__ import annotations

import pytest

from andlib.models.families.base import OUTPUTS, Family


def _never(cfg):
    raise AssertionError("not loaded in this test")


def test_a_family_answers_to_its_names_and_has_no_settings_by_default(tmp_cfg):
    fam = Family(name="toy", matches=lambda name: name.startswith("toy:"), load=_never)
    assert fam.matches("toy:1") and not fam.matches("trained:supervised")
    assert fam.outputs == "classes" and not fam.trains
    cfg = tmp_cfg()
    assert fam.record_settings(cfg) == {} and fam.settings(cfg) is None


def test_a_family_block_is_read_from_the_model_section(tmp_cfg):
    fam = Family(name="w", matches=lambda n: True, load=_never, options="whisper")
    cfg = tmp_cfg()
    assert fam.settings(cfg) is cfg.model.whisper


def test_outputs_must_be_a_known_kind():
    assert OUTPUTS == ("classes", "pitch")
    with pytest.raises(ValueError, match="outputs 'logits'"):
        Family(name="bad", matches=lambda n: True, load=_never, outputs="logits")
