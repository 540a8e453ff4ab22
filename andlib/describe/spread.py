"""How evenly a closed-set method spreads its concepts over a layer's neurons.

A similarity function that collapses names one concept for most of a layer, whatever the
neurons do. :func:`concept_spread` measures it per layer and method (``concept_spread.csv``,
:data:`SPREAD_COLUMNS`): the most common top-1 concept and the share of the layer's neurons it
names, the entropy of the top-1 concepts' distribution in bits, beside its maximum
(``log2`` of the number of concepts or of neurons, whichever is smaller), and how many distinct
concepts are named. :func:`collapse_warnings` words a warning for every layer and method whose
most common concept names more than :data:`COLLAPSE_SHARE` of the layer. A layer can hold that
many neurons of one concept (the evaluation's ``hidden_layer_accuracy.csv`` tells, by labels);
more often a similarity function that prefers one concept whatever the neurons do is the cause.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

SPREAD_COLUMNS = [
    "layer",
    "method",
    "n_neurons",
    "top_concept",
    "top_share",
    "entropy_bits",
    "max_entropy_bits",
    "n_concepts",
]
COLLAPSE_SHARE = 0.25
"""A layer where one concept names more than this share of the neurons has collapsed."""


def concept_spread(neurons: pd.DataFrame, methods: Sequence[str], n_concepts: int) -> pd.DataFrame:
    """Per layer (in table order) and method, the spread of the top-1 concepts of
    ``neurons`` (``neurons.csv`` rows; ``methods`` are its concept columns). Neurons with an
    empty concept are left out of ``n_neurons``; a method with none in a layer gets no row.
    ``n_concepts`` is the size of the concept set (for ``max_entropy_bits``)."""
    rows = []
    for layer, group in neurons.groupby("layer", sort=False):
        for method in methods:
            names = group[method].fillna("").astype(str).str.strip()
            names = names[names != ""]
            if names.empty:
                continue
            counts = names.value_counts(sort=True)
            p = counts.to_numpy(dtype=np.float64) / len(names)
            rows.append(
                {
                    "layer": layer,
                    "method": method,
                    "n_neurons": len(names),
                    "top_concept": str(counts.index[0]),
                    "top_share": float(p[0]),
                    "entropy_bits": float(-(p * np.log2(p)).sum()) + 0.0,
                    "max_entropy_bits": math.log2(max(1, min(n_concepts, len(names)))),
                    "n_concepts": len(counts),
                }
            )
    return pd.DataFrame(rows, columns=SPREAD_COLUMNS)


def collapse_warnings(spread: pd.DataFrame, share: float = COLLAPSE_SHARE) -> list[str]:
    """One message per row of ``spread`` whose top concept names more than ``share`` of the
    layer's neurons."""
    return [
        f"concept collapse? {r.method} names {r.top_concept!r} for {r.top_share:.0%} of layer "
        f"{r.layer!r} ({r.n_neurons} neurons; over {share:.0%} is more often the method than "
        f"the neurons: compare hidden_layer_accuracy.csv)"
        for r in spread.itertuples()
        if r.top_share > share
    ]


def log_collapses(spread: pd.DataFrame, logger: logging.Logger) -> list[str]:
    """Log :func:`collapse_warnings` of ``spread`` as warnings on ``logger``; returns them."""
    messages = collapse_warnings(spread)
    for message in messages:
        logger.warning("%s", message)
    return messages
