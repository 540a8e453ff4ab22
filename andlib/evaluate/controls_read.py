"""The control runs the evaluate stage reads, made by :mod:`andlib.pipeline` before it.

For every captioner of ``evaluate.captioners`` other than the configured one
(:func:`control_captioners`) and every rate of the caption-quality sweep (:func:`sweep_rates`)
the classifier layer alone was dissected again in a control run ``<run>/last_layer/<name>/``;
:func:`read_controls` reads their classifier rows of ``neurons.csv``. Re-exported by
:mod:`andlib.evaluate.scores`.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from andlib.config import Config
from andlib.store import CONTROLS, RunDir, control_run_path, read_neurons

# --------------------------------------------------------------------------------------------
# The control runs the evaluate stage reads (made by andlib.pipeline before this stage)
# --------------------------------------------------------------------------------------------


def control_captioners(cfg: Config) -> list[str]:
    """The captioners of ``evaluate.captioners`` other than the configured one: the classifier
    layer of each is read from its control run ``<run>/last_layer/<captioner>/``. None for a
    pitch network (its output bins are scored by :mod:`andlib.evaluate.pitch`)."""
    from andlib.models.families.registry import family_of

    if family_of(cfg.model.name).outputs == "pitch":
        return []
    return list(dict.fromkeys(c for c in cfg.evaluate.captioners if c != cfg.captioner.name))


def sweep_rates(cfg: Config) -> list[float]:
    """The caption-quality sweep's rates (``evaluate.caption_sweep_rates``), each read from the
    control run ``<run>/last_layer/sweep-<rate>/``; empty when ``metadata+acoustic`` is
    neither the configured captioner nor one of ``evaluate.captioners``, and for a pitch
    network."""
    from andlib.models.families.registry import family_of

    if family_of(cfg.model.name).outputs == "pitch":
        return []
    if "metadata+acoustic" not in [*cfg.evaluate.captioners, cfg.captioner.name]:
        return []
    return list(cfg.evaluate.caption_sweep_rates)


def sweep_control(rate: float) -> str:
    """The name of the sweep's control run at ``rate`` (``sweep-0.25``)."""
    return f"sweep-{rate:g}"


def read_controls(cfg: Config, run: RunDir) -> dict[str, pd.DataFrame]:
    """``{control name: its classifier-layer rows of neurons.csv}`` of the control runs of
    :func:`control_captioners` and :func:`sweep_rates` that hold a ``neurons.csv``."""
    layer = cfg.evaluate.classifier_layer
    names = [*control_captioners(cfg), *map(sweep_control, sweep_rates(cfg))]
    out = {}
    for name in names:
        path = control_run_path(run, name)
        if (path / "neurons.csv").exists():
            rows = read_neurons(RunDir(path))
            out[name] = rows[rows["layer"] == layer]
    return out


def _control_rows(controls: Mapping[str, pd.DataFrame] | None, name: str) -> pd.DataFrame:
    if not controls or name not in controls:
        raise FileNotFoundError(
            f"the control run {name!r} of the evaluate stage (in {CONTROLS}/) has no "
            "neurons.csv: run the evaluate stage through andlib.pipeline (python -m andlib "
            "evaluate, or pipeline.run_stage('evaluate', cfg)), which makes its control runs first"
        )
    return controls[name]
