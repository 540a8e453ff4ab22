"""The generic family: any Hugging Face audio model, by hub id or ``save_pretrained`` folder.

AST, wav2vec2, HuBERT, WavLM, ... load through ``AutoModelForAudioClassification`` (when
the checkpoint has a classification head, or ``model.kind: classification``) or ``AutoModel``
with their ``AutoFeatureExtractor``. It is the catch-all family: it answers to every name no
other family claims. Its presets are ``preset:ast`` and ``preset:wav2vec2``.

Public surface: :data:`FAMILY`, :func:`load_pretrained`, :data:`PRESETS`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from andlib.config import Config
from andlib.models.base import (
    BlockPreset,
    ModelLoadError,
    Preprocess,
    TargetModel,
    resolve_device,
)
from andlib.models.families.base import Family

PRESETS: dict[str, BlockPreset] = {
    # transformers 5.x names first, 4.x (``encoder.layer.i.attention.output.dense``, ...) after.
    "ast": BlockPreset(
        containers=("layers", "encoder.layer"),
        parts={
            "attn": ("attention.o_proj", "attention.output.dense"),
            "mlp": ("mlp.activation_fn", "intermediate.intermediate_act_fn", "intermediate"),
            "out": ("",),
        },
    ),
    # wav2vec2, HuBERT, WavLM, data2vec-audio, ... (with or without a classification head).
    "wav2vec2": BlockPreset(
        containers=("encoder.layers",),
        parts={"mlp": ("feed_forward.intermediate_act_fn",), "out": ("",)},
    ),
}


def _hf_preprocess(extractor: Any, sample_rate: int) -> Preprocess:
    """Feature extractor call for a batch; pads variable lengths where the extractor can."""
    name = type(extractor).__name__

    def preprocess(batch: Sequence[np.ndarray]) -> dict[str, torch.Tensor]:
        arrays = [np.asarray(a, dtype=np.float32) for a in batch]
        kwargs: dict[str, Any] = {"sampling_rate": sample_rate, "return_tensors": "pt"}
        if "AST" not in name:  # AST pads/truncates to max_length itself
            kwargs["padding"] = True
        feats = extractor(arrays, **kwargs)
        return {k: v for k, v in feats.items() if isinstance(v, torch.Tensor)}

    return preprocess


def load_pretrained(
    name_or_path: str | os.PathLike,
    kind: str = "auto",
    device: str = "auto",
    dtype: str = "float32",
) -> TargetModel:
    """Load a transformers audio model (hub id or ``save_pretrained`` folder) with its extractor."""
    from transformers import (
        AutoConfig,
        AutoFeatureExtractor,
        AutoModel,
        AutoModelForAudioClassification,
    )

    src = str(name_or_path)
    try:
        config = AutoConfig.from_pretrained(src)
        extractor = AutoFeatureExtractor.from_pretrained(src)
    except Exception as exc:
        hint = ""
        if not Path(src).exists():
            hint = (
                " (not a local folder; loading a hub id needs network access and "
                "HF_HUB_OFFLINE unset, or the model in the local Hugging Face cache)"
            )
        raise ModelLoadError(
            f"cannot load model {src!r}: {type(exc).__name__}: {exc}{hint}"
        ) from exc
    archs = getattr(config, "architectures", None) or []
    if kind == "auto":
        kind = "classification" if any("Classification" in a for a in archs) else "encoder"
    loader = AutoModelForAudioClassification if kind == "classification" else AutoModel
    try:
        module = loader.from_pretrained(src)
    except Exception as exc:
        raise ModelLoadError(
            f"cannot load model {src!r} as {kind}: {type(exc).__name__}: {exc}"
        ) from exc
    torch_dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[dtype]
    dev = resolve_device(device)
    module.to(dev, torch_dtype).eval()
    sample_rate = int(getattr(extractor, "sampling_rate", 16000))
    labels = None
    if kind == "classification":
        id2label = getattr(module.config, "id2label", None) or {}
        labels = [id2label[i] for i in sorted(id2label)]
    info: dict[str, Any] = {
        "source": src,
        "kind": kind,
        "model_type": getattr(config, "model_type", None),
        "n_parameters": int(sum(p.numel() for p in module.parameters())),
        "sample_rate": sample_rate,
    }
    meta = Path(src) / "andlib_training.json"
    if meta.exists():  # a model this project trained: carry its metrics into model.json
        info.update(json.loads(meta.read_text()))
    return TargetModel(
        module,
        _hf_preprocess(extractor, sample_rate),
        sample_rate,
        src,
        labels,
        info,
        dev,
        torch_dtype,
    )


def _load(cfg: Config) -> TargetModel:
    return load_pretrained(cfg.model.name, cfg.model.kind, cfg.model.device, cfg.model.dtype)


FAMILY = Family(
    name="huggingface",
    matches=lambda name: True,
    load=_load,
    names=("<hub id>", "<save_pretrained folder>"),
    presets=PRESETS,
)
