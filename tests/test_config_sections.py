"""andlib.config_sections: each departure from AND has a config switch that restores AND's
choice."""

from __future__ import annotations

import dataclasses

import pytest

from andlib.config import ConfigError, SimilarityConfig, load_config

PAPER = {
    "concepts.db_clips": "top_k",
    "concepts.tab_logit_scale": 1.0,
    "concepts.calibration_keep_contrasts": False,
    "concepts.calibration_strip_counts": False,
    "concepts.open_concepts_verbs": False,
    "concepts.adjective_prompt": "tone_emotion",
    "analysis.cluster_unit": "sentence",
    "concepts.db_default": "soft_wpmi",
    "concepts.db_template": "{}",
    "concepts.similarity_params.soft_wpmi_top_k": 100,
    "concepts.similarity_params.soft_wpmi_top_fraction": None,
    "concepts.similarity_params.soft_wpmi_prior": "neurons",
    "concepts.similarity_params.wpmi_top_k": 28,
    "concepts.similarity_params.wpmi_top_fraction": None,
    "concepts.similarity_params.wpmi_prior": "neurons",
    "prune.max_share": None,
}


DEFAULT = {
    "concepts.db_clips": "all",
    "concepts.tab_logit_scale": None,
    "concepts.calibration_keep_contrasts": True,
    "concepts.calibration_strip_counts": True,
    "concepts.open_concepts_verbs": True,
    "concepts.adjective_prompt": "acoustic",
    "analysis.cluster_unit": "caption",
    "concepts.db_default": "wpmi",
    "concepts.db_template": "This is an audio about {}",
    "concepts.similarity_params.soft_wpmi_top_k": 5,
    "concepts.similarity_params.soft_wpmi_top_fraction": 0.0025,
    "concepts.similarity_params.soft_wpmi_prior": "clips",
    "concepts.similarity_params.wpmi_top_k": 5,
    "concepts.similarity_params.wpmi_top_fraction": 0.0025,
    "concepts.similarity_params.wpmi_prior": "clips",
    "prune.max_share": 0.05,
}


def _get(cfg, dotted):
    obj = cfg
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def _flat(d, prefix=""):
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def test_defaults_keep_the_project_choices():
    cfg = load_config(None)
    assert {k: _get(cfg, k) for k in DEFAULT} == DEFAULT
    assert cfg.concepts.similarity_params == SimilarityConfig()


def test_paper_faithful_config_is_the_default_with_every_switch_at_the_paper_value():
    paper = load_config("configs/paper-faithful.yaml")
    default = load_config("configs/default.yaml")
    assert {k: _get(paper, k) for k in PAPER} == PAPER
    diff = {
        k
        for k, v in _flat(paper.to_dict()).items()
        if v != _flat(default.to_dict())[k] and k != "name"
    }
    assert diff == set(PAPER)  # nothing else differs from the offline default
    # AND reuses CLIP-Dissect's constants: those the defaults keep are the same
    same = set(_flat(dataclasses.asdict(SimilarityConfig()))) - {
        k.rsplit(".", 1)[1] for k in PAPER if "similarity_params" in k
    }
    paper_sp, default_sp = paper.concepts.similarity_params, SimilarityConfig()
    assert all(getattr(paper_sp, k) == getattr(default_sp, k) for k in same)


def test_switches_are_validated():
    with pytest.raises(ConfigError, match="concepts.db_clips"):
        load_config(None, {"concepts.db_clips": "some"})
    with pytest.raises(ConfigError, match="analysis.cluster_unit"):
        load_config(None, {"analysis.cluster_unit": "word"})
    with pytest.raises(ConfigError, match="concepts.adjective_prompt"):
        load_config(None, {"concepts.adjective_prompt": "emotion"})
    with pytest.raises(ConfigError, match="tab_logit_scale"):
        load_config(None, {"concepts.tab_logit_scale": 0})
    cfg = load_config(None, {"concepts.similarity_params.soft_wpmi_top_k": 7})
    assert cfg.concepts.similarity_params.soft_wpmi_top_k == 7


def test_paper_switches_are_named_in_the_docs():
    from andlib.config import PROJECT_ROOT

    doc = (PROJECT_ROOT / "docs" / "paper-faithful.md").read_text()
    for key in [*PAPER, "concepts.similarity_params"]:
        assert f"`{key}" in doc, key
    assert dataclasses.fields(SimilarityConfig)


def test_sae_section_is_validated_in_one_line():
    from andlib.config import ConfigError, load_config

    assert load_config(None, {}).sae.layers == []
    cfg = load_config(None, {"sae.layers": ["layers.2.out"], "sae.sweep_k": [16, 64]})
    assert (cfg.sae.k, cfg.sae.expansion, cfg.sae.token_budget) == (32, 8, 2_000_000)
    for override, message in (
        ({"sae.k": 0}, "sae.k: must be at least 1"),
        ({"sae.eval_fold": 4}, "fold 4 is also one of sae.train_folds"),
        ({"sae.layers": ["sae.layers.2.out.k32"]}, "is an SAE's layer"),
        ({"sae.max_passes": 0}, "sae.max_passes: must be positive"),
    ):
        with pytest.raises(ConfigError, match=message) as e:
            load_config(None, override)
        assert "\n" not in str(e.value)
