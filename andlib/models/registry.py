"""Target models: anything that maps audio to activations.

A :class:`TargetModel` bundles a ``torch.nn.Module``, the preprocessing that turns a list of
waveforms into the module's forward arguments, the input sample rate and (for classifiers) the
label names. :func:`load_target` asks the model's family
(:func:`andlib.models.families.registry.family_of`) to load it:

- ``whisper-tiny.en``, ``whisper-base``, ``openai/whisper-*``: Whisper encoders
  (:mod:`andlib.models.families.whisper`);
- ``crepe-tiny``, ``crepe-full``, ``pesto``: pitch networks (:mod:`andlib.models.pitch`);
- ``trained:<strategy>``: the project's own small AST, trained offline on ESC-50 by
  :mod:`andlib.models.train` and saved with ``save_pretrained``;
- anything else: a Hugging Face id or a local ``save_pretrained`` directory (AST, wav2vec2,
  HuBERT, WavLM, ...) through ``AutoModelForAudioClassification`` / ``AutoModel`` and
  ``AutoFeatureExtractor`` (:func:`load_pretrained`);
- a plain ``nn.Module`` with a preprocessing callable (:meth:`TargetModel.from_module`).

Public surface: :class:`TargetModel`, :func:`load_target`, :func:`load_pretrained`.
"""

from __future__ import annotations

from andlib.config import Config
from andlib.models.base import ModelLoadError, TargetModel
from andlib.models.families.huggingface import load_pretrained
from andlib.models.families.registry import family_of

__all__ = ["ModelLoadError", "TargetModel", "load_pretrained", "load_target"]


def load_target(cfg: Config) -> TargetModel:
    """The model ``cfg.model.name`` names, loaded by its family; ``model.json`` records the
    name (``model_id``) and the family."""
    family = family_of(cfg.model.name)
    target = family.load(cfg)
    target.info["model_id"] = cfg.model.name
    target.info["family"] = family.name
    return target
