"""A probe head for a frozen encoder: a linear classifier on the pooled output of one block.

So that the last-layer evaluation and pruning apply to an encoder without a classification
head, the encoder gets one: a multinomial logistic regression on the mean-pooled output of
one block (``layers.<i>.out``), trained on the training folds only. The block is chosen by
cross-validation inside the training folds (leave one training fold out), never on the
held-out fold, which is used once, to report the head's held-out accuracy. Standardisation
(fitted on the training rows) is folded into the linear layer, so the head is one
``nn.Linear`` whose 50 logits (ESC-50) are the ``classifier`` neurons.

Pure functions: :func:`block_features` (pooled block outputs of every clip),
:func:`cv_accuracy`, :func:`fit_linear`, :func:`train_probe` (-> :class:`Probe`);
:func:`save_probe` / :func:`load_probe` store it as safetensors plus a JSON record.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

VERSION = 2
"""Part of a stored head's key: raise it when training changes."""

log = logging.getLogger(__name__)


@dataclass
class Probe:
    """A trained probe head and how it was chosen."""

    layer: str
    """The block whose pooled output it reads (``layers.<i>.out``)."""
    weight: np.ndarray
    """``[n_classes, width]`` float32 (standardisation folded in)."""
    bias: np.ndarray
    """``[n_classes]`` float32."""
    classes: list[str]
    cv_accuracy: dict[str, float]
    """Per block: mean accuracy over the leave-one-training-fold-out splits."""
    heldout_accuracy: float
    """Accuracy on the held-out fold (reported, never used for a choice)."""
    heldout_per_layer: dict[str, float] = field(default_factory=dict)
    """Per block, the held-out accuracy a head on that block would have (for the figure)."""
    n_train: int = 0
    n_heldout: int = 0
    train_folds: list[int] = field(default_factory=list)
    heldout_fold: int | None = None
    c: float = 1.0

    @property
    def block(self) -> int:
        return int(self.layer.split(".")[1])

    def record(self) -> dict[str, Any]:
        """Everything but the weights (JSON)."""
        d = asdict(self)
        del d["weight"], d["bias"]
        return d


def block_features(
    pooled: Callable[[list[np.ndarray]], dict[str, torch.Tensor]],
    audio: Sequence[np.ndarray],
    batch_size: int = 16,
) -> dict[str, np.ndarray]:
    """``{layer: [n_clips, width]}`` on every clip, in order: ``pooled(batch)`` gives the
    mean-pooled block outputs of a batch of waveforms (``{"layers.0.out": [B, width], ...}``,
    e.g. :meth:`~andlib.models.families.whisper.WhisperTarget.pooled_blocks`)."""
    out: dict[str, list[np.ndarray]] = {}
    with torch.inference_mode():
        for start in range(0, len(audio), batch_size):
            for k, v in pooled(list(audio[start : start + batch_size])).items():
                out.setdefault(k, []).append(v.float().cpu().numpy())
    return {k: np.concatenate(v) for k, v in out.items()}


def fit_linear(
    x: np.ndarray, y: np.ndarray, c: float, max_iter: int = 500
) -> tuple[np.ndarray, np.ndarray]:
    """A multinomial logistic regression on standardised ``x`` (the objective of
    scikit-learn's ``LogisticRegression(C=c)``: ``C`` times the summed cross-entropy plus half
    the squared weights; full-batch L-BFGS in float64), folded into one linear map over the
    raw features: ``(weight [n_classes, width], bias [n_classes])``. Classes are
    ``0..max(y)``; a class without a training row gets a very low bias. Deterministic."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    mu, sd = x.mean(0), x.std(0)
    sd[sd < 1e-8] = 1.0
    present = np.unique(y)
    index = {int(k): i for i, k in enumerate(present)}
    xt = torch.from_numpy((x - mu) / sd)
    yt = torch.tensor([index[int(k)] for k in y])
    w = torch.zeros(len(present), x.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros(len(present), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS(
        [w, b],
        lr=1.0,
        max_iter=max_iter,
        tolerance_grad=1e-7,
        tolerance_change=1e-12,
        history_size=20,
        line_search_fn="strong_wolfe",
    )
    scale = 1.0 / (c * len(y))  # the mean loss plus |w|^2 / (2 C n): sklearn's optimum

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(xt @ w.T + b, yt) + 0.5 * scale * (w * w).sum()
        loss.backward()
        return loss

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small matrices: a second thread only waits (4x slower on a busy CPU)
    try:
        with torch.enable_grad():
            opt.step(closure)
    finally:
        torch.set_num_threads(threads)
    coef, intercept = w.detach().numpy(), b.detach().numpy()
    n_classes = int(y.max()) + 1
    weight = np.zeros((n_classes, x.shape[1]))
    bias = np.full(n_classes, -1e4)
    weight[present] = coef / sd
    bias[present] = intercept - (coef / sd) @ mu
    return weight.astype(np.float32), bias.astype(np.float32)


def _accuracy(weight: np.ndarray, bias: np.ndarray, x: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(np.argmax(x @ weight.T + bias, axis=1) == y))


def cv_accuracy(x: np.ndarray, y: np.ndarray, folds: np.ndarray, c: float) -> float:
    """Mean accuracy of :func:`fit_linear` over leave-one-fold-out splits of ``folds``."""
    scores = []
    for f in np.unique(folds):
        test = folds == f
        weight, bias = fit_linear(x[~test], y[~test], c)
        scores.append(_accuracy(weight, bias, x[test], y[test]))
    return float(np.mean(scores))


def train_probe(
    features: dict[str, np.ndarray],
    labels: np.ndarray,
    folds: np.ndarray,
    classes: list[str],
    train_folds: Sequence[int],
    heldout_fold: int,
    c: float = 1.0,
) -> Probe:
    """Choose the block by cross-validation inside ``train_folds``, fit the head on all of
    them, and report its accuracy on ``heldout_fold``. Rows of other folds and the held-out
    labels never enter a fit or a choice."""
    labels, folds = np.asarray(labels), np.asarray(folds)
    train = np.isin(folds, list(train_folds))
    held = folds == heldout_fold
    if len(np.unique(folds[train])) < 2:
        raise ValueError(f"the probe head needs at least 2 training folds, got {train_folds}")
    cv = {}
    for layer, x in features.items():
        t0 = time.perf_counter()
        cv[layer] = cv_accuracy(x[train], labels[train], folds[train], c)
        log.info("probe %s: CV accuracy %.3f (%.1f s)", layer, cv[layer], time.perf_counter() - t0)
    best = max(cv, key=lambda k: (cv[k], -list(cv).index(k)))  # ties: the shallower block
    heldout_per_layer = {}
    chosen: tuple[np.ndarray, np.ndarray] | None = None
    for layer, x in features.items():
        weight, bias = fit_linear(x[train], labels[train], c)
        if layer == best:
            chosen = (weight, bias)
        if held.any():
            heldout_per_layer[layer] = _accuracy(weight, bias, x[held], labels[held])
    assert chosen is not None
    weight, bias = chosen
    weight = np.concatenate([weight, np.zeros((len(classes) - len(weight), weight.shape[1]))])
    bias = np.concatenate([bias, np.full(len(classes) - len(bias), -1e4)])
    return Probe(
        layer=best,
        weight=weight.astype(np.float32),
        bias=bias.astype(np.float32),
        classes=list(classes),
        cv_accuracy=cv,
        heldout_accuracy=heldout_per_layer.get(best, float("nan")),
        heldout_per_layer=heldout_per_layer,
        n_train=int(train.sum()),
        n_heldout=int(held.sum()),
        train_folds=[int(f) for f in train_folds],
        heldout_fold=int(heldout_fold),
        c=float(c),
    )


def probe_files(path: Path) -> tuple[Path, Path]:
    """``(<path>.safetensors, <path>.json)``: the name is kept whole (``whisper-tiny.en-<key>``
    has a dot that is no suffix)."""
    return path.parent / f"{path.name}.safetensors", path.parent / f"{path.name}.json"


def save_probe(probe: Probe, path: Path) -> None:
    """``<path>.safetensors`` (weight, bias) and ``<path>.json`` (the rest)."""
    from safetensors.torch import save_file

    tensors_file, record_file = probe_files(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {"weight": torch.from_numpy(probe.weight), "bias": torch.from_numpy(probe.bias)}
    save_file(tensors, str(tensors_file))
    record_file.write_text(json.dumps(probe.record(), indent=1))


def load_probe(path: Path) -> Probe | None:
    """A stored probe, or ``None`` when there is none at ``path``."""
    from safetensors.torch import load_file

    tensors, record = probe_files(path)
    if not (tensors.exists() and record.exists()):
        return None
    t = load_file(str(tensors))
    return Probe(
        weight=t["weight"].numpy(), bias=t["bias"].numpy(), **json.loads(record.read_text())
    )
