"""How far the captions bound the hidden-layer measure of a finished run.

The hidden-layer measure scores the neurons whose top-k clips mostly share one label (3 of 5)
by whether their DB concept names that class. DB reads the captions, never the labels, so it
can only name the class where the captions of those clips do. For every scored neuron this
script counts how many of its top-k clips the source tagger named correctly first
(``tagger_predictions.csv``) and prints:

- the share of scored neurons whose shared class is the tagger's most frequent first guess
  among their top-k clips (ties included): what a DB function that counted the tagger's
  first guesses could reach at most;
- the DB concept's hit rate (``db_<concepts.db_default>``) by that count, 0 to k;
- the DB concepts that most often stand where the class should be.

Nothing is written.

    python scripts/caption_bound.py runs/default runs/whisper/whisper-base
"""

from __future__ import annotations

import argparse
from collections import Counter

import pandas as pd

from andlib.config import load_config
from andlib.evaluate.hidden import majority
from andlib.store import RunDir, decode_list, read_clips, read_neurons, read_table
from andlib.text.names import normalize_concept


def bound_table(run: RunDir) -> tuple[pd.DataFrame, str]:
    """One row per scored hidden neuron: its shared class, how many of its top-k clips the
    tagger names it first for, whether that is the most frequent first guess, the DB concept
    and whether it hits; and the DB column's name."""
    cfg = load_config(str(run.path / "config.yaml"))
    k = cfg.k
    method = f"db_{cfg.concepts.db_default}"
    clips = read_clips(run).set_index("clip_id")
    guess = read_table(run, "tagger_predictions.csv").set_index("clip_id")["top1"]
    neurons = read_neurons(run)
    neurons = neurons[neurons["layer"] != cfg.evaluate.classifier_layer]
    rows = []
    for r in neurons.itertuples():
        top = decode_list(r.top_clips)[:k]
        cls, n = Counter(clips.loc[c, "category"] for c in top).most_common(1)[0]
        if n < majority(k):
            continue
        guesses = Counter(guess.loc[c] for c in top)
        named = guesses.get(cls, 0)
        db = str(getattr(r, method))
        rows.append(
            {
                "layer": r.layer,
                "class": cls,
                "tagger_names_it": named,
                "tagger_plurality": named == max(guesses.values()),
                "db": db,
                "hit": normalize_concept(db) == normalize_concept(cls),
            }
        )
    return pd.DataFrame(rows), method


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", help="run directories with tagger+acoustic captions")
    args = ap.parse_args()
    for path in args.runs:
        table, method = bound_table(RunDir(path))
        print(
            f"\n{path}: {len(table)} scored hidden neurons, {method} top-1 {table.hit.mean():.3f}"
        )
        print(
            f"  shared class is the tagger's most frequent first guess: {table.tagger_plurality.mean():.3f}"
        )
        by = table.groupby("tagger_names_it")["hit"].agg(["size", "mean"]).round(3)
        print("  DB hit rate by how many top clips the tagger names the class for:")
        print("  " + by.to_string().replace("\n", "\n  "))
        misses = table.loc[~table.hit, "db"].value_counts().head(5)
        print(
            "  most frequent DB concepts of the misses: "
            + ", ".join(f"{c} {n}" for c, n in misses.items())
        )


if __name__ == "__main__":
    main()
