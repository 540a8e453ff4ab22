"""Sparse autoencoders (SAEs) on one layer's token-level activations, trained with SAELens.

An SAE maps each position's activation vector (``d_in``) to ``expansion x d_in`` latents and
back. It is trained by SAELens's own :class:`sae_lens.SAETrainer` on an iterator of activation
batches (:func:`training_batches`: float32 ``[batch, d_in]`` tensors drawn from the training
positions only, shuffled, repeated once the budget needs another pass), as a **BatchTopK** SAE
(:class:`sae_lens.BatchTopKTrainingSAE`: ``k`` latents active per position *on average over
a batch*). SAELens saves a trained BatchTopK SAE in its inference form, a **JumpReLU** SAE
whose one threshold is the global threshold learned in training; :func:`save_sae` writes that
form (SAELens's ``cfg.json`` + ``sae_weights.safetensors``), and every latent this project
records comes from :func:`load_sae` (``sae_lens.SAE.load_from_disk``) and :func:`encode`.
At inference the number of active latents per position varies around ``k``.

:func:`encode_clips` streams token-level rows once: the latents of every position, pooled per
clip like neurons (``mean``, ``max``, ``cls``), the positions each latent is active on (a latent
active on none is *dead*: :func:`dead_latents`), and on the evaluation fold's positions the
fraction of variance explained and L0 (:class:`EncodeStats`).

Public surface: :data:`ARCHITECTURE`, :data:`VERSION`, :func:`layer_name`, :func:`check_plan`,
:func:`passes`, :func:`training_batches`, :func:`train_sae`, :class:`Trained`,
:func:`save_sae`, :func:`load_sae`, :func:`encode`, :func:`encode_clips`, :class:`EncodeStats`,
:func:`dead_latents`, :func:`sae_key`, :func:`sae_lens_version`.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from andlib.config import ConfigError, stable_hash
from andlib.config_sections import SaeConfig
from andlib.layout import SAE_PREFIX
from andlib.store import atomic_write_text

log = logging.getLogger(__name__)

ARCHITECTURE = "batchtopk"
"""How the SAEs are trained (SAELens's name); they are saved and encoded as ``jumprelu``."""
VERSION = 1
"""Raised when a change of this code changes a trained SAE or its latents for one config."""
INFO_FILE = "andlib.json"
"""What the project adds beside SAELens's files: the training report."""
ENCODE_BATCH = 4096
"""Positions encoded at once (the latents of a batch are ``[4096, d_sae]`` float32)."""


def sae_lens_version() -> str:
    from importlib.metadata import version

    return version("sae-lens")


def layer_name(layer: str, k: int) -> str:
    """The virtual layer of the latents of ``layer``'s SAE with this ``k``: ``sae.<layer>.k<k>``
    (file-system safe whenever the layer key is)."""
    return f"{SAE_PREFIX}{layer}.k{k}"


def passes(token_budget: int, n_positions: int) -> float:
    """How many passes over ``n_positions`` training positions a budget makes."""
    return token_budget / max(1, n_positions)


def check_plan(
    sae: SaeConfig, widths: dict[str, int], n_train_positions: int | None = None
) -> None:
    """One-line :class:`ConfigError` for what the recording makes impossible: a layer of
    ``sae.layers`` that was not recorded (``widths``: recorded layer -> width), a ``k`` not
    below the dictionary size, a budget that needs more than ``sae.max_passes`` passes over the
    training positions (the message states the passes)."""
    for layer in sae.layers:
        if layer not in widths:
            raise ConfigError(
                f"sae.layers: {layer!r} was not recorded; recorded: {', '.join(widths)}"
            )
        d_sae = sae.expansion * widths[layer]
        for k in (sae.k, *sae.sweep_k):
            if k >= d_sae:
                raise ConfigError(
                    f"sae.k: {k} is not below the dictionary size of {layer!r} "
                    f"({sae.expansion} x {widths[layer]} = {d_sae})"
                )
    if n_train_positions is not None:
        n_passes = passes(sae.token_budget, n_train_positions)
        if n_passes > sae.max_passes:
            raise ConfigError(
                f"sae.token_budget: {sae.token_budget:,} positions is {n_passes:.1f} passes over "
                f"the {n_train_positions:,} training positions, above sae.max_passes="
                f"{sae.max_passes:g}; lower the budget or raise max_passes"
            )


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------


def training_batches(
    chunks: Callable[[np.random.Generator], Iterable[np.ndarray]],
    batch_size: int,
    seed: int,
    mix: int = 4,
) -> Iterator[torch.Tensor]:
    """Endless float32 ``[batch_size, d_in]`` batches for :class:`sae_lens.SAETrainer`.

    ``chunks(rng)`` yields the training positions of one pass as row blocks (a shard's
    training rows), in an order it may draw from ``rng``; ``mix`` blocks at a time are
    shuffled together, so a batch mixes clips. A new pass starts when one ends. Only what
    ``chunks`` yields is ever trained on: it alone selects the training positions.
    """
    rng = np.random.default_rng(seed)
    carry: np.ndarray | None = None
    while True:
        buffer: list[np.ndarray] = []
        n_rows = 0
        for block in chunks(rng):
            buffer.append(np.asarray(block, dtype=np.float32))
            n_rows += len(block)
            if len(buffer) >= mix:
                carry = yield from _emit(buffer, carry, batch_size, rng)
                buffer = []
        if buffer:
            carry = yield from _emit(buffer, carry, batch_size, rng)
        if n_rows == 0:
            raise ValueError("no training positions: the SAE has nothing to train on")


def _emit(
    buffer: list[np.ndarray], carry: np.ndarray | None, batch_size: int, rng: np.random.Generator
) -> Generator[torch.Tensor, None, np.ndarray | None]:
    """Yield full shuffled batches of the carried and buffered rows; return the rest."""
    rows = np.concatenate(([carry] if carry is not None else []) + buffer)
    rows = rows[rng.permutation(len(rows))]
    n_full = len(rows) // batch_size * batch_size
    for start in range(0, n_full, batch_size):
        yield torch.from_numpy(np.ascontiguousarray(rows[start : start + batch_size]))
    return rows[n_full:] if n_full < len(rows) else None


@dataclass
class Trained:
    """A trained SAE (SAELens's training object) and how it was trained."""

    sae: Any
    info: dict[str, Any] = field(default_factory=dict)


def train_sae(
    batches: Iterator[torch.Tensor],
    d_in: int,
    *,
    k: int,
    expansion: int,
    token_budget: int,
    batch_size: int,
    lr: float,
    seed: int,
    metadata: dict[str, Any] | None = None,
) -> Trained:
    """Train a BatchTopK SAE with SAELens's :class:`~sae_lens.SAETrainer` on ``batches``
    (:func:`training_batches`) for ``token_budget`` positions, on the CPU.

    Activations are scaled to a mean norm of ``sqrt(d_in)`` while training (SAELens's
    ``expected_average_only_in``, estimated on the first batches) and the scale is folded into
    the weights at the end, so the SAE reads raw activations.
    """
    from sae_lens import BatchTopKTrainingSAE, BatchTopKTrainingSAEConfig, SAETrainer
    from sae_lens.config import LoggingConfig, SAETrainerConfig

    torch.manual_seed(seed)
    d_sae = expansion * d_in
    sae_cfg = BatchTopKTrainingSAEConfig(
        d_in=d_in,
        d_sae=d_sae,
        k=k,
        dtype="float32",
        device="cpu",
        normalize_activations="expected_average_only_in",
    )
    for name, value in (metadata or {}).items():
        sae_cfg.metadata[name] = value
    sae = BatchTopKTrainingSAE(sae_cfg)
    steps = max(1, token_budget // batch_size)
    trainer_cfg = SAETrainerConfig(
        total_training_samples=steps * batch_size,
        train_batch_size_samples=batch_size,
        lr=lr,
        lr_end=lr,
        lr_warm_up_steps=max(1, steps // 20),
        device="cpu",
        dead_feature_window=max(1, min(1000, steps // 4)),
        feature_sampling_window=max(1, min(2000, steps)),
        n_batches_for_norm_estimate=max(1, min(20, steps)),
        logger=LoggingConfig(log_to_wandb=False),
    )
    t0 = time.perf_counter()
    trainer = SAETrainer(cfg=trainer_cfg, sae=sae, data_provider=batches)
    trained = trainer.fit()
    seconds = time.perf_counter() - t0
    info = {
        "architecture": ARCHITECTURE,
        "saved_as": "jumprelu",
        "k": k,
        "expansion": expansion,
        "d_in": d_in,
        "d_sae": d_sae,
        "steps": steps,
        "positions_trained": steps * batch_size,
        "batch_size": batch_size,
        "lr": lr,
        "seed": seed,
        "train_seconds": round(seconds, 1),
        "torch_threads": torch.get_num_threads(),
        "sae_lens": sae_lens_version(),
    }
    return Trained(trained, info)


def save_sae(trained: Trained, folder: Path, extra: dict[str, Any] | None = None) -> Path:
    """Write the SAE in SAELens's inference format (``cfg.json``, ``sae_weights.safetensors``)
    plus :data:`INFO_FILE` (written last: a folder without it is unfinished)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    trained.sae.save_inference_model(str(folder))
    info = {**trained.info, **(extra or {})}
    atomic_write_text(folder / INFO_FILE, json.dumps(info, indent=2, sort_keys=True))
    return folder


def is_saved(folder: Path) -> bool:
    """True when ``folder`` holds a finished :func:`save_sae`."""
    return (Path(folder) / INFO_FILE).exists()


def read_info(folder: Path) -> dict[str, Any]:
    return json.loads((Path(folder) / INFO_FILE).read_text())


def load_sae(folder: Path) -> Any:
    """The saved SAE, loaded by SAELens (``SAE.load_from_disk``), in eval mode on the CPU."""
    from sae_lens import SAE

    sae = SAE.load_from_disk(str(folder), device="cpu")
    sae.eval()
    return sae


def sae_key(capture_key: str, sae: SaeConfig, k: int, seed: int) -> str:
    """The cache key of one SAE: the layer's token-level recording (``capture_key``), the
    SAE settings that shape training, the seed, SAELens's version and :data:`VERSION`."""
    return stable_hash(
        {
            "capture": capture_key,
            "architecture": ARCHITECTURE,
            "k": k,
            "expansion": sae.expansion,
            "token_budget": sae.token_budget,
            "train_folds": sorted(sae.train_folds),
            "batch_size": sae.batch_size,
            "lr": sae.lr,
            "seed": seed,
            "sae_lens": sae_lens_version(),
            "version": VERSION,
        }
    )


# --------------------------------------------------------------------------------------------
# Encoding
# --------------------------------------------------------------------------------------------


def encode(sae: Any, x: np.ndarray | torch.Tensor) -> torch.Tensor:
    """The latents ``[n, d_sae]`` (float32) of positions ``x`` ``[n, d_in]``."""
    t = torch.as_tensor(np.asarray(x, dtype=np.float32)) if isinstance(x, np.ndarray) else x
    if not len(t):
        return torch.zeros(0, int(sae.cfg.d_sae))
    with torch.inference_mode():
        parts = [
            sae.encode(t[i : i + ENCODE_BATCH].float()) for i in range(0, len(t), ENCODE_BATCH)
        ]
    return torch.cat(parts)


@dataclass
class EncodeStats:
    """What one streaming pass of :func:`encode_clips` measured."""

    active_positions: np.ndarray
    """``[d_sae]`` how many positions (of every clip) each latent is active on."""
    n_positions: int
    eval_positions: int
    eval_l0: float
    """Mean number of active latents per position of the evaluation clips."""
    variance_explained: float
    """``1 - SSE / total variance`` of the reconstruction on the evaluation clips."""

    @property
    def dead(self) -> np.ndarray:
        return dead_latents(self.active_positions)

    def report(self) -> dict[str, Any]:
        return {
            "n_positions": self.n_positions,
            "eval_positions": self.eval_positions,
            "eval_l0": round(self.eval_l0, 3),
            "variance_explained": round(self.variance_explained, 4),
            "n_dead": int(len(self.dead)),
            "dead_share": round(len(self.dead) / max(1, len(self.active_positions)), 4),
        }


def dead_latents(active_positions: np.ndarray) -> np.ndarray:
    """The latents active on no position (indices, ascending)."""
    return np.flatnonzero(np.asarray(active_positions) == 0)


def encode_clips(
    sae: Any,
    blocks: Iterable[tuple[np.ndarray, np.ndarray, np.ndarray]],
    n_clips: int,
    pooling: str,
    eval_clips: Sequence[bool] | np.ndarray,
) -> tuple[np.ndarray, EncodeStats]:
    """Encode every position once and pool the latents per clip.

    ``blocks`` yields ``(rows [n, d_in], clip index [n], position [n])`` in any order (a clip
    may span blocks). Returns the pooled latents ``[n_clips, d_sae]`` float32 (``mean`` over
    the clip's positions, ``max``, or ``cls``: position 0) and the :class:`EncodeStats` (L0
    and variance explained over the positions of the clips where ``eval_clips`` is true).
    """
    d_sae = int(sae.cfg.d_sae)
    is_eval = torch.as_tensor(np.asarray(eval_clips, dtype=bool))
    total = torch.zeros(n_clips, d_sae, dtype=torch.float64)
    if pooling == "max":
        total.fill_(float("-inf"))
    counts = torch.zeros(n_clips, dtype=torch.float64)
    active = torch.zeros(d_sae, dtype=torch.int64)
    n_pos = n_eval = 0
    l0_sum = sse = sum_x = sum_x2 = 0.0
    sum_vec: torch.Tensor | None = None
    with torch.inference_mode():
        for rows, clips, positions in blocks:
            for s in range(0, len(rows), ENCODE_BATCH):
                x = torch.as_tensor(np.asarray(rows[s : s + ENCODE_BATCH], dtype=np.float32))
                c = torch.as_tensor(np.asarray(clips[s : s + ENCODE_BATCH], dtype=np.int64))
                p = torch.as_tensor(np.asarray(positions[s : s + ENCODE_BATCH], dtype=np.int64))
                z = sae.encode(x)
                on = z != 0
                active += on.sum(0)
                n_pos += len(x)
                if pooling == "mean":
                    total.index_add_(0, c, z.double())
                    counts.index_add_(0, c, torch.ones(len(c), dtype=torch.float64))
                elif pooling == "max":
                    idx = c[:, None].expand(-1, d_sae)
                    total.scatter_reduce_(0, idx, z.double(), reduce="amax", include_self=True)
                    counts.index_add_(0, c, torch.ones(len(c), dtype=torch.float64))
                else:
                    first = p == 0
                    total[c[first]] = z[first].double()
                    counts[c[first]] = 1.0
                ev = is_eval[c]
                if bool(ev.any()):
                    xe, ze = x[ev].double(), z[ev]
                    recon = sae.decode(ze).double()
                    sse += float(((xe - recon) ** 2).sum())
                    sum_vec = xe.sum(0) if sum_vec is None else sum_vec + xe.sum(0)
                    sum_x2 += float((xe**2).sum())
                    l0_sum += float((ze != 0).sum())
                    n_eval += len(xe)
    if bool((counts == 0).any()):
        missing = int((counts == 0).sum())
        raise ValueError(f"{missing} clip(s) have no positions to pool")
    pooled = total / counts[:, None] if pooling == "mean" else total
    if n_eval and sum_vec is not None:
        sum_x = float((sum_vec**2).sum()) / n_eval
        variance = sum_x2 - sum_x
        explained = 1.0 - sse / variance if variance > 0 else float("nan")
    else:
        explained = float("nan")
    stats = EncodeStats(
        active_positions=active.numpy(),
        n_positions=n_pos,
        eval_positions=n_eval,
        eval_l0=l0_sum / n_eval if n_eval else float("nan"),
        variance_explained=explained,
    )
    return pooled.float().numpy(), stats
