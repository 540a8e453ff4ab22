"""andlib.text.extractive: what the extractive summaries state, and what each caption costs."""

from __future__ import annotations

import re

import numpy as np

import andlib.text.extractive as extractive
from andlib.data import notes
from andlib.text.extractive import shared_pitch, summarize_captions


def test_summaries_state_the_pitch_most_captions_share():
    caps = [
        "A quiet, steady, tonal sound at about 440 Hz (A4) with rich harmonics.",
        "A steady, mid-pitched at about 446 Hz (A4) and tonal sound with rich harmonics.",
        "A sound that is steady, mid-pitched at about 452 Hz (A4) and tonal.",
        "A steady tone at about 1760 Hz (A6).",
        "A loud, noisy sound with low-frequency content.",
    ]
    assert shared_pitch(caps, 3) == (446.0, 3)
    assert shared_pitch(caps, 4) is None
    summary = summarize_captions(caps)
    assert "A pitch of about 446 Hz, the note A4 (3 of 5 clips)." in summary, summary
    # the pitch phrase is counted only there: the qualities read as without it
    bare = [re.sub(r" at about \d+ Hz \([A-G]#?\d\)", "", c) for c in caps]
    assert summary.split(" clips). ", 1)[1] == summarize_captions(bare), summary
    # the default wording, "(about 440 Hz)", is no precise statement: no pitch sentence
    plain = [re.sub(r" at about (\d+) Hz \([A-G]#?\d\)", r" (about \1 Hz)", c) for c in caps]
    assert plain[3] == "A steady tone (about 1760 Hz)."
    assert "the note" not in summarize_captions(plain)
    assert shared_pitch(plain, 1) is None
    spread = [f"A steady tone at about {hz} Hz ({notes.note_name(hz)})." for hz in (200, 300, 450)]
    assert "the note" not in summarize_captions(spread)  # three pitches, none shared


def test_each_caption_is_split_and_normalized_once(monkeypatch):
    pool = [
        "Most likely a dog barking, possibly a rooster crowing. A loud, sharp, impulsive sound.",
        "The sound of rain falling. A quiet, steady, noisy hiss with dull low-frequency content.",
        "A loud sound with 3 short bursts and short silences between them.",
        "Perhaps a clock ticking or a dog barking; the source is unclear. A mid-pitched sound.",
        "A quiet, steady, low-pitched, tonal hum (about 110 Hz). It has rich harmonics.",
    ] + [f"A sharp click repeated {n} times, with bright high-frequency content." for n in range(9)]
    rs = np.random.default_rng(0)
    groups = [[pool[i] for i in rs.integers(0, len(pool), 5)] for _ in range(300)]
    extractive._items.clear()
    fast = [extractive.summarize_captions(g) for g in groups]

    calls = []
    real = extractive.source_phrases
    monkeypatch.setattr(extractive, "source_phrases", lambda c: calls.append(c) or real(c))
    extractive._items.clear()
    again = [extractive.summarize_captions(g) for g in groups]
    assert again == fast and len(calls) == len(set(calls)) == len(pool)

    # the code path before the memo: every caption worked out again for every group
    memo = extractive._caption_items

    def every_time(captions):
        extractive._items.clear()
        return memo(captions)

    monkeypatch.setattr(extractive, "_caption_items", every_time)
    assert [extractive.summarize_captions(g) for g in groups] == fast
