"""Concept-specific pruning (paper Table 4): make the model forget one concept by silencing
the neurons whose descriptions name it, and check that it forgets only that concept.

**Pruning.** :class:`NeuronPruner` silences neurons of recorded layers without ever touching a
saved checkpoint, and :meth:`NeuronPruner.restore` gives back bit-identical outputs. How a
layer's neuron *j* is silenced depends on the module that was recorded:

- an ``nn.Linear`` (e.g. ``layers.i.attn``, the attention output projection ``o_proj``): row
  *j* of its weight and entry *j* of its bias are set to zero (originals kept in memory), so its
  output *j* is exactly 0;
- a parameter-free activation whose parent holds exactly one ``nn.Linear`` with that many
  outputs and which maps 0 to 0 (e.g. ``layers.i.mlp`` = GELU after ``fc1``): that Linear's row
  *j* and bias *j* are zeroed, so ``act(fc1(x))_j = act(0) = 0``;
- anything else (e.g. ``layers.i.out``, the block output = residual stream, or a classifier
  head): a forward hook sets the output's last-dimension entries *j* to 0 (the first element
  when the module returns a tuple).

**Choosing neurons for a concept** (:func:`select_neurons`), among the hidden layers (every
recorded layer but ``evaluate.classifier_layer``, or ``prune.layers``):

- ``ocp``: the neuron's open concepts (``open_concepts`` of ``neurons.csv``, lemmas of the
  calibrated summary) contain the concept. Words are compared after a light stemming (both
  sides), and with ``prune.ocp_match: all`` (default) *every* word of the concept name must be
  present (``water_drops`` needs "water" and "drop"; ``dog`` needs "dog"); ``any`` accepts one
  word, ``head`` needs the last word (the head noun of English compounds, "drop").
- ``db``: the concept is among the neuron's top-``prune.top_n`` DB concepts
  (``db_<concepts.db_default>`` then its ``_top5`` list), at most ``prune.max_share`` of each
  layer's neurons: when more qualify, those with the concept's highest score
  (``_top5_scores``) are kept.
- ``tab``: the same with the TAB concepts (skipped when TAB was not run).
- ``random``: a control pruning as many neurons *in each layer* as the strategy named by
  ``prune.random_match`` (default ``max``: whichever of OCP/DB/TAB chose the most for this
  concept, which is DB whenever DB chose at least as many as the others), drawn uniformly
  ``prune.random_draws`` times (default 5), draw *d* with :func:`andlib.config.rng`
  ``(cfg, "prune", concept, d)``.

**Classes** (:func:`choose_concepts`): ``prune.max_concepts`` (default 20; ``None``: all) of
the held-out classes, drawn once with ``rng(cfg, "prune", "classes")``, plus the named
``prune.concept``; every strategy is run on every one of them. A strategy that chooses no
neuron for a class still gets its row (``n_pruned`` 0, ``acted`` False, zero drops: the model
is unchanged), so strategies are compared on the same classes.

**Measuring** (:func:`pruning_experiment`). The held-out clips (``clips.csv`` rows of fold
``train.heldout_fold`` when there is a ``fold`` column, else every clip) are decoded and
preprocessed once. For the concept's class, *A* = its clips and *R* = all other clips. The
model's confidence on a clip is the logit (softmax probability) of the clip's true class.
``delta_a`` is the confidence **drop** on A (before − after, averaged over A's clips),
``delta_r`` the drop on R; ``delta_*_prob`` the same for probabilities; ``acc_*_before/after``
the accuracies. Concept-specific forgetting shows as a large ΔA with a small ΔR, so
``ΔA − ΔR`` (higher is better) summarises a strategy.

**Speed** (:func:`masked_logits`). Masks only change what follows them. For a transformers
AST (``prune.fast``, default) :class:`ASTSuffix` runs one unmasked pass per batch, caches the
tensors entering the first masked point of every selection, and recomputes each selection only
from there (and, in the last block, only the two pooled tokens past the keys and values): the
same logits as a full masked forward to float rounding. Other models, or ``prune.fast:
false``, get a full forward per distinct selection through :class:`NeuronPruner`.
``benchmarks/bench_prune.py`` times 50 classes x every strategy.

**Summary** (:func:`pruning_summary`): draws averaged per class first, then per strategy over
the same classes the mean ΔA − ΔR with a 95 % percentile bootstrap interval over classes
(:func:`bootstrap_ci`, ``prune.bootstrap`` resamples seeded by ``seed``), how many classes the
strategy acted on, and the paired difference to the random control.

Outputs: ``pruning.csv`` (one row per strategy, concept and random draw; :data:`COLUMNS`),
``pruning_summary.csv`` (:data:`SUMMARY_COLUMNS`) and the figures ``pruning_summary`` and
``pruning_<prune.concept>``.

Public surface: :class:`NeuronPruner`, :func:`stem`, :func:`concept_words`,
:func:`matches_open_concepts`, :func:`select_neurons`, :func:`random_neurons`,
:func:`load_heldout`, :func:`predict`, :func:`concept_metrics`, :class:`ASTSuffix`,
:func:`masked_logits`, :func:`selection_key`, :func:`choose_concepts`, :func:`plan_selections`,
:func:`pruning_experiment`, :func:`bootstrap_ci`, :func:`average_draws`,
:func:`pruning_summary`, :func:`run_stage`.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import pandas as pd
import torch
from torch import nn

from andlib.config import Config, rng
from andlib.store import (
    ArtifactError,
    RunDir,
    Stage,
    activation_index,
    read_clips,
    read_neurons,
    split_list,
)
from andlib.text.names import normalize_concept, ranked_concepts

STAGE = "prune"
STRATEGIES = ("ocp", "db", "tab", "random")
VERSION = 3
"""Bumped when ``pruning.csv`` changes for the same inputs (2: seeded classes, random draws)."""
COLUMNS = [
    "strategy",
    "concept",
    "draw",
    "n_pruned",
    "share_pruned",
    "acted",
    "delta_a",
    "delta_r",
    "delta_a_prob",
    "delta_r_prob",
    "acc_a_before",
    "acc_a_after",
    "acc_r_before",
    "acc_r_after",
]
"""``pruning.csv``: ``draw`` numbers the random draws (0 for the other strategies), ``acted``
whether any neuron was pruned; see :func:`run_stage`."""

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------
# Pruning with masks, restorable
# --------------------------------------------------------------------------------------------


def _maps_zero_to_zero(module: nn.Module) -> bool:
    try:
        with torch.no_grad():
            out = module(torch.zeros(8))
        return isinstance(out, torch.Tensor) and bool(torch.all(out == 0))
    except Exception:
        return False


def _zero_last_dim(output: Any, idx: torch.Tensor) -> Any:
    if isinstance(output, torch.Tensor):
        out = output.clone()
        out[..., idx.to(out.device)] = 0
        return out
    if isinstance(output, tuple) and output and isinstance(output[0], torch.Tensor):
        return (_zero_last_dim(output[0], idx), *output[1:])
    raise TypeError(f"cannot mask a module output of type {type(output).__name__}")


class NeuronPruner:
    """Silence chosen neurons of recorded layers; :meth:`restore` undoes everything.

    ``model`` is a :class:`~andlib.models.registry.TargetModel` or an ``nn.Module``;
    ``layer_to_module`` maps layer keys to module paths (as ``activations/index.json`` or
    ``resolve_layers`` give them; a value may also be ``{"module": path, "n_neurons": n}``).
    ``n_neurons`` gives layer sizes where the values do not. See the module docstring for how
    each kind of module is pruned.
    """

    def __init__(
        self,
        model: Any,
        layer_to_module: Mapping[str, Any],
        n_neurons: Mapping[str, int] | None = None,
    ):
        self.module: nn.Module = model if isinstance(model, nn.Module) else model.module
        self.paths: dict[str, str] = {}
        self.sizes: dict[str, int] = dict(n_neurons or {})
        for layer, value in layer_to_module.items():
            if isinstance(value, Mapping):
                self.paths[layer] = str(value["module"])
                if value.get("n_neurons") is not None:
                    self.sizes.setdefault(layer, int(value["n_neurons"]))
            else:
                self.paths[layer] = str(value)
        self._plans: dict[str, tuple[str, str]] = {}
        self._originals: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self._hook_idx: dict[str, set[int]] = {}
        self._handles: list[Any] = []
        self.pruned_neurons: dict[str, set[int]] = {}

    def plan(self, layer: str) -> tuple[str, str]:
        """``("weights", linear_path)`` or ``("hook", module_path)``: how ``layer`` is pruned."""
        if layer in self._plans:
            return self._plans[layer]
        if layer not in self.paths:
            raise KeyError(f"unknown layer {layer!r}; known: {', '.join(self.paths)}")
        path = self.paths[layer]
        mod = self.module.get_submodule(path)
        plan = ("hook", path)
        if isinstance(mod, nn.Linear):
            plan = ("weights", path)
        elif layer in self.sizes and not any(True for _ in mod.parameters(recurse=True)):
            parent_path, _, _ = path.rpartition(".")
            parent = self.module.get_submodule(parent_path) if parent_path else self.module
            producers = [
                name
                for name, child in parent.named_children()
                if isinstance(child, nn.Linear) and child.out_features == self.sizes[layer]
            ]
            if len(producers) == 1 and _maps_zero_to_zero(mod):
                prefix = f"{parent_path}." if parent_path else ""
                plan = ("weights", prefix + producers[0])
        self._plans[layer] = plan
        return plan

    def prune(self, layer: str, neurons: Sequence[int]) -> int:
        """Silence ``neurons`` of ``layer`` (on top of anything pruned before); returns how many."""
        idx = sorted({int(n) for n in neurons})
        if not idx:
            return 0
        size = self.sizes.get(layer)
        if idx[0] < 0 or (size is not None and idx[-1] >= size):
            raise IndexError(f"{layer}: neuron index out of range 0..{size}: {idx}")
        kind, path = self.plan(layer)
        if kind == "weights":
            linear: Any = self.module.get_submodule(path)
            rows = torch.tensor(idx, device=linear.weight.device)
            for param in (linear.weight, linear.bias):
                if param is None:
                    continue
                if id(param) not in self._originals:
                    self._originals[id(param)] = (param, param.detach().clone())
                with torch.no_grad():
                    param[rows] = 0
        else:
            if path not in self._hook_idx:
                self._hook_idx[path] = set()
                self._handles.append(
                    self.module.get_submodule(path).register_forward_hook(self._hook(path))
                )
            self._hook_idx[path].update(idx)
        self.pruned_neurons.setdefault(layer, set()).update(idx)
        return len(idx)

    def _hook(self, path: str):
        def hook(module: nn.Module, args: Any, output: Any) -> Any:
            idx = torch.tensor(sorted(self._hook_idx[path]), dtype=torch.long)
            return _zero_last_dim(output, idx)

        return hook

    def prune_many(self, selection: Mapping[str, Sequence[int]]) -> int:
        """Prune ``{layer: neurons}``; returns the number of neurons pruned."""
        return sum(self.prune(layer, neurons) for layer, neurons in selection.items())

    def restore(self) -> None:
        """Put back every original weight and remove every hook (bit-identical outputs)."""
        with torch.no_grad():
            for param, original in self._originals.values():
                param.copy_(original)
        for handle in self._handles:
            handle.remove()
        self._originals.clear()
        self._hook_idx.clear()
        self._handles.clear()
        self.pruned_neurons.clear()

    @contextmanager
    def pruned(self, selection: Mapping[str, Sequence[int]]) -> Iterator[NeuronPruner]:
        """``with pruner.pruned({layer: neurons}): ...`` -- restored on exit, even on error."""
        try:
            self.prune_many(selection)
            yield self
        finally:
            self.restore()


# --------------------------------------------------------------------------------------------
# Choosing the neurons of a concept
# --------------------------------------------------------------------------------------------

_SUFFIXES = [
    ("sses", "ss"),
    ("shes", "sh"),
    ("ches", "ch"),
    ("xes", "x"),
    ("ies", "y"),
    ("ied", "y"),
    ("ing", ""),
    ("ed", ""),
    ("s", ""),
]


def stem(word: str) -> str:
    """A light, deterministic stemmer so inflections meet: drops/drop, crying/cry/cries,
    dripping/drip, sneezing/sneeze, glasses/glass (final ``e`` and doubled consonants dropped)."""
    w = word.lower().strip()
    for suffix, repl in _SUFFIXES:
        if not w.endswith(suffix) or (suffix == "s" and w.endswith("ss")):
            continue
        base = w[: -len(suffix)] + repl
        if len(base) >= 3:
            if suffix in ("ing", "ed") and len(base) >= 4 and base[-1] == base[-2]:
                if base[-1] not in "lsz":
                    base = base[:-1]
            w = base
        break
    if len(w) > 3 and w.endswith("e"):
        w = w[:-1]
    return w


def concept_words(concept: str) -> list[str]:
    """Stemmed words of a concept name: ``water_drops`` -> ``["water", "drop"]``."""
    return [stem(w) for w in normalize_concept(concept).split()]


def _open_words(open_concepts: Sequence[str]) -> set[str]:
    return {stem(w) for c in open_concepts for w in normalize_concept(c).split()}


def _ocp_hit(have: set[str], concept: str, how: str) -> bool:
    words = concept_words(concept)
    if how not in ("all", "any", "head"):
        raise ValueError(f"prune.ocp_match: {how!r} is not one of all, any, head")
    if not words or not have:
        return False
    if how == "all":
        return all(w in have for w in words)
    if how == "any":
        return any(w in have for w in words)
    return words[-1] in have


def matches_open_concepts(open_concepts: Sequence[str], concept: str, how: str = "all") -> bool:
    """Whether a neuron's open concepts name ``concept`` (``how``: ``all``, ``any``, ``head``)."""
    return _ocp_hit(_open_words(open_concepts), concept, how)


def layer_cap(size: int, max_share: float | None) -> int | None:
    """The most neurons of a layer of ``size`` that one concept may prune (``prune.max_share``
    of it, rounded down, at least 1); ``None`` without a cap."""
    return None if max_share is None else max(1, math.floor(max_share * size + 1e-9))


class Selector:
    """Picks the neurons of any concept for one strategy (``ocp``, ``db`` or ``tab``).

    Each neuron's concepts (its stemmed open-concept words, or its top-``top_n`` DB/TAB
    concepts with their scores) are read from ``neurons.csv`` once; ``selector(concept)`` is
    then a quick scan. With ``max_share`` and ``layer_sizes``, DB and TAB keep at most
    :func:`layer_cap` neurons of a layer: those whose score for the concept is highest (ties
    by neuron order). OCP has no score and is not capped.
    """

    def __init__(
        self,
        neurons: pd.DataFrame,
        strategy: str,
        *,
        layers: Sequence[str] | None = None,
        top_n: int = 3,
        db_similarity: str = "soft_wpmi",
        ocp_match: str = "all",
        max_share: float | None = None,
        layer_sizes: Mapping[str, int] | None = None,
    ):
        if strategy not in ("ocp", "db", "tab"):
            raise ValueError(f"unknown selection strategy {strategy!r}; use ocp, db or tab")
        if ocp_match not in ("all", "any", "head"):
            raise ValueError(f"prune.ocp_match: {ocp_match!r} is not one of all, any, head")
        rows = neurons if layers is None else neurons[neurons["layer"].isin(list(layers))]
        self.strategy, self.ocp_match = strategy, ocp_match
        self.keys = list(zip(rows["layer"].astype(str), rows["neuron"].astype(int), strict=True))
        self.caps: dict[str, int | None] = {}
        if strategy != "ocp" and max_share is not None:
            if layer_sizes is None:
                raise ValueError("Selector: max_share needs layer_sizes")
            self.caps = {la: layer_cap(int(n), max_share) for la, n in layer_sizes.items()}
        records = rows.to_dict("records")
        self.scores: list[dict[str, float]] = []
        if strategy == "ocp":
            self.concepts = [_open_words(split_list(r.get("open_concepts", ""))) for r in records]
        else:
            method = f"db_{db_similarity}" if strategy == "db" else "tab"
            if method not in rows.columns:
                raise ArtifactError(
                    f"neurons.csv has no {method} column (concepts.db_default: "
                    f"{db_similarity}): re-run the concepts stage (python -m andlib summarize)"
                )
            self.concepts = [
                {normalize_concept(c) for c in ranked_concepts(r, method)[:top_n]} for r in records
            ]
            if self.caps:
                self.scores = [concept_scores(r, method) for r in records]

    def _hit(self, have: set[str], concept: str) -> bool:
        if self.strategy == "ocp":
            return _ocp_hit(have, concept, self.ocp_match)
        return normalize_concept(concept) in have

    def __call__(self, concept: str) -> dict[str, list[int]]:
        """``{layer: [neuron, ...]}`` chosen for ``concept`` (layers in table order)."""
        hits: dict[str, list[int]] = {}
        for i, ((layer, _), have) in enumerate(zip(self.keys, self.concepts, strict=True)):
            if self._hit(have, concept):
                hits.setdefault(layer, []).append(i)
        name = normalize_concept(concept)
        out = {}
        for layer, rows in hits.items():
            cap = self.caps.get(layer)
            if cap is not None and len(rows) > cap:  # best scores first; stable: neuron order
                rows = sorted(rows, key=lambda i: -self.scores[i][name])[:cap]
            out[layer] = sorted(self.keys[i][1] for i in rows)
        return out


def concept_scores(row: Mapping[str, Any], method: str) -> dict[str, float]:
    """A neuron's score for each of its top-5 concepts of ``method`` (``db_<fn>`` or ``tab``),
    by normalised name, from ``<method>_top5`` and ``<method>_top5_scores`` of ``neurons.csv``."""
    if f"{method}_top5_scores" not in row:
        raise ArtifactError(
            f"neurons.csv has no {method}_top5_scores column: re-run the concepts stage "
            f"(python -m andlib summarize --config ...)"
        )
    names = split_list(row.get(f"{method}_top5", ""))
    values = [float(v) for v in split_list(row.get(f"{method}_top5_scores", ""))]
    if len(names) != len(values):
        raise ValueError(f"neurons.csv: {len(names)} {method} concepts but {len(values)} scores")
    return {normalize_concept(n): v for n, v in zip(names, values, strict=True)}


def select_neurons(
    neurons: pd.DataFrame,
    concept: str,
    strategy: str,
    *,
    layers: Sequence[str] | None = None,
    top_n: int = 3,
    db_similarity: str = "soft_wpmi",
    ocp_match: str = "all",
    max_share: float | None = None,
    layer_sizes: Mapping[str, int] | None = None,
) -> dict[str, list[int]]:
    """``{layer: [neuron, ...]}`` that ``strategy`` (``ocp``, ``db``, ``tab``) picks for ``concept``.

    ``neurons`` is ``neurons.csv``; only rows of ``layers`` (when given) are considered;
    ``max_share`` and ``layer_sizes`` cap DB and TAB (:class:`Selector`). For many concepts
    build one :class:`Selector` per strategy instead.
    """
    selector = Selector(
        neurons,
        strategy,
        layers=layers,
        top_n=top_n,
        db_similarity=db_similarity,
        ocp_match=ocp_match,
        max_share=max_share,
        layer_sizes=layer_sizes,
    )
    return selector(concept)


def random_neurons(
    counts: Mapping[str, int], layer_sizes: Mapping[str, int], generator: np.random.Generator
) -> dict[str, list[int]]:
    """``counts[layer]`` distinct neurons drawn uniformly from each layer (layers in sorted order)."""
    out = {}
    for layer in sorted(counts):
        k = min(int(counts[layer]), int(layer_sizes[layer]))
        if k > 0:
            out[layer] = sorted(generator.choice(int(layer_sizes[layer]), size=k, replace=False))
            out[layer] = [int(n) for n in out[layer]]
    return out


def _count(selection: Mapping[str, Sequence[int]]) -> int:
    return sum(len(v) for v in selection.values())


# --------------------------------------------------------------------------------------------
# Held-out clips, forward passes, metrics
# --------------------------------------------------------------------------------------------


@dataclass
class HeldOut:
    """Held-out clips, preprocessed once: model inputs per batch and class indices."""

    clip_ids: list[str]
    labels: np.ndarray
    """Class index (model output) of each clip."""
    inputs: list[dict[str, torch.Tensor]]
    class_names: list[str]


def load_heldout(cfg: Config, run: RunDir, target: Any) -> HeldOut:
    """Decode and preprocess the held-out clips of ``clips.csv`` for ``target`` (a TargetModel)."""
    from andlib.data.audio import AudioError, load_audio

    clips = read_clips(run)
    if "fold" in clips.columns:
        folds = pd.to_numeric(clips["fold"], errors="coerce")
        if (folds == cfg.train.heldout_fold).any():
            clips = clips[folds == cfg.train.heldout_fold]
        else:
            log.warning("no clip of fold %d: evaluating on every clip", cfg.train.heldout_fold)
    names = list(target.label_names or [])
    by_name = {normalize_concept(n): i for i, n in enumerate(names)}
    labels = []
    for _, row in clips.iterrows():
        cls = by_name.get(normalize_concept(row.get("category", "")), -1)
        if cls < 0 and not names:
            label = pd.to_numeric(row.get("label", -1), errors="coerce")
            cls = int(label) if pd.notna(label) else -1
        labels.append(cls)
    clips = clips.assign(_cls=labels)
    clips = clips[clips["_cls"] >= 0]
    if clips.empty:
        raise ValueError("no held-out clip has a class of the model: cannot measure pruning")
    if not names:
        names = [str(i) for i in range(int(clips["_cls"].max()) + 1)]

    def decode(path: str) -> np.ndarray | None:
        try:
            return load_audio(path, target.sample_rate, cfg.data.duration, cfg.data.silence_dbfs)
        except AudioError as exc:
            log.warning("held-out clip skipped: %s", exc)
            return None

    with ThreadPoolExecutor(max_workers=2) as pool:
        audio = list(pool.map(decode, clips["path"].astype(str)))
    keep = [i for i, a in enumerate(audio) if a is not None]
    audio = [audio[i] for i in keep]
    clips = clips.iloc[keep]
    bs = cfg.prune.batch_size
    inputs = [target.inputs(audio[i : i + bs]) for i in range(0, len(audio), bs)]
    return HeldOut(
        clips["clip_id"].astype(str).tolist(), clips["_cls"].to_numpy(int), inputs, names
    )


def predict(target: Any, inputs: Sequence[dict[str, torch.Tensor]]) -> torch.Tensor:
    """Logits ``[n_clips, n_classes]`` (float32, CPU) of preprocessed batches."""
    module = target if isinstance(target, nn.Module) else target.module
    outs = []
    with torch.inference_mode():
        for kwargs in inputs:
            out = module(kwargs["_positional"]) if "_positional" in kwargs else module(**kwargs)
            outs.append(getattr(out, "logits", out).float().cpu())
    return torch.cat(outs)


def concept_metrics(
    before: torch.Tensor, after: torch.Tensor, labels: np.ndarray, cls: int | None
) -> dict[str, float]:
    """Confidence drops and accuracies on the class ``cls`` (A) and on the other clips (R).

    Confidence is the logit / softmax probability of each clip's true class; ``delta_*`` are
    drops (before − after). A concept that is no class (``cls`` None) has NaN for A.
    """
    labels = np.asarray(labels)
    a = labels == cls if cls is not None else np.zeros(len(labels), dtype=bool)
    out: dict[str, float] = {}
    rows = torch.arange(len(labels))
    lab = torch.as_tensor(np.array(labels, dtype=np.int64))
    conf = {
        "": (before[rows, lab].numpy(), after[rows, lab].numpy()),
        "_prob": (
            before.softmax(-1)[rows, lab].numpy(),
            after.softmax(-1)[rows, lab].numpy(),
        ),
    }
    correct_before = before.argmax(-1).numpy() == labels
    correct_after = after.argmax(-1).numpy() == labels

    def mean(x: np.ndarray, sel: np.ndarray) -> float:
        return float(x[sel].mean()) if sel.any() else float("nan")

    for side, sel in (("a", a), ("r", ~a)):
        for suffix, (b, f) in conf.items():
            out[f"delta_{side}{suffix}"] = mean(b - f, sel)
        out[f"acc_{side}_before"] = mean(correct_before, sel)
        out[f"acc_{side}_after"] = mean(correct_after, sel)
    return out


# --------------------------------------------------------------------------------------------
# Pruned logits of many selections: a full forward each, or an AST recomputed from the cut
# --------------------------------------------------------------------------------------------

_POINT_ORDER = {"attn": 0, "mlp": 1, "out": 2, "head": 3}
_N_POOLED = 2
"""AST: the head reads only the [CLS] and distillation tokens (the first two)."""

Point = tuple[int, str]
"""Where a mask acts in an AST: ``(block, kind)``, kind ``attn`` / ``mlp`` / ``out`` / ``head``."""


def selection_key(selection: Mapping[str, Sequence[int]]) -> tuple:
    """A hashable key of ``{layer: neurons}`` (empty layers dropped): equal keys, equal masks."""
    return tuple(
        sorted((layer, tuple(sorted(int(n) for n in v))) for layer, v in selection.items() if v)
    )


class ASTSuffix:
    """Exact pruned logits of a transformers ``ASTForAudioClassification``, recomputing only
    what follows the first masked point.

    A mask acts at a *point* of the network: the attention output of block *i* (``o_proj``,
    before the residual add; layer ``...layers.i.attention.o_proj`` or ``...attention``), its
    MLP hidden units after the activation (``...mlp.activation_fn``, or ``...mlp.fc1`` when the
    activation maps 0 to 0), its output (``...layers.i``, the residual stream) or the logits
    (``classifier``). These are exactly the values :class:`NeuronPruner` sets to zero.

    For each batch of clips one unmasked pass caches, at the points where some selection's first
    mask sits, the tensors that enter it (the block input and attention output, the residual and
    MLP hidden units, or the block output). A selection then resumes from its first point: the
    cached tensor with its neurons zeroed, then the remaining blocks with every later mask.
    In the last block only the two pooled tokens are carried past the keys and values (the
    head reads nothing else). Everything else is the model's own modules, so the logits equal a
    full masked forward pass to float rounding (``tests/test_prune.py`` checks it).
    """

    def __init__(self, module: nn.Module, points: Mapping[str, Point]):
        self.module: Any = cast(Any, module)
        self.encoder: Any = self.module.audio_spectrogram_transformer
        self.blocks: Any = self.encoder.layers
        self.points = dict(points)
        self._fused: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    @classmethod
    def build(cls, model: Any, paths: Mapping[str, str]) -> ASTSuffix | None:
        """The runner for ``model`` when it is an AST in eval mode whose layer paths (``{layer:
        module path}``) are all points as above; otherwise ``None`` (use full forwards)."""
        module = model if isinstance(model, nn.Module) else model.module
        if type(module).__name__ != "ASTForAudioClassification" or module.training:
            return None
        enc = getattr(module, "audio_spectrogram_transformer", None)
        head = getattr(module, "classifier", None)
        blocks: Any = getattr(enc, "layers", None)
        if not isinstance(blocks, nn.ModuleList) or not hasattr(head, "dense"):
            return None
        need = ("q_proj", "k_proj", "v_proj", "o_proj", "num_attention_heads", "head_dim")
        for blk in blocks:
            if not all(hasattr(blk.attention, a) for a in need):
                return None
            if not all(hasattr(blk.mlp, a) for a in ("fc1", "fc2", "activation_fn")):
                return None
        prefix = "audio_spectrogram_transformer.layers."
        points: dict[str, Point] = {}
        for layer, path in paths.items():
            point: Point | None = None
            if path in ("classifier", "classifier.dense"):
                point = (len(blocks), "head")
            elif path.startswith(prefix):
                num, _, rest = path[len(prefix) :].partition(".")
                if num.isdigit() and int(num) < len(blocks):
                    i = int(num)
                    if rest == "":
                        point = (i, "out")
                    elif rest in ("attention", "attention.o_proj"):
                        point = (i, "attn")
                    elif rest == "mlp.activation_fn" or (
                        rest == "mlp.fc1"
                        and _maps_zero_to_zero(cast(Any, blocks[i]).mlp.activation_fn)
                    ):
                        point = (i, "mlp")
            if point is None:
                return None
            points[layer] = point
        return cls(module, points)

    def masks(self, selection: Mapping[str, Sequence[int]], device: Any) -> dict[Point, Any]:
        """``{point: keep}`` of a selection: a float vector, 0 at the pruned neurons and 1
        elsewhere (layers at one point are merged)."""
        merged: dict[Point, set[int]] = {}
        for layer, neurons in selection.items():
            if len(neurons):
                merged.setdefault(self.points[layer], set()).update(int(n) for n in neurons)
        dtype = next(self.module.parameters()).dtype
        out = {}
        for (j, kind), idx in merged.items():
            if kind == "head":
                size = self.module.classifier.dense.out_features
            elif kind == "mlp":
                size = self.blocks[j].mlp.fc2.in_features
            else:
                size = self.blocks[j].attention.o_proj.out_features
            keep = torch.ones(size, dtype=dtype, device=device)
            keep[torch.tensor(sorted(idx), dtype=torch.long, device=device)] = 0
            out[(j, kind)] = keep
        return out

    def _qkv(self, j: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Block ``j``'s query, key and value projections as one weight and bias."""
        if j not in self._fused:
            att = self.blocks[j].attention
            lin = [att.q_proj, att.k_proj, att.v_proj]
            w = torch.cat([p.weight for p in lin])
            b = torch.cat(
                [p.bias if p.bias is not None else torch.zeros_like(p.weight[:, 0]) for p in lin]
            )
            self._fused[j] = (w, b)
        return self._fused[j]

    def _attention(self, j: int, x: torch.Tensor, keep: torch.Tensor | None) -> torch.Tensor:
        """Attention output (``o_proj``, pruned rows zeroed by ``keep``) of block ``j``; in the
        last block only for the pooled tokens."""
        blk = self.blocks[j]
        att = blk.attention
        h = blk.layernorm_before(x)
        b, t, _ = h.shape
        heads, dim = att.num_attention_heads, att.head_dim
        w, bias = self._qkv(j)
        n = heads * dim
        if j == len(self.blocks) - 1:
            kv = nn.functional.linear(h, w[n:], bias[n:]).view(b, t, 2, heads, dim)
            k, v = kv.permute(2, 0, 3, 1, 4).unbind(0)
            hq = h[:, :_N_POOLED]
            q = nn.functional.linear(hq, w[:n], bias[:n]).view(b, _N_POOLED, heads, dim)
            q = q.transpose(1, 2)
        else:
            qkv = nn.functional.linear(h, w, bias).view(b, t, 3, heads, dim)
            q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        o = nn.functional.scaled_dot_product_attention(q, k, v, scale=att.scaling)
        o = o.transpose(1, 2).reshape(b, q.shape[2], n)
        wo, bo = att.o_proj.weight, att.o_proj.bias
        if keep is not None:
            wo, bo = wo * keep[:, None], bo * keep
        return nn.functional.linear(o, wo, bo)

    def _mlp(self, j: int, h: torch.Tensor, u: torch.Tensor | None, masks: Mapping[Point, Any]):
        """(MLP hidden units ``u``, block output) of block ``j`` from the residual ``h``."""
        mlp = self.blocks[j].mlp
        if u is None:
            u = mlp.activation_fn(mlp.fc1(self.blocks[j].layernorm_after(h)))
        w2 = mlp.fc2.weight
        keep = masks.get((j, "mlp"))
        if keep is not None:  # zero columns of fc2 = zero hidden units, exactly
            w2 = w2 * keep[None, :]
        y = nn.functional.linear(u, w2, mlp.fc2.bias)
        y += h
        keep = masks.get((j, "out"))
        if keep is not None:
            y *= keep
        return u, y

    def _block(
        self,
        j: int,
        masks: Mapping[Point, Any],
        x: torch.Tensor,
        record: dict[tuple[str, int], torch.Tensor] | None = None,
        needed: set[Point] | None = None,
    ) -> torch.Tensor:
        """Block ``j`` from its input ``x`` with ``masks``; ``record`` keeps the tensors that
        enter the ``needed`` points (the unmasked pass)."""
        x_res = x[:, :_N_POOLED] if j == len(self.blocks) - 1 else x
        a = self._attention(j, x, masks.get((j, "attn")))
        want = needed or set()
        if record is not None and (j, "attn") in want:
            record[("x", j)], record[("a", j)] = x_res, a
            h = a + x_res
        else:
            h = a.add_(x_res)
        u, y = self._mlp(j, h, None, masks)
        if record is not None and (j, "mlp") in want:
            record[("h", j)], record[("u", j)] = h, u
        if record is not None and (j, "out") in want:
            record[("y", j)] = y
        return y

    def _head(self, y: torch.Tensor, masks: Mapping[Point, Any]) -> torch.Tensor:
        seq = self.encoder.layernorm(y[:, :_N_POOLED])
        logits = self.module.classifier((seq[:, 0] + seq[:, 1]) / 2)
        keep = masks.get((len(self.blocks), "head"))
        return logits if keep is None else logits * keep

    def _resume(
        self, cache: Mapping[tuple[str, int], torch.Tensor], masks: Mapping[Point, Any]
    ) -> torch.Tensor:
        j, kind = min(masks, key=lambda p: (p[0], _POINT_ORDER[p[1]]))
        if kind == "head":
            return cache[("logits", 0)] * masks[(j, "head")]
        if kind == "attn":
            h = torch.addcmul(cache[("x", j)], cache[("a", j)], masks[(j, "attn")])
            _, y = self._mlp(j, h, None, masks)
        elif kind == "mlp":
            _, y = self._mlp(j, cache[("h", j)], cache[("u", j)], masks)
        else:
            y = cache[("y", j)] * masks[(j, "out")]
        for k in range(j + 1, len(self.blocks)):
            y = self._block(k, masks, y)
        return self._head(y, masks)

    def logits(
        self,
        inputs: Sequence[Mapping[str, torch.Tensor]],
        selections: Sequence[Mapping[str, Sequence[int]]],
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(unpruned logits, pruned logits of each selection), ``[n_clips, n_classes]`` float32
        on the CPU; an empty selection gets the unpruned logits."""
        device = next(self.module.parameters()).device
        masks = [self.masks(s, device) for s in selections]
        needed = {min(m, key=lambda p: (p[0], _POINT_ORDER[p[1]])) for m in masks if m}
        before: list[torch.Tensor] = []
        after: list[list[torch.Tensor]] = [[] for _ in selections]
        with torch.inference_mode():
            for kwargs in inputs:
                if set(kwargs) != {"input_values"}:
                    raise ValueError(f"ASTSuffix: unexpected model inputs {sorted(kwargs)}")
                record: dict[tuple[str, int], torch.Tensor] = {}
                y = self.encoder.embeddings(kwargs["input_values"])
                for j in range(len(self.blocks)):
                    y = self._block(j, {}, y, record=record, needed=needed)
                record[("logits", 0)] = base = self._head(y, {})
                before.append(base.float().cpu())
                for out, m in zip(after, masks, strict=True):
                    out.append((self._resume(record, m) if m else base).float().cpu())
        return torch.cat(before), [torch.cat(o) for o in after]


def masked_logits(
    target: Any,
    inputs: Sequence[dict[str, torch.Tensor]],
    pruner: NeuronPruner,
    selections: Sequence[Mapping[str, Sequence[int]]],
    fast: bool = True,
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """(unpruned logits, logits with each selection pruned) on the preprocessed ``inputs``.

    ``fast`` and an AST that :meth:`ASTSuffix.build` accepts: one cached pass per batch and
    each selection recomputed from its first masked point on; otherwise :class:`NeuronPruner`
    and a full forward per selection. Equal selections are computed once; an empty one gets
    the unpruned logits.
    """
    unique: dict[tuple, Mapping[str, Sequence[int]]] = {}
    for s in selections:
        unique.setdefault(selection_key(s), s)
    keys = [k for k in unique if k]
    runner = ASTSuffix.build(target, pruner.paths) if fast else None
    from andlib.evaluate.suffix import BlockSuffix

    generic = BlockSuffix.build(target, pruner.paths) if fast and runner is None else None
    if runner is not None and all("input_values" in b and len(b) == 1 for b in inputs):
        before, outs = runner.logits(inputs, [unique[k] for k in keys])
    elif generic is not None:  # a model that resumes from a block (Whisper)
        before, outs = generic.logits(inputs, [unique[k] for k in keys], pruner)
    else:
        before = predict(target, inputs)
        outs = []
        for k in keys:
            with pruner.pruned(unique[k]):
                outs.append(predict(target, inputs))
    by_key = {(): before, **dict(zip(keys, outs, strict=True))}
    return before, [by_key[selection_key(s)] for s in selections]


def _block_index(layer: str) -> int:
    """``layers.<i>.<part>`` -> ``i``; -1 for a layer outside the blocks."""
    parts = layer.split(".")
    return int(parts[1]) if len(parts) > 2 and parts[0] == "layers" and parts[1].isdigit() else -1


def prune_layers(cfg: Config, index: dict[str, Any]) -> list[str]:
    """The layers whose neurons may be pruned: ``prune.layers`` or every hidden layer."""
    recorded = list(index["layers"])
    if cfg.prune.layers is not None:
        missing = [layer for layer in cfg.prune.layers if layer not in recorded]
        if missing:
            raise KeyError(f"prune.layers: not recorded: {', '.join(missing)}")
        return list(cfg.prune.layers)
    return [layer for layer in recorded if layer != cfg.evaluate.classifier_layer]


def _module_paths(
    run: RunDir, target: Any, index: dict[str, Any], layers: list[str]
) -> dict[str, str]:
    """Module path of each layer: ``index.json``, else ``model.json``, else ``resolve_layers``."""
    info = run.read_json("model.json").get("layers", {}) if run.exists("model.json") else {}
    paths = {}
    for layer in layers:
        path = index["layers"][layer].get("module")
        if not path and isinstance(info.get(layer), dict):
            path = info[layer].get("module")
        paths[layer] = path
    missing = [layer for layer, p in paths.items() if not p]
    if missing:
        from andlib.models.activations import resolve_layers

        module = target if isinstance(target, nn.Module) else target.module
        paths.update(resolve_layers(module, missing))
    return {layer: str(p) for layer, p in paths.items()}


def choose_concepts(cfg: Config, held: HeldOut) -> list[tuple[str, int | None]]:
    """(concept, class index) pairs shared by every strategy: ``prune.max_concepts`` of the
    held-out classes drawn once with ``rng(cfg, "prune", "classes")`` (every class when
    ``None`` or when there are no more), in class order, plus the named ``prune.concept`` when
    it was not drawn (with class index ``None`` when it is no class)."""
    present = sorted(set(held.labels.tolist()))
    limit = cfg.prune.max_concepts
    if limit is not None and limit < len(present):
        picked = rng(cfg, "prune", "classes").choice(
            len(present), size=max(limit, 0), replace=False
        )
        present = [present[i] for i in sorted(int(i) for i in picked)]
    pairs: list[tuple[str, int | None]] = [(held.class_names[c], c) for c in present]
    named = normalize_concept(cfg.prune.concept) if cfg.prune.concept else ""
    if named and all(normalize_concept(c) != named for c, _ in pairs):
        by_name = {normalize_concept(n): i for i, n in enumerate(held.class_names)}
        pairs.append((cfg.prune.concept, by_name.get(named)))
    return pairs


def plan_selections(
    cfg: Config,
    neurons: pd.DataFrame,
    concepts: Sequence[tuple[str, int | None]],
    strategies: Sequence[str],
    layers: Sequence[str],
    sizes: Mapping[str, int],
) -> list[tuple[str, str, int | None, int, dict[str, list[int]]]]:
    """``(strategy, concept, class, draw, {layer: neurons})`` for every row of ``pruning.csv``:
    one per strategy and concept, ``prune.random_draws`` for ``random`` (draw *d* of a concept
    uses ``rng(cfg, "prune", concept, d)`` and as many neurons per layer as the
    ``prune.random_match`` strategy chose; the other strategies have draw 0)."""
    match = cfg.prune.random_match
    needed = [s for s in strategies if s != "random"]
    if "random" in strategies and match != "max" and match not in needed:
        needed.append(match)
    selectors = {
        s: Selector(
            neurons,
            s,
            layers=layers,
            top_n=cfg.prune.top_n,
            db_similarity=cfg.concepts.db_default,
            ocp_match=cfg.prune.ocp_match,
            max_share=cfg.prune.max_share,
            layer_sizes=sizes,
        )
        for s in needed
    }
    plan = []
    for concept, cls in concepts:
        chosen = {s: selectors[s](concept) for s in needed}
        for strategy in strategies:
            if strategy != "random":
                plan.append((strategy, concept, cls, 0, chosen[strategy]))
                continue
            if match == "max":
                ref = max((chosen[s] for s in strategies if s != "random"), key=_count, default={})
            else:
                ref = chosen[match]
            counts = {layer: len(v) for layer, v in ref.items()}
            for draw in range(cfg.prune.random_draws):
                picked = random_neurons(counts, sizes, rng(cfg, "prune", concept, draw))
                plan.append(("random", concept, cls, draw, picked))
    return plan


def pruning_experiment(cfg: Config, run: RunDir, target: Any = None) -> pd.DataFrame:
    """``pruning.csv``: one row per (strategy, concept, draw); see :data:`COLUMNS`.

    Every strategy gets a row for every concept of :func:`choose_concepts`; a strategy that
    chooses no neuron for it has ``n_pruned`` 0, ``acted`` False and zero drops (the model is
    unchanged), so all strategies are compared on the same classes.
    """
    strategies = list(cfg.prune.strategies)
    unknown = [s for s in strategies if s not in STRATEGIES]
    if unknown:
        raise ValueError(f"prune.strategies: unknown {unknown}; choose from {STRATEGIES}")
    if cfg.prune.random_match not in ("max", "ocp", "db", "tab"):
        raise ValueError(f"prune.random_match: {cfg.prune.random_match!r} is not max/ocp/db/tab")
    if cfg.prune.random_draws < 1:
        raise ValueError(f"prune.random_draws: {cfg.prune.random_draws} (need at least 1)")
    index = activation_index(run)
    neurons = read_neurons(run)
    layers = prune_layers(cfg, index)
    head = run.read_json("model.json").get("head_layer") if run.exists("model.json") else None
    if head:  # a probe head reads block <h>: the blocks above cannot change its logits
        depth = int(str(head).split(".")[1])
        layers = [name for name in layers if _block_index(name) <= depth]
    sizes = {layer: int(index["layers"][layer]["n_neurons"]) for layer in layers}
    has_tab = "tab" in neurons and (neurons["tab"].astype(str).str.strip() != "").any()
    if "tab" in strategies and not has_tab:
        log.warning("prune: TAB concepts were not computed; the tab strategy is skipped")
        strategies.remove("tab")

    if target is None:
        from andlib.models.registry import load_target

        target = load_target(cfg)
    t0 = time.perf_counter()
    held = load_heldout(cfg, run, target)
    log.info(
        "prune: %d held-out clips ready in %.1fs", len(held.clip_ids), time.perf_counter() - t0
    )
    pruner = NeuronPruner(target, _module_paths(run, target, index, layers), sizes)
    plan = plan_selections(cfg, neurons, choose_concepts(cfg, held), strategies, layers, sizes)
    t1 = time.perf_counter()
    before, afters = masked_logits(
        target, held.inputs, pruner, [p[4] for p in plan], fast=cfg.prune.fast
    )
    log.info(
        "prune: %d selections (%d distinct) in %.1fs",
        len(plan),
        len({selection_key(p[4]) for p in plan}),
        time.perf_counter() - t1,
    )
    rows = []
    prunable = sum(sizes.values())
    for (strategy, concept, cls, draw, selection), after in zip(plan, afters, strict=True):
        n = _count(selection)
        rows.append(
            {
                "strategy": strategy,
                "concept": concept,
                "draw": draw,
                "n_pruned": n,
                "share_pruned": n / prunable if prunable else 0.0,
                "acted": n > 0,
                **concept_metrics(before, after, held.labels, cls),
            }
        )
    log.info("prune: %d rows in %.1fs", len(rows), time.perf_counter() - t0)
    return pd.DataFrame(rows, columns=COLUMNS)


def bootstrap_ci(
    values: Sequence[float] | np.ndarray, n_resamples: int, seed: int, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (non-finite ones dropped).

    ``n_resamples`` resamples of ``len(values)`` draws with replacement, indices from
    ``np.random.default_rng(seed).integers(0, n, (n_resamples, n))``; the interval is the
    ``(1 − level) / 2`` and ``(1 + level) / 2`` quantiles of their means. The same seed and
    count give the same resamples, so intervals of paired values (per class) resample the
    same classes. ``(nan, nan)`` for no value.
    """
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if x.size == 0 or n_resamples < 1:
        return float("nan"), float("nan")
    idx = np.random.default_rng(seed).integers(0, x.size, size=(n_resamples, x.size))
    means = x[idx].mean(axis=1)
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return float(low), float(high)


_MEASURES = [c for c in COLUMNS if c not in ("strategy", "concept", "draw", "acted")]


def average_draws(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (strategy, concept): the measures averaged over draws, ``acted`` if any
    draw pruned a neuron, ``draws`` their number (tables without ``draw``: one each)."""
    d = df.copy()
    if "acted" not in d:
        d["acted"] = d["n_pruned"] > 0
    g = d.groupby(["strategy", "concept"], sort=False)
    out = g[[c for c in _MEASURES if c in d.columns]].mean()
    out["acted"] = g["acted"].any()
    out["draws"] = g.size()
    return out.reset_index()


SUMMARY_COLUMNS = [
    "strategy",
    "n_concepts",
    "n_pruned_mean",
    "delta_a_minus_r_mean",
    "ci_low",
    "ci_high",
    "n_acted",
    "share_pruned_mean",
    "delta_a",
    "delta_r",
    "specificity_prob",
    "acc_drop_a",
    "acc_drop_r",
    "specificity_acc",
    "vs_random_mean",
    "vs_random_ci_low",
    "vs_random_ci_high",
]


def pruning_summary(
    df: pd.DataFrame, n_resamples: int = 2000, seed: int = 0, level: float = 0.95
) -> pd.DataFrame:
    """``pruning_summary.csv``: per strategy, a paired comparison over the same classes.

    Draws are averaged per class first (:func:`average_draws`); the classes are those with a
    ΔA (a class, not a free concept) that every strategy has a row for, including classes a
    strategy pruned nothing for (ΔA = ΔR = 0 there). Columns (:data:`SUMMARY_COLUMNS`):
    ``n_concepts`` classes compared, ``n_pruned_mean`` neurons pruned per class,
    ``delta_a_minus_r_mean`` the mean per-class ΔA − ΔR (logit drops) with its
    ``level`` percentile bootstrap interval ``ci_low``/``ci_high`` (:func:`bootstrap_ci`,
    ``n_resamples``, ``seed``: the same resampled classes for every strategy); ``n_acted``
    the classes the strategy chose at least one neuron for; mean ``delta_a``, ``delta_r``,
    ``specificity_prob`` (ΔA − ΔR of probabilities), ``acc_drop_a``/``_r`` and
    ``specificity_acc`` (their difference); ``vs_random_*`` the mean and interval of the
    per-class ΔA − ΔR minus that of the random control (NaN without one).
    """
    per = average_draws(df)
    per = per[per["delta_a"].notna()]
    order = list(dict.fromkeys(df["strategy"]))
    sets = [set(per.loc[per["strategy"] == s, "concept"]) for s in order]
    classes = sorted(set.intersection(*sets)) if sets else []
    spec: dict[str, pd.Series] = {}
    tables: dict[str, pd.DataFrame] = {}
    for s in order:
        t = per[per["strategy"] == s].set_index("concept").reindex(classes)
        tables[s] = t
        spec[s] = t["delta_a"] - t["delta_r"]
    rows = []
    for s in order:
        t = tables[s]
        low, high = bootstrap_ci(spec[s].to_numpy(), n_resamples, seed, level)
        vs = spec[s] - spec["random"] if "random" in spec and s != "random" else None
        vs_low, vs_high = (
            bootstrap_ci(vs.to_numpy(), n_resamples, seed, level)
            if vs is not None
            else (float("nan"), float("nan"))
        )
        acc_a = t["acc_a_before"] - t["acc_a_after"]
        acc_r = t["acc_r_before"] - t["acc_r_after"]
        rows.append(
            {
                "strategy": s,
                "n_concepts": len(classes),
                "n_pruned_mean": t["n_pruned"].mean(),
                "share_pruned_mean": t["share_pruned"].mean() if "share_pruned" in t else np.nan,
                "delta_a_minus_r_mean": spec[s].mean(),
                "ci_low": low,
                "ci_high": high,
                "n_acted": int(t["acted"].astype(bool).sum()),
                "delta_a": t["delta_a"].mean(),
                "delta_r": t["delta_r"].mean(),
                "specificity_prob": (t["delta_a_prob"] - t["delta_r_prob"]).mean(),
                "acc_drop_a": acc_a.mean(),
                "acc_drop_r": acc_r.mean(),
                "specificity_acc": (acc_a - acc_r).mean(),
                "vs_random_mean": vs.mean() if vs is not None else float("nan"),
                "vs_random_ci_low": vs_low,
                "vs_random_ci_high": vs_high,
            }
        )
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


# --------------------------------------------------------------------------------------------
# Stage
# --------------------------------------------------------------------------------------------


def read_pruning(run: RunDir) -> pd.DataFrame:
    """``pruning.csv`` with numeric columns (empty cells are NaN, not "")."""
    return pd.read_csv(run.require("pruning.csv", STAGE))


def _summary(run: RunDir) -> dict[str, Any]:
    table = pd.read_csv(run.require("pruning_summary.csv", STAGE))
    out: dict[str, Any] = {}
    for _, r in table.iterrows():
        out[f"prune.{r['strategy']}"] = (
            f"ΔA−ΔR={r['delta_a_minus_r_mean']:.3f} (logit, 95% CI {r['ci_low']:.3f}"
            f"..{r['ci_high']:.3f}) {r['specificity_acc']:.3f} (acc), "
            f"{r['n_pruned_mean']:.0f} neurons, acted on {r['n_acted']}/{r['n_concepts']} classes"
        )
    out["outputs"] = str(run / "pruning.csv")
    return out


SPEC = Stage(
    STAGE,
    sections=("prune", "seed", "model", "data", "train.heldout_fold", "evaluate.classifier_layer"),
    upstream=("concepts",),
    inputs=("neurons.csv", "clips.csv", "activations/index.json"),
    version=VERSION,
)
"""The prune stage's cache key: its settings, :data:`VERSION`, the concepts stage key and
the inputs' fingerprints (it reads no lexicon or prompt of its own)."""


def run_stage(cfg: Config, run: RunDir) -> dict[str, Any]:
    """Write ``pruning.csv`` (columns :data:`COLUMNS`: ``strategy, concept, draw, n_pruned,
    acted``, the drops ``delta_a, delta_r, delta_a_prob, delta_r_prob`` and the accuracies
    ``acc_a_before, acc_a_after, acc_r_before, acc_r_after``; one row per strategy, concept and
    random draw) and ``pruning_summary.csv`` (:func:`pruning_summary`, ``prune.bootstrap``
    resamples seeded by ``seed``); :mod:`andlib.report.figures` draws them."""
    key = SPEC.key(cfg, run)
    logger = run.logger(STAGE)
    if run.is_fresh(STAGE, key) and run.exists("pruning_summary.csv"):
        logger.info("prune: up to date")
        return _summary(run)
    df = pruning_experiment(cfg, run)
    run.write_csv("pruning.csv", df)
    summary = pruning_summary(df, cfg.prune.bootstrap, cfg.seed)
    run.write_csv("pruning_summary.csv", summary)
    logger.info("pruning summary:\n%s", summary.to_string(index=False))
    run.mark_done(STAGE, key, outputs=["pruning.csv", "pruning_summary.csv"])
    return _summary(run)
