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
:func:`pruning_summary`, :func:`run_stage`. The masks (:mod:`andlib.evaluate.prune_masks`),
the selection (:mod:`andlib.evaluate.prune_select`), the pruned forward passes
(:mod:`andlib.evaluate.prune_forward`) and the statistics (:mod:`andlib.evaluate.prune_stats`)
live in their own modules; their names stay importable from here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from andlib.config import Config, rng
from andlib.evaluate.prune_forward import ASTSuffix as ASTSuffix
from andlib.evaluate.prune_forward import Point as Point
from andlib.evaluate.prune_forward import masked_logits as masked_logits
from andlib.evaluate.prune_forward import predict as predict
from andlib.evaluate.prune_forward import selection_key as selection_key
from andlib.evaluate.prune_masks import NeuronPruner as NeuronPruner
from andlib.evaluate.prune_select import Selector as Selector
from andlib.evaluate.prune_select import _count
from andlib.evaluate.prune_select import concept_scores as concept_scores
from andlib.evaluate.prune_select import concept_words as concept_words
from andlib.evaluate.prune_select import layer_cap as layer_cap
from andlib.evaluate.prune_select import matches_open_concepts as matches_open_concepts
from andlib.evaluate.prune_select import random_neurons as random_neurons
from andlib.evaluate.prune_select import select_neurons as select_neurons
from andlib.evaluate.prune_select import stem as stem
from andlib.evaluate.prune_stats import COLUMNS as COLUMNS
from andlib.evaluate.prune_stats import SUMMARY_COLUMNS as SUMMARY_COLUMNS
from andlib.evaluate.prune_stats import average_draws as average_draws
from andlib.evaluate.prune_stats import bootstrap_ci as bootstrap_ci
from andlib.evaluate.prune_stats import pruning_summary as pruning_summary
from andlib.layout import is_sae_layer
from andlib.store import (
    RunDir,
    Stage,
    activation_index,
    read_clips,
    read_model_info,
    read_neurons,
    read_pruning_summary,
)
from andlib.text.names import normalize_concept

STAGE = "prune"
STRATEGIES = ("ocp", "db", "tab", "random")
VERSION = 3
"""Bumped when ``pruning.csv`` changes for the same inputs (2: seeded classes, random draws)."""

log = logging.getLogger(__name__)


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
# The experiment
# --------------------------------------------------------------------------------------------


def _block_index(layer: str) -> int:
    """``layers.<i>.<part>`` -> ``i``; -1 for a layer outside the blocks."""
    parts = layer.split(".")
    return int(parts[1]) if len(parts) > 2 and parts[0] == "layers" and parts[1].isdigit() else -1


def prune_layers(cfg: Config, index: dict[str, Any]) -> list[str]:
    """The layers whose neurons may be pruned: ``prune.layers`` or every hidden layer. An SAE's
    virtual layer never is: silencing a latent needs the SAE spliced into the forward pass
    with its error term, and its latents have no module to mask."""
    recorded = [layer for layer in index["layers"] if not is_sae_layer(layer)]
    if cfg.prune.layers is not None:
        missing = [layer for layer in cfg.prune.layers if layer not in recorded]
        if missing:
            raise KeyError(
                f"prune.layers: not recorded (or an SAE's latents): {', '.join(missing)}"
            )
        return list(cfg.prune.layers)
    return [layer for layer in recorded if layer != cfg.evaluate.classifier_layer]


def _module_paths(
    run: RunDir, target: Any, index: dict[str, Any], layers: list[str]
) -> dict[str, str]:
    """Module path of each layer: ``index.json``, else ``model.json``, else ``resolve_layers``."""
    info = read_model_info(run).get("layers", {})
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
    head = read_model_info(run).get("head_layer")
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


# --------------------------------------------------------------------------------------------
# Stage
# --------------------------------------------------------------------------------------------


def _summary(run: RunDir) -> dict[str, Any]:
    table = read_pruning_summary(run)
    if table is None:
        raise FileNotFoundError(f"{run / 'pruning_summary.csv'} is missing: run the prune stage")
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
