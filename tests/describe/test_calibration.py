"""andlib.describe.calibration: Module B's calibrated summaries."""

from __future__ import annotations

import numpy as np
import pytest

from andlib.describe import concepts as C
from andlib.describe.concepts import (
    calibrate,
    comparable,
    load_concept_set,
    split_sentences,
)

ESC50 = load_concept_set("esc50")


@pytest.fixture(scope="module")
def embedder():
    from andlib.text.embeddings import get_embedder

    return get_embedder()


def test_split_sentences_and_subject():
    text = "Most clips (4 of 5) are loud. Some clips (2 of 5) have short silences!\n- Only one clip is tonal"
    assert split_sentences(text) == [
        "Most clips (4 of 5) are loud.",
        "Some clips (2 of 5) have short silences!",
        "Only one clip is tonal",
    ]
    assert comparable("Most clips (4 of 5) are loud.") == "are loud."
    assert comparable("All 5 clips are loud.") == "are loud."
    assert comparable("The audio clips feature a dog.") == "feature a dog."
    assert comparable("Dogs bark.") == "Dogs bark."
    # Counts never make two sentences alike: "(4 of 5 clips)", "(all 5)", "(both)" go.
    assert comparable("Loud sounds (4 of 5 clips); sharp (all 5).") == "Loud sounds; sharp."
    assert comparable("A dog barking (both clips).") == "A dog barking."


def test_calibration_drops_shared_sentences_and_keeps_distinct_ones(embedder):
    high = (
        "The audio clips feature a dog barking loudly. "
        "The recordings are of poor quality with distortion."
    )
    low = "The clips contain birds chirping. The audio quality is poor, with some distortion."
    assert calibrate(high, low, embedder) == "The audio clips feature a dog barking loudly."
    assert calibrate(high, "", embedder) == high  # nothing to compare with
    assert calibrate("", low, embedder) == ""
    assert calibrate("Sure, here is a summary. Dogs bark.", "", embedder) == "Dogs bark."


def test_calibration_keeps_contrasting_sound_adjectives(embedder):
    high, low = "All 5 clips are loud.", "All 5 clips are quiet."
    assert calibrate(high, low, embedder) == high
    assert calibrate(high, low, embedder, keep_contrasts=False) == ""  # AND's plain rule
    assert calibrate(high, "All 5 clips are loud.", embedder) == ""
    # a higher threshold keeps more
    assert calibrate(high, low, embedder, threshold=0.99, keep_contrasts=False) == high
    # Template sentences look alike on their wording alone (cosine 0.74 here); a source
    # named only in the high sentence keeps it when the concept names are given.
    high = "Some clips (2 of 5) are sounds of dogs with broadband energy."
    low = "Some clips (2 of 5) are bright sounds with broadband energy."
    assert calibrate(high, low, embedder) == ""  # no sound adjective of its own
    assert calibrate(high, low, embedder, concepts=ESC50) == high
    assert calibrate(high, low.replace("bright", "dog"), embedder, concepts=ESC50) == ""


def test_calibration_keeps_a_pitch_the_low_summary_does_not_share():
    high = "A pitch of about 440 Hz, the note A4 (4 of 5 clips)."
    assert calibrate(high, "A pitch of about 1976 Hz, the note B6 (3 of 5 clips).") == high
    assert calibrate(high, "A pitch of about 442 Hz, the note A4 (3 of 5 clips).") == ""


class BagOfWords:
    """A sentence embedder stand-in: unit-norm word counts, so shared words mean similarity."""

    def encode(self, texts):
        words = [
            t.lower().replace("(", " ").replace(")", " ").replace(".", " ").split() for t in texts
        ]
        vocab = sorted({w for ws in words for w in ws})
        out = np.zeros((len(texts), max(len(vocab), 1)), dtype=np.float32)
        for i, ws in enumerate(words):
            for w in ws:
                out[i, vocab.index(w)] += 1
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


def test_whole_sentences_make_the_count_subject_look_shared():
    high, low = "Most clips (4 of 5) are loud.", "Most clips (4 of 5) are dogs barking."
    kw = {"embedder": BagOfWords(), "threshold": 0.5, "keep_contrasts": False}
    assert C.calibrate(high, low, **kw) == high  # "are loud." vs "are dogs barking.": kept
    assert C.calibrate(high, low, strip_counts=False, **kw) == ""  # AND: the subject matches
