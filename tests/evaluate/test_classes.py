"""andlib.evaluate.classes: probing-set labels mapped onto the model's classes only when certain."""

from __future__ import annotations

import pytest

from andlib import store
from andlib.evaluate import scores as evaluate
from andlib.store import RunDir
from tests.evaluate.test_scores import CLASSES, FakeEmbedder, make_run


@pytest.mark.parametrize(
    "label, expected",
    [
        ("001 - Dog bark", "dog"),  # ESC-10's original folder names
        ("004 - Baby cry", "crying_baby"),
        ("006 - Person sneeze", "sneezing"),
        ("010 - Fire crackling", "crackling_fire"),
        ("Sea_Waves", "sea_waves"),
        ("water", None),  # water_drops or pouring_water: not certain
        ("engine idling loudly", "engine"),
        ("spaceship", None),
    ],
)
def test_probing_labels_map_onto_the_models_classes_only_when_certain(label, expected):
    from andlib.describe.concepts import load_concept_set

    esc50 = load_concept_set("esc50")
    i = evaluate.match_class(label, esc50)
    assert (esc50[i] if i is not None else None) == expected
    assert evaluate.normalize_label("001 - Dog bark") == "dog bark"


def _relabel(run: RunDir, categories: dict[str, str], label_names: list[str] | None) -> None:
    """Rename the probing set's categories (dropped when mapped to ""), set model.json names."""
    clips = store.read_clips(run)
    clips["category"] = clips["category"].map(lambda c: categories.get(c, c))
    run.write_csv("clips.csv", clips)
    info = run.read_json("model.json")
    if label_names is not None:
        info["label_names"] = label_names
    run.write_json("model.json", info)


def test_generic_label_names_map_to_the_probing_set_when_certain(tmp_path):
    run = make_run(tmp_path / "run", tmp_path / "audio")
    _relabel(run, {}, [f"LABEL_{i}" for i in range(4)])
    assert evaluate.class_names(run, 4) == CLASSES  # clips.csv names every output 0..3


def test_generic_label_names_without_a_certain_mapping_say_how_to_supply_one(tmp_path, tmp_cfg):
    from andlib.cli import error_message, project_error
    from andlib.config import ConfigError

    run = make_run(tmp_path / "run", tmp_path / "audio")
    _relabel(run, {"crying_baby": ""}, [f"LABEL_{i}" for i in range(4)])  # output 3: no label
    cfg = tmp_cfg({"evaluate.captioners": []})
    with pytest.raises(evaluate.LabelMapError, match="evaluate.label_map") as err:
        evaluate.last_layer_accuracy(cfg, run, FakeEmbedder())
    assert "LABEL_0" in str(err.value)
    assert isinstance(err.value, ConfigError) and project_error(err.value)
    assert "\n" not in error_message(err.value)
    # With the mapping supplied (probing label -> output index), those outputs are scored.
    mapped = tmp_cfg(
        {"evaluate.captioners": [], "evaluate.label_map": {"dog": 0, "rain": "LABEL_1"}}
    )
    truth = evaluate.classifier_truth(mapped, run, 4)
    assert truth.names == ["dog", "rain", None, None] and truth.n_left_out == 2
    results = evaluate.last_layer_accuracy(mapped, run, FakeEmbedder())
    s = results[mapped.captioner.name]["db_soft_wpmi"]
    assert s["n_neurons"] == 2 and s["top1"] == 1.0 and s["n_left_out"] == 2


def test_probing_set_with_other_class_names_scores_only_the_classes_it_holds(tmp_path, tmp_cfg):
    """ESC-10's original release against an ESC-50 model: "001 - Dog bark" is the model's dog;
    a class without clips is left out and counted, not scored as a miss."""
    run = make_run(tmp_path / "run", tmp_path / "audio")
    _relabel(
        run,
        {"dog": "001 - Dog bark", "rain": "002 - Rain", "crying_baby": "004 - Baby cry",
         "water_drops": "011 - Spaceship"},
        CLASSES,
    )  # fmt: skip
    cfg = tmp_cfg({"evaluate.captioners": []})
    truth = evaluate.classifier_truth(cfg, run, 4)
    assert truth.names == ["dog", "rain", None, "crying_baby"]
    assert truth.mapping["011 - Spaceship"] is None
    results = evaluate.last_layer_accuracy(cfg, run, FakeEmbedder())
    s = results[cfg.captioner.name]["db_soft_wpmi"]
    assert s["n_neurons"] == 3 and s["top1"] == 1.0 and s["n_left_out"] == 1
    assert "do not occur in the probing set" in s["left_out_reason"]
    assert "011 - Spaceship" in s["left_out_reason"]
    from andlib.report import plots

    fig = plots.last_layer_table(results)
    title = fig.axes[0].get_title()
    plots.plt.close(fig)
    assert "3 class neurons; 1 whose class is not in the probing set left out" in title
    # evaluate.label_map overrides the match: "002 - Rain" declared no class of the model.
    cfg = tmp_cfg({"evaluate.captioners": [], "evaluate.label_map": {"002 - Rain": None}})
    assert evaluate.classifier_truth(cfg, run, 4).names == ["dog", None, None, "crying_baby"]


def test_probing_set_whose_labels_match_no_class_is_an_error(tmp_path, tmp_cfg):
    run = make_run(tmp_path / "run", tmp_path / "audio")
    _relabel(
        run,
        {"dog": "spaceship", "rain": "laser", "water_drops": "robot", "crying_baby": "alien"},
        CLASSES,
    )
    cfg = tmp_cfg({"evaluate.captioners": []})
    with pytest.raises(evaluate.LabelMapError, match="none of the probing set's 4 labels"):
        evaluate.last_layer_accuracy(cfg, run, FakeEmbedder())


def test_label_map_values_must_name_a_class_or_an_output(tmp_path, tmp_cfg):
    from andlib.config import ConfigError

    run = make_run(tmp_path / "run", tmp_path / "audio")
    for bad, message in (({"dog": "cat"}, "not a class"), ({"dog": 7}, "does not exist")):
        cfg = tmp_cfg({"evaluate.label_map": bad})
        with pytest.raises(evaluate.LabelMapError, match=message):
            evaluate.classifier_truth(cfg, run, 4)
    with pytest.raises(ConfigError, match="evaluate.label_map"):
        tmp_cfg({"evaluate.label_map": {"dog": [1, 2]}})
