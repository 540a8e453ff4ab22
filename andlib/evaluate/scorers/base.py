"""The scorer interface: what every scorer reads (:class:`Probe`, :class:`LayerSample`), what it
writes (rows of ``scores.csv``), and the :class:`Scorer` base class.

A scorer scores the descriptions of one layer's sampled neurons at once and returns long rows
``layer, neuron, scorer, metric, variant, value, n`` (:data:`SCORE_COLUMNS`). ``variant`` says
what was scored (:data:`VARIANTS`): the neuron's own description (``own``), a baseline
(``random``: a random other neuron's description, ``label``: the top clips' majority class
name as the whole description, ``oracle``: the label oracle), or a sanity variant
(``missing_label``: the description with its source phrase removed, ``extra_label``: with a
wrong source added). A variant a scorer cannot score is recorded in :attr:`Probe.missing`
with its reason (``score_missing.csv``).

Also here, shared by the scorers: which clips are held out (:func:`heldout_mask`), the seeded
neuron sample (:func:`sample_neurons`), the label oracle (:func:`label_oracle`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from andlib.config import Config, rng
from andlib.store import decode_list

SCORE_COLUMNS = ["layer", "neuron", "scorer", "metric", "variant", "value", "n"]
"""The columns of ``scores.csv``."""
MISSING_COLUMNS = ["layer", "scorer", "variant", "reason", "n_neurons"]
"""The columns of ``score_missing.csv``: a variant left out (``n_neurons`` of a layer), and why."""
VARIANTS = ("own", "random", "label", "oracle", "missing_label", "extra_label")
"""The ``variant`` tags, in report order."""
BASELINES = ("random", "label", "oracle")
SANITY = ("missing_label", "extra_label")
DESCRIPTION_VARIANTS = ("own", "random", "label", "missing_label", "extra_label")
"""The variants that are a text read in place of the description."""


def description_of(row: pd.Series | dict) -> str:
    """The text a neuron is judged by: the calibrated high summary, else the high summary."""
    for col in ("calibrated_summary", "high_summary"):
        text = str(row.get(col, "") or "").strip()
        if text:
            return text
    return ""


def description_clips(row: pd.Series | dict) -> list[str]:
    """The clip ids a neuron's description was built from (its top-K and bottom-K clips)."""
    return decode_list(row.get("top_clips")) + decode_list(row.get("bottom_clips"))


def heldout_mask(clip_ids: Sequence[str], excluded: Sequence[Iterable[str]]) -> np.ndarray:
    """``[n_clips, n_neurons]`` bool: true where clip *i* was not used to describe neuron *j*."""
    pos = {str(c): i for i, c in enumerate(clip_ids)}
    mask = np.ones((len(clip_ids), len(excluded)), dtype=bool)
    for j, clips in enumerate(excluded):
        idx = [pos[str(c)] for c in clips if str(c) in pos]
        mask[idx, j] = False
    return mask


def sample_neurons(cfg: Config, layer: str, neurons: Sequence[int], n: int | None) -> list[int]:
    """A seeded sample of ``n`` neurons of a layer (all when ``n`` is None or large enough)."""
    neurons = sorted(int(x) for x in neurons)
    if n is None or n >= len(neurons):
        return neurons
    picked = rng(cfg, "simulation", layer).choice(len(neurons), size=n, replace=False)
    return sorted(neurons[i] for i in picked)


def label_oracle(acts: np.ndarray, labels: Sequence[Any], mask: np.ndarray) -> np.ndarray:
    """Leave-one-out class-mean activation over the usable (``mask``) clips; NaN without a label."""
    codes, uniques = pd.factorize(pd.Series(list(labels)).replace("", np.nan))
    pred = np.full(acts.shape, np.nan)
    valid = codes >= 0
    if not valid.any():
        return pred
    onehot = np.zeros((len(codes), len(uniques)))
    onehot[np.flatnonzero(valid), codes[valid]] = 1.0
    used = mask & valid[:, None]
    a = np.where(used, acts, 0.0)
    sums = onehot.T @ a  # [n_classes, n_neurons]
    counts = onehot.T @ used.astype(np.float64)
    c = np.where(valid, codes, 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        loo = (sums[c] - a) / (counts[c] - used)
    pred[valid] = loo[valid]
    pred[~np.isfinite(pred)] = np.nan
    return pred


@dataclasses.dataclass
class Probe:
    """The probing set as the scorers see it, read and embedded once per evaluation.

    ``captions[i]`` is clip ``clip_ids[i]``'s caption ("" when it has none), ``categories[i]``
    its label ("" when unlabelled), ``cap_emb`` the captions' unit vectors (NaN rows for clips
    without a caption), ``label_emb`` the labels' (class name) vectors (NaN rows without a
    label). ``embed`` gives unit vectors of any texts (memoized). ``llm`` is the generative
    LLM when one is configured, else None. ``oracle_reason`` is why the label oracle is
    undefined ("" when it applies).
    """

    cfg: Config
    clip_ids: list[str]
    captions: list[str]
    categories: list[str]
    cap_emb: np.ndarray
    label_emb: np.ndarray
    embed: Callable[[list[str]], np.ndarray]
    llm: Any = None
    oracle_reason: str = ""
    missing: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    @property
    def has_caption(self) -> np.ndarray:
        return np.array([bool(c) for c in self.captions])

    @property
    def has_labels(self) -> bool:
        return any(self.categories)

    def vectors(self, texts: Sequence[str]) -> np.ndarray:
        """``[n, d]`` unit vectors of ``texts`` (NaN rows for "")."""
        out = np.full((len(texts), self.cap_emb.shape[1]), np.nan)
        have = [i for i, t in enumerate(texts) if t]
        if have:
            out[have] = self.embed([texts[i] for i in have])
        return out

    def note_missing(self, layer: str, scorer: str, variant: str, reason: str, n: int) -> None:
        """Record that ``scorer`` left ``variant`` out for ``n`` neurons of ``layer``."""
        self.missing.append(
            {"layer": layer, "scorer": scorer, "variant": variant, "reason": reason, "n_neurons": n}
        )


@dataclasses.dataclass
class LayerSample:
    """One layer's sampled neurons and what the scorers read of them.

    ``acts`` is ``[n_clips, n]`` (float64, column j = neuron ``neurons[j]``); ``heldout`` is
    true where a clip was not used to build the description and has a caption. ``texts`` maps
    each variant of :data:`DESCRIPTION_VARIANTS` to one text per neuron ("" where the variant
    is undefined for that neuron: :attr:`reasons` says why).
    """

    layer: str
    neurons: list[int]
    acts: np.ndarray
    heldout: np.ndarray
    texts: dict[str, list[str]]
    reasons: dict[str, str] = dataclasses.field(default_factory=dict)

    def defined(self, variant: str) -> np.ndarray:
        """``[n]`` bool: the neurons for which ``variant``'s text exists."""
        return np.array([bool(t) for t in self.texts.get(variant, [""] * len(self.neurons))])


class Scorer:
    """One way of scoring descriptions. Subclasses set :attr:`name`, :attr:`metrics` and
    :attr:`reads_description`, and implement :meth:`score`.

    :meth:`score` scores one :class:`LayerSample` and returns ``scores.csv`` rows (build them
    with :meth:`rows`); a variant it leaves out goes to :meth:`Probe.note_missing`.
    """

    name: ClassVar[str] = ""
    metrics: ClassVar[tuple[str, ...]] = ()
    reads_description: ClassVar[bool] = True
    """Scorers that read no description get no baselines that replace it, and no sanity test."""

    def score(self, probe: Probe, sample: LayerSample) -> pd.DataFrame:
        raise NotImplementedError

    def rows(
        self,
        sample: LayerSample,
        variant: str,
        values: dict[str, np.ndarray],
        n: np.ndarray,
        keep: np.ndarray | None = None,
        scorer: str | None = None,
    ) -> pd.DataFrame:
        """Long rows for one variant: ``values`` maps metric -> ``[n_neurons]``, ``n`` the
        samples each value is computed on, ``keep`` the neurons to report (default all)."""
        idx = np.arange(len(sample.neurons)) if keep is None else np.flatnonzero(keep)
        neurons = np.asarray(sample.neurons)[idx]
        frames = [
            pd.DataFrame(
                {
                    "layer": sample.layer,
                    "neuron": neurons,
                    "scorer": scorer or self.name,
                    "metric": metric,
                    "variant": variant,
                    "value": np.asarray(v, dtype=np.float64)[idx],
                    "n": np.asarray(n, dtype=np.int64)[idx],
                }
            )
            for metric, v in values.items()
        ]
        return pd.concat(frames, ignore_index=True) if frames else empty_scores()

    def note_undefined(self, probe: Probe, sample: LayerSample, variant: str) -> None:
        """Record the neurons of ``sample`` for which ``variant``'s text is undefined."""
        n_out = int((~sample.defined(variant)).sum())
        if n_out:
            reason = sample.reasons.get(variant, "undefined")
            probe.note_missing(sample.layer, self.name, variant, reason, n_out)


def empty_scores() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in SCORE_COLUMNS})
