"""The evaluate stage's control runs: what :mod:`andlib.pipeline` does to make them.

A control run is a run directory of its own, ``<run>/last_layer/<name>/``
(:func:`andlib.store.control_run_path`), holding the run's classifier layer only; the pipeline
runs ordinary stages there (:func:`andlib.pipeline.run_controls`). Two steps differ from a
plain run, and live here:

- :func:`record_stage`, its ``record``: copies ``clips.csv``, ``model.json``, ``features.csv``,
  ``skipped.csv``, the classifier layer's activations and its rows of ``neuron_topk.csv`` from
  the run (the layer was recorded there already);
- :func:`sweep_caption_stage`, the ``caption`` of a caption-quality sweep's control run: the
  ``acoustic`` control run's captions after a ``metadata+acoustic`` source sentence whose
  source is wrong for a seeded share of the clips (:func:`corrupt_sources`).

Each is keyed like any stage (:class:`andlib.store.Stage`) and skipped when fresh. TAB is off in
control runs (:func:`control_config`): CLAP reads audio, not captions, so the evaluate stage
takes the run's own TAB result for every captioner.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from andlib.config import Config
from andlib.describe.wording import identity_sentence
from andlib.store import (
    ActivationCache,
    RunDir,
    Stage,
    activation_index,
    control_run_path,
    input_fingerprint,
    read_captions,
    read_clips,
    read_topk,
)

COPIED = ("clips.csv", "model.json", "features.csv", "skipped.csv")
"""The run's files a control run gets as they are (those the run has)."""


def control_config(cfg: Config, run: RunDir, name: str, captioner: str) -> Config:
    """The config of the control run ``name``: the run's, in ``<run>/last_layer/<name>/``,
    with ``captioner.name`` set to ``captioner`` and TAB off."""
    return dataclasses.replace(
        cfg,
        run_dir=str(control_run_path(run, name)),
        captioner=dataclasses.replace(cfg.captioner, name=captioner),
        concepts=dataclasses.replace(cfg.concepts, clap_model=None),
    )


def parent_run(control: RunDir) -> RunDir:
    """The run a control run belongs to (``<run>/last_layer/<name>/`` -> ``<run>``)."""
    return RunDir(control.path.parent.parent)


def _parent_record(cfg: Config, control: RunDir) -> dict[str, Any]:
    parent = parent_run(control)
    names = [*COPIED, "neuron_topk.csv", "activations/index.json"]
    return {
        "parent_record": parent.stage_key("record"),
        "parent_inputs": input_fingerprint(parent, names),
    }


RECORD = Stage("record", sections=("evaluate.classifier_layer",), settings=_parent_record)
"""A control run's ``record`` key: the classifier layer, the run's record key and the
fingerprints of the files copied from it."""


def record_stage(cfg: Config, control: RunDir) -> dict[str, Any]:
    """A control run's ``record``: the run's classifier layer (``cfg`` is the control run's
    config, :func:`control_config`)."""
    key = RECORD.key(cfg, control)
    if control.is_fresh(RECORD.name, key):
        return {"record": "up to date"}
    run, layer = parent_run(control), cfg.evaluate.classifier_layer
    index = activation_index(run)
    if layer not in index["layers"]:
        raise KeyError(f"evaluate.classifier_layer: {layer!r} was not recorded in {run.path}")
    outputs = [name for name in COPIED if run.exists(name)]
    for name in outputs:
        shutil.copyfile(run / name, control / name)
    entry = index["layers"][layer]
    (control / "activations").mkdir(exist_ok=True)
    files = ActivationCache.load(run, index).files(layer)  # the layer's shards, or its one file
    for name in files:
        (control / "activations" / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(run / "activations" / name, control / "activations" / name)
    control.write_json(
        "activations/index.json", {"clip_ids": index["clip_ids"], "layers": {layer: entry}}
    )
    outputs += ["activations/index.json", *(f"activations/{name}" for name in files)]
    if run.exists("neuron_topk.csv"):
        topk = read_topk(run)
        control.write_csv("neuron_topk.csv", topk[topk["layer"].astype(str) == layer])
        outputs.append("neuron_topk.csv")
    control.mark_done(RECORD.name, key, outputs=outputs)
    return {"record": layer}


# --------------------------------------------------------------------------------------------
# The caption-quality sweep's captions
# --------------------------------------------------------------------------------------------

SWEEP_BASE = "acoustic"
"""The control run whose captions the sweep corrupts: its source sentence is the only source."""


def corrupt_sources(
    categories: Sequence[str], classes: Sequence[str], rate: float, seed: int
) -> tuple[list[str], np.ndarray]:
    """Replace the source of exactly ``round(rate * n)`` clips by a wrong class.

    The clips are a seeded random choice; each replacement is drawn uniformly from the classes
    other than the clip's own. Returns the new categories and the mask of replaced clips.
    """
    rng = np.random.default_rng([seed, int(round(rate * 1000))])
    n = len(categories)
    n_wrong = int(round(rate * n))
    wrong = np.zeros(n, dtype=bool)
    wrong[rng.permutation(n)[:n_wrong]] = True
    out = [str(c) for c in categories]
    for i in np.flatnonzero(wrong):
        others = [c for c in classes if c != out[i]]
        out[i] = others[int(rng.integers(len(others)))]
    return out, wrong


def _sweep_base(cfg: Config, control: RunDir) -> dict[str, Any]:
    parent = parent_run(control)
    base = RunDir(control_run_path(parent, SWEEP_BASE))
    return {"base": base.stage_key("caption"), "clips": input_fingerprint(parent, ["clips.csv"])}


SWEEP_CAPTION = Stage("caption", sections=("seed", "captioner.name"), settings=_sweep_base)
"""A sweep control run's ``caption`` key: the seed, its captioner name (which holds the
rate), the ``acoustic`` control run's caption key and the run's ``clips.csv``."""


def sweep_caption_stage(cfg: Config, control: RunDir, rate: float) -> dict[str, Any]:
    """``captions.csv`` of the sweep's control run at ``rate``: each clip's ``acoustic``
    caption after the ``metadata+acoustic`` source sentence of its category, that category
    replaced by a wrong class for a seeded share ``rate`` of the clips."""
    key = SWEEP_CAPTION.key(cfg, control)
    if control.is_fresh(SWEEP_CAPTION.name, key):
        return {"caption": "up to date"}
    run = parent_run(control)
    base = RunDir(control_run_path(run, SWEEP_BASE))
    captions = read_captions(base)
    clips = read_clips(run, captions["clip_id"].tolist())
    categories = clips["category"].fillna("").astype(str).tolist()
    classes = sorted({c for c in categories if c})
    wrong, _ = corrupt_sources(categories, classes, float(rate), cfg.seed)
    texts = [
        f"{identity_sentence(c)} {t}".strip()
        for c, t in zip(wrong, captions["caption"].astype(str), strict=True)
    ]
    control.write_csv(
        "captions.csv", pd.DataFrame({"clip_id": captions["clip_id"], "caption": texts})
    )
    control.mark_done(SWEEP_CAPTION.name, key, outputs=["captions.csv"])
    return {"caption": f"acoustic with {rate:g} of the sources wrong"}
