"""Would more hand-made statistics make a better source tagger? A measurement, not a stage.

The tagger reads 542 fixed statistics per clip (:func:`andlib.describe.tagger.tagger_features`).
This script adds the 347 of :func:`andlib.describe.tagger_extra.extra_features`
(``captioner.tagger_features: hand+extra``), classic descriptors that need no trained model,
then cross-fits the
tagger on the 542 features and on all 889, with the caption stage's own splits, ``C`` and
classifiers (:func:`andlib.describe.tagger.cross_fitted_probabilities`), and prints top-1,
top-3 and log loss for each. It looks at no target model, so its numbers may decide the
tagger's features.

Both feature sets are cached per clip where the caption stage keeps them
(``<cache_dir>/captions/``, :class:`~andlib.describe.tagger_extra.ExtendedFeatures`). Nothing
else is written.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/tagger_extra_features.py --models logistic ensemble
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from andlib.config import load_config
from andlib.data.probing import load_probing_set
from andlib.describe.captioners import audio_digest
from andlib.describe.tagger import (
    cross_fit_splits,
    cross_fitted_probabilities,
    topk_accuracy,
)
from andlib.describe.tagger_extra import ExtendedFeatures


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="configs/default.yaml")
    p.add_argument("--models", nargs="+", default=["logistic", "ensemble"])
    args = p.parse_args()
    cfg = load_config(args.config)
    ps = load_probing_set(cfg)
    digests = [audio_digest(a, ps.sample_rate) for a in ps.audio]
    features = ExtendedFeatures(cfg.cache_path / "captions")  # both sets, cached per clip
    t0 = time.perf_counter()
    base = features.hand.get(ps.audio, digests, ps.sample_rate)
    extra = features.extra.get(ps.audio, digests, ps.sample_rate)
    print(f"features of {len(ps)} clips ready in {time.perf_counter() - t0:.0f} s")
    labels = ps.labels.astype(int)
    splits = np.asarray(cross_fit_splits(ps.meta, cfg.captioner.tagger_splits, cfg.seed))
    n_classes = int(labels.max()) + 1
    for model in args.models:
        for name, x in (("hand", base), ("hand+extra", np.hstack([base, extra]))):
            t0 = time.perf_counter()
            probs = cross_fitted_probabilities(
                x, labels, splits, n_classes, cfg.captioner.tagger_c, model, cfg.seed
            )
            right = probs[np.arange(len(labels)), labels]
            print(
                f"{model:9s} {name:11s} {x.shape[1]:4d} features: "
                f"top-1 {topk_accuracy(probs, labels, 1):.4f}  "
                f"top-3 {topk_accuracy(probs, labels, 3):.4f}  "
                f"log loss {-np.log(np.clip(right, 1e-9, 1)).mean():.3f}  "
                f"({time.perf_counter() - t0:.0f} s)",
                flush=True,
            )


if __name__ == "__main__":
    main()
