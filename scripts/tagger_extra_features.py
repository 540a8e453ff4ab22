"""Would more hand-made statistics make a better source tagger? A measurement, not a stage.

The tagger reads 542 fixed statistics per clip (:func:`andlib.describe.tagger.tagger_features`).
This script adds 347 more, all classic descriptors that need no trained model: mean, SD and
10th / 50th / 90th percentiles of the spectral centroid, bandwidth, roll-off, log flatness,
zero-crossing rate, log RMS and onset strength; the onset envelope's autocorrelation at 32
lags (rhythm); chroma mean and SD; skew and kurtosis of every log-mel band; and each band's
90th percentile relative to the clip's loudest bin and its median. It then cross-fits the
tagger on the 542 features and on all 889, with the caption stage's own splits, ``C`` and
classifiers (:func:`andlib.describe.tagger.cross_fitted_probabilities`), and prints top-1,
top-3 and log loss for each. It looks at no target model, so its numbers may decide the
tagger's features.

The extra statistics are cached in ``--cache`` (by clip order of the config's probing set).
Nothing else is written.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/tagger_extra_features.py --models logistic ensemble
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np

from andlib.config import load_config
from andlib.data.probing import load_probing_set
from andlib.describe.captioners import audio_digest
from andlib.describe.tagger import (
    TaggerCaptioner,
    cross_fit_splits,
    cross_fitted_probabilities,
    topk_accuracy,
)


def extra_features(audio: np.ndarray, sr: int) -> np.ndarray:
    """347 more statistics of one clip (see the module docstring)."""
    import librosa
    from scipy.stats import kurtosis, skew

    y = np.asarray(audio, dtype=np.float32)
    if y.size < 2048:
        y = np.pad(y, (0, 2048 - y.size))
    spec = np.abs(librosa.stft(y, n_fft=1024, hop_length=256))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mel = librosa.power_to_db(
            librosa.feature.melspectrogram(S=spec**2, sr=sr, n_mels=64), top_db=None
        )
        tracks = [
            librosa.feature.spectral_centroid(S=spec, sr=sr)[0],
            librosa.feature.spectral_bandwidth(S=spec, sr=sr)[0],
            librosa.feature.spectral_rolloff(S=spec, sr=sr)[0],
            np.log(librosa.feature.spectral_flatness(S=spec)[0] + 1e-10),
            librosa.feature.zero_crossing_rate(y, frame_length=1024, hop_length=256)[0],
            np.log(librosa.feature.rms(S=spec, frame_length=1024)[0] + 1e-8),
            librosa.onset.onset_strength(S=mel, sr=sr),
        ]
        chroma = librosa.feature.chroma_stft(S=spec**2, sr=sr)
        parts: list[np.ndarray] = [
            np.array(
                [s for v in tracks for s in (v.mean(), v.std(), *np.percentile(v, [10, 50, 90]))]
            )
        ]
        onset = tracks[-1] - tracks[-1].mean()
        ac = np.correlate(onset, onset, "full")[len(onset) - 1 :]
        ac = np.pad(ac, (0, max(0, 64 - len(ac))))
        parts += [
            ac[1:64:2] / (ac[0] + 1e-9),
            chroma.mean(1),
            chroma.std(1),
            skew(mel, axis=1),
            kurtosis(mel, axis=1),
            np.percentile(mel - mel.max(), 90, axis=1),
            np.percentile(mel, 50, axis=1),
        ]
    return np.nan_to_num(np.concatenate(parts)).astype(np.float32)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="configs/default.yaml")
    p.add_argument("--models", nargs="+", default=["logistic", "ensemble"])
    p.add_argument("--cache", default=".cache/andlib/experiments/tagger-extra-features.npz")
    args = p.parse_args()
    cfg = load_config(args.config)
    ps = load_probing_set(cfg)
    digests = [audio_digest(a, ps.sample_rate) for a in ps.audio]
    tagger = TaggerCaptioner(cfg.cache_path / "captions")  # its hand features, cached
    base = tagger.features.get(ps.audio, digests, ps.sample_rate)
    cache = Path(args.cache)
    if cache.exists() and np.load(cache)["digests"].tolist() == digests:
        extra = np.load(cache)["features"]
    else:
        t0 = time.perf_counter()
        extra = np.stack([extra_features(a, ps.sample_rate) for a in ps.audio])
        print(f"extra statistics of {len(ps)} clips in {time.perf_counter() - t0:.0f} s")
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, digests=np.array(digests), features=extra)
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
