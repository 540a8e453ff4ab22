"""From measurements to words: the acoustic captioners' wording (:class:`SetNorms`,
:func:`describe`), the caption vocabulary and the identity phrases of ``metadata+acoustic``."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from andlib.describe.features import FEATURE_COLUMNS
from andlib.text.names import normalize_label

WORDING_VERSION = 1
"""Bump when the wording rules change (enters the acoustic captioners' settings)."""
LABEL_PHRASE_VERSION = 2
"""Bump when :func:`label_phrase` changes for labels other than ESC-50's (enters the caption
stage's key of a folder dataset only, so ESC-50 runs keep theirs)."""
MIN_SET_SIZE = 20
"""Below this many clips there is no set distribution: only absolute anchors choose words."""


# --------------------------------------------------------------------------------------------
# From measurements to words
# --------------------------------------------------------------------------------------------


class SetNorms:
    """Where a clip's measurement falls in the probing set: percentile ranks per feature.

    ``rank(name, value)`` is the fraction of the set below ``value`` (ties count half), or
    ``None`` for a set smaller than :data:`MIN_SET_SIZE`, where only absolute anchors apply.
    """

    def __init__(self, features: pd.DataFrame, min_size: int = MIN_SET_SIZE):
        self.size = len(features)
        self._sorted = (
            {
                c: np.sort(features[c].to_numpy(dtype=float))
                for c in FEATURE_COLUMNS
                if c in features
            }
            if self.size >= min_size
            else {}
        )

    @property
    def relative(self) -> bool:
        return bool(self._sorted)

    def rank(self, name: str, value: float) -> float | None:
        values = self._sorted.get(name)
        if values is None:
            return None
        lo = np.searchsorted(values, value, side="left")
        hi = np.searchsorted(values, value, side="right")
        return float((lo + hi) / 2 / len(values))


def _grade(
    value: float,
    rank: float | None,
    *,
    low: float,
    high: float,
    rel_low_below: float,
    rel_high_above: float,
    share: float = 0.2,
) -> int:
    """-1 (low), +1 (high) or 0: absolute anchors first, then the set's bottom/top ``share``.

    A set-relative word is used only where it is plausible in absolute terms too
    (``rel_high_above`` / ``rel_low_below``): the quietest clip of a loud set is not "quiet".
    """
    if value >= high:
        return 1
    if value <= low:
        return -1
    if rank is not None:
        if rank >= 1 - share and value >= rel_high_above:
            return 1
        if rank <= share and value <= rel_low_below:
            return -1
    return 0


@dataclass
class _Words:
    adjectives: list[str]
    noun: str
    hz: float | None  # stated pitch, for pitched sounds
    details: list[str]  # noun phrases: "with ..."
    actions: list[str]  # verb phrases: "that ..."


@dataclass
class _Kind:
    """What sort of sound a clip is, from its measurements (thresholds in one place)."""

    tonal: bool  # periodic most of the time
    partly_tonal: bool  # periodic some of the time (voices, calls)
    impulsive: bool  # energy in brief transients (clicks, crackles)
    percussive: bool  # sharp attacks, less brief (knocks, steps)
    train: bool  # a series of transients
    regular: bool  # evenly spaced onsets
    busy: bool  # many onsets, unevenly spaced
    steady: bool  # no onsets, no silences, a flat level
    intermittent: bool  # several events separated by silences
    single: bool  # one event, then silence

    @classmethod
    def of(cls, f: dict[str, float]) -> _Kind:
        n_onsets = f["onset_rate"] * f["duration_s"]
        tonal = f["voiced_frac"] >= 0.5 and f["harmonicity"] >= 0.6
        impulsive = f["impulsiveness"] >= 0.3
        percussive = not impulsive and f["impulsiveness"] >= 0.12 and f["attack_db"] >= 25
        return cls(
            tonal=tonal,
            partly_tonal=not tonal and f["voiced_frac"] >= 0.15,
            impulsive=impulsive,
            percussive=percussive,
            train=n_onsets >= 3 and (impulsive or percussive),
            regular=n_onsets >= 4 and f["onset_regularity"] >= 0.5,
            busy=n_onsets >= 4 and f["onset_rate"] >= 2,
            steady=f["onset_rate"] <= 0.5
            and f["silence_frac"] < 0.1
            and f["level_std_db"] <= 4.0
            and abs(f["level_trend_db"]) < 6.0,
            intermittent=f["n_events"] >= 2 and f["silence_frac"] >= 0.2,
            single=f["n_events"] == 1 and f["silence_frac"] >= 0.5,
        )


_COUNTS = {2: "two", 3: "three", 4: "four", 5: "five"}
_PITCH_WORDS = [(300, "low-pitched"), (1400, "mid-pitched"), (4000, "high-pitched")]


def _choose_words(f: dict[str, float], norms: SetNorms | None, alt: int = 0) -> _Words:
    """Turn one clip's measurements into words (see :func:`describe` for the anchors).

    Every caption says something about four things: loudness (when it stands out), texture
    (tonal, partly tonal, noisy, impulsive or percussive), time course (steady, repetitive,
    irregular, intermittent, a single burst, fluctuating or continuous) and spectrum (where
    the energy is, bright or dull); pitch, its movement and the envelope are added when clear.
    ``alt`` (0 or 1) picks between equivalent phrasings.
    """
    norms = norms or SetNorms(pd.DataFrame())
    kind = _Kind.of(f)
    adjectives: list[str] = []

    loud = _grade(
        f["loudness_db"], norms.rank("loudness_db", f["loudness_db"]),
        low=-35, high=-11, rel_low_below=-18, rel_high_above=-20,
    )  # fmt: skip
    if loud:
        adjectives.append(
            ("very loud" if f["loudness_db"] >= -3 else "loud") if loud > 0
            else ("very quiet" if f["loudness_db"] <= -48 else "quiet")
        )  # fmt: skip
    if kind.impulsive or kind.percussive or f["attack_db"] >= 30:
        adjectives.append("sharp")
    if kind.steady:
        adjectives.append("steady")
    elif kind.regular:
        adjectives.append("repetitive")
    elif kind.train or kind.busy:
        adjectives.append("irregular")
    elif kind.intermittent:
        adjectives.append("intermittent")
    elif not kind.single:
        adjectives.append("fluctuating" if f["level_std_db"] >= 7 else "continuous")
    if kind.regular or kind.train:
        if f["onset_rate"] >= 10:
            adjectives.append("fast")
        elif f["onset_rate"] < 6:
            adjectives.append("slow")
    hz = None
    if (kind.tonal or kind.partly_tonal) and f["f0_hz"] > 0:
        hz = f["f0_hz"] if f["f0_hz"] <= 5000 else None
        adjectives.append(
            next((w for top, w in _PITCH_WORDS if f["f0_hz"] < top), "very high-pitched")
        )
    adjectives.append(
        "impulsive" if kind.impulsive else "percussive" if kind.percussive
        else "tonal" if kind.tonal else "partly tonal" if kind.partly_tonal else "noisy"
    )  # fmt: skip

    band, details = _spectrum(f, norms, kind, alt)
    details += _time_course(f, kind, hz, alt)
    actions = []
    if f["attack_db"] >= 25 and not kind.train and f["onset_rate"] * f["duration_s"] <= 3:
        actions.append("starts suddenly")
    if f["level_trend_db"] <= -10:
        actions.append("fades away into silence" if kind.single else "fades away")
    elif f["level_trend_db"] >= 8:
        actions.append("grows louder")
    if kind.single and f["level_trend_db"] > -10:
        actions.append("then falls silent")
    return _Words(adjectives, _noun(f, kind, band), hz, details[:3], actions)


def _spectrum(f: dict[str, float], norms: SetNorms, kind: _Kind, alt: int) -> tuple[str, list[str]]:
    """The band where the energy lies and phrases for it (plus timbre for tonal sounds)."""

    def top(name: str, share: float) -> bool:
        rank = norms.rank(name, f[name])
        return rank is not None and rank >= 1 - share

    if f["low_ratio"] >= 0.7 or (top("low_ratio", 0.15) and f["low_ratio"] >= 0.5):
        band = "low-frequency"
    elif f["high_ratio"] >= 0.6 or (top("high_ratio", 0.15) and f["high_ratio"] >= 0.25):
        band = "high-frequency"
    elif f["flatness"] >= 0.3 or f["bandwidth_hz"] >= 1800:
        band = "broadband"
    else:
        band = "midrange"
    bright = _grade(
        f["centroid_hz"], norms.rank("centroid_hz", f["centroid_hz"]),
        low=300, high=3500, rel_low_below=700, rel_high_above=1500,
    )  # fmt: skip
    colour = {1: "bright", -1: "dull"}.get(bright, "")
    details = []
    if kind.tonal and f["tone_purity"] >= 0.85:
        details.append("a pure, sine-like timbre")
        if band != "midrange":
            details.append(f"{band} content")
        return band, details
    if kind.tonal and f["tone_purity"] < 0.8:
        details.append("rich harmonics")
    if band == "broadband":
        details.append(
            f"{colour + ', ' if colour else ''}broadband energy spread across the spectrum"
        )
    elif band == "midrange" and not colour:
        where = _hz_text(f["centroid_hz"])
        details.append(
            f"energy centred around {where}" if alt == 0 else f"most of its energy near {where}"
        )
    else:
        details.append(
            f"{colour + ' ' if colour else ''}{band} {'content' if alt == 0 else 'energy'}"
        )
    return band, details


def _time_course(f: dict[str, float], kind: _Kind, hz: float | None, alt: int) -> list[str]:
    """Phrases for silences between events and for the movement of the pitch."""
    details = []
    if kind.intermittent and not kind.single:
        pause = "long pauses" if f["gap_s"] >= 0.6 else ("short silences", "brief gaps")[alt]
        n = int(f["n_events"])
        if n in _COUNTS and not kind.train:
            details.append(f"{_COUNTS[n]} bursts separated by {pause}")
        else:
            details.append(f"{pause} between bursts")
    if hz is not None and f["voiced_frac"] >= 0.3:
        if f["pitch_trend_oct"] >= 0.5:
            details.append("a rising pitch")
        elif f["pitch_trend_oct"] <= -0.5:
            details.append("a falling pitch")
        elif f["pitch_spread_oct"] >= 0.25:
            details.append("a wavering pitch")
    return details


def _noun(f: dict[str, float], kind: _Kind, band: str) -> str:
    if kind.train:
        if f["impulsiveness"] >= 0.8:
            return "series of clicks"
        if not kind.regular and f["onset_rate"] >= 6:
            return "crackling"
        return "series of knocks" if f["centroid_hz"] < 800 else "series of taps"
    if (kind.impulsive or kind.percussive) and f["onset_rate"] * f["duration_s"] < 3:
        return "impact" if f["centroid_hz"] < 1500 else "click"
    if kind.tonal and kind.steady:
        if f["f0_hz"] < 300:
            return "hum"
        return "whistle" if f["tone_purity"] >= 0.85 and f["f0_hz"] >= 1400 else "sound"
    if not (kind.tonal or kind.partly_tonal) and kind.steady and band != "midrange":
        return {"low-frequency": "rumble", "high-frequency": "hiss"}.get(band, "sound")
    if kind.single and f["event_s"] < 0.5:
        return "burst"
    return "sound"


def _hz_text(hz: float) -> str:
    return (
        f"{hz / 1000:.1f} kHz"
        if hz >= 1000
        else f"{hz:.0f} Hz"
        if hz < 200
        else f"{round(hz, -1):.0f} Hz"
    )


def _article(word: str) -> str:
    return "An" if word[:1].lower() in "aeio" else "A"


def _join(items: Sequence[str], sep: str = ", ") -> str:
    items = [i for i in items if i]
    if len(items) <= 1:
        return "".join(items)
    return sep.join(items[:-1]) + " and " + items[-1]


def _compose(w: _Words, variant: int, precise_pitch: bool = False) -> str:
    """One or two sentences from the chosen words; ``variant`` picks one of three shapes.
    ``precise_pitch``: the pitch as " at about 440 Hz (A4)" instead of " (about 440 Hz)"."""
    if precise_pitch:
        from andlib.data.notes import pitch_text

        pitch = f" at about {pitch_text(w.hz)}" if w.hz else ""
    else:
        pitch = f" (about {_hz_text(w.hz)})" if w.hz else ""
    head = f"{', '.join(w.adjectives)} {w.noun}".strip()
    head = f"{_article(head)} {head}{pitch}"
    details, actions = _join(w.details), _join(w.actions)
    shape = variant % 3
    if shape == 1 and details:  # "A loud, steady hum. It has ..., and it fades away."
        return f"{head}. It has {details}" + (f", and it {actions}." if actions else ".")
    if shape == 2 and len(w.adjectives) >= 2:  # "A hum that is loud and steady, with ..."
        adjs = [a + pitch if a.endswith("-pitched") else a for a in w.adjectives]
        text = f"{_article(w.noun)} {w.noun} that is {_join(adjs)}"
        text += f", with {details}" if details else ""
        return text + (f"; it {actions}." if actions else ".")
    text = head + (f" with {details}" if details else "")
    if actions:
        text += f", and it {actions}" if details else f" that {actions}"
    return text + "."


def describe(
    features: dict[str, float],
    norms: SetNorms | None = None,
    variant: int = 0,
    precise_pitch: bool = False,
) -> str:
    """A caption from one clip's :func:`acoustic_features`.

    ``norms`` (a :class:`SetNorms` of the whole probing set) enables set-relative words
    ("loud" = among the loudest fifth of the set, when plausible in absolute terms as well);
    without it only absolute anchors apply (``low-pitched`` below 300 Hz, ``high-pitched``
    above 1.4 kHz, ``quiet`` below -35 dB, ``loud`` above -11 dB on the loudness scale).
    ``variant`` picks the sentence shape (the acoustic captioner derives it from the audio
    hash, so wording varies across clips but never between runs).
    """
    text = _compose(_choose_words(features, norms, alt=(variant // 3) % 2), variant, precise_pitch)
    return text[0].upper() + text[1:]


_STOPWORDS = frozenset(
    "a an the and with of it its is that has between about around across to this then into "
    "them there by in on are be sound hz khz energy most near centred content separated "
    "spread spectrum series away".split()
)


def caption_vocabulary(captions: Sequence[str], top: int | None = None) -> pd.Series:
    """In how many ``captions`` each descriptive word occurs (most frequent first).

    Words are lower-cased and hyphenated words kept whole (``low-pitched``); numbers,
    articles, prepositions and the captioners' filler ("sound", "energy", "centred"...) are
    left out.
    """
    counts: dict[str, int] = {}
    for text in captions:
        for word in set(re.findall(r"[a-z]+(?:-[a-z]+)*", str(text).lower())):
            if word not in _STOPWORDS and len(word) > 1:
                counts[word] = counts.get(word, 0) + 1
    series = pd.Series(counts, dtype=int, name="count").sort_values(ascending=False, kind="stable")
    return series.head(top) if top else series


# --------------------------------------------------------------------------------------------
# Identity phrases (metadata+acoustic)
# --------------------------------------------------------------------------------------------

ESC50_PHRASES = {
    "dog": "a dog barking",
    "rooster": "a rooster crowing",
    "pig": "a pig grunting",
    "cow": "a cow mooing",
    "frog": "a frog croaking",
    "cat": "a cat meowing",
    "hen": "a hen clucking",
    "insects": "insects buzzing",
    "sheep": "a sheep bleating",
    "crow": "a crow cawing",
    "rain": "rain falling",
    "sea_waves": "sea waves breaking",
    "crackling_fire": "a fire crackling",
    "crickets": "crickets chirping",
    "chirping_birds": "birds chirping",
    "water_drops": "water dripping",
    "wind": "wind blowing",
    "pouring_water": "water being poured",
    "toilet_flush": "a toilet flushing",
    "thunderstorm": "a thunderstorm",
    "crying_baby": "a baby crying",
    "sneezing": "someone sneezing",
    "clapping": "hands clapping",
    "breathing": "someone breathing",
    "coughing": "someone coughing",
    "footsteps": "footsteps",
    "laughing": "people laughing",
    "brushing_teeth": "someone brushing their teeth",
    "snoring": "someone snoring",
    "drinking_sipping": "someone drinking and sipping",
    "door_wood_knock": "knocking on a wooden door",
    "mouse_click": "a computer mouse clicking",
    "keyboard_typing": "typing on a keyboard",
    "door_wood_creaks": "a wooden door creaking",
    "can_opening": "a can being opened",
    "washing_machine": "a washing machine running",
    "vacuum_cleaner": "a vacuum cleaner running",
    "clock_alarm": "an alarm clock ringing",
    "clock_tick": "a clock ticking",
    "glass_breaking": "glass breaking",
    "helicopter": "a helicopter flying",
    "chainsaw": "a chainsaw running",
    "siren": "a siren wailing",
    "car_horn": "a car horn honking",
    "engine": "an engine running",
    "train": "a train passing",
    "church_bells": "church bells ringing",
    "airplane": "an airplane flying",
    "fireworks": "fireworks exploding",
    "hand_saw": "a hand saw cutting",
}
"""Natural phrases for ESC-50's 50 categories; other labels read ``The sound of {label}.``"""


def label_phrase(category: str) -> str:
    """What a caption says for a label: ESC-50's phrase (``"dog"`` -> ``"a dog barking"``),
    else the label as :func:`~andlib.text.names.normalize_label` reads it (no numeric prefix,
    no punctuation: ESC-10's ``"008 - Chainsaw"`` -> ``"a chainsaw running"``, ``"001 - Dog
    bark"`` -> ``"dog bark"``)."""
    key = str(category).strip()
    words = normalize_label(key)
    phrase = ESC50_PHRASES.get(key.lower()) or ESC50_PHRASES.get(words.replace(" ", "_"))
    return phrase or words or key


def identity_sentence(category: str) -> str:
    """``"dog"`` -> ``"The sound of a dog barking."``; ``""`` -> ``""`` (no label, no sentence)."""
    key = str(category).strip()
    if not key:
        return ""
    return f"The sound of {label_phrase(key)}."
