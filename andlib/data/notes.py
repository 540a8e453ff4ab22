"""Musical pitch arithmetic: Hz, MIDI numbers, cents and note names (``A4`` = MIDI 69 = 440 Hz).

Used by the pitched probing set (:mod:`andlib.data.pitched`), the acoustic captioner's precise
pitch wording (``captioner.precise_pitch``), the extractive summarizer's shared pitch and
the ground-truth pitch evaluation (:mod:`andlib.evaluate.pitch`).

Public surface: :func:`hz_to_midi`, :func:`midi_to_hz`, :func:`note_name`, :func:`note_to_midi`,
:func:`cents`, :func:`pitch_text`, :func:`parse_pitches`, :data:`NOTE_PATTERN`.
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np

NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
_FLATS = {"Db": "C#", "Eb": "D#", "Gb": "F#", "Ab": "G#", "Bb": "A#"}
NOTE_PATTERN = re.compile(r"(?<![A-Za-z0-9#])([A-G])([#b\u266f\u266d]?)(-?\d)(?![0-9A-Za-z])")
"""A note name with its octave (``A4``, ``C#5``, ``Bb3``, ``E-1``), as a whole word."""
_HZ = re.compile(r"(\d+(?:[.,]\d+)?)\s*(k?)hz\b", re.I)


def hz_to_midi(hz: Any) -> Any:
    """MIDI note number (float) of a frequency: 69 + 12 log2(hz / 440)."""
    return 69.0 + 12.0 * np.log2(np.asarray(hz, dtype=np.float64) / 440.0)


def midi_to_hz(midi: Any) -> Any:
    """Frequency of a (fractional) MIDI note number."""
    return 440.0 * 2.0 ** ((np.asarray(midi, dtype=np.float64) - 69.0) / 12.0)


def cents(hz: Any, reference_hz: Any) -> Any:
    """Signed distance in cents from ``reference_hz`` to ``hz``."""
    return 1200.0 * np.log2(np.asarray(hz, dtype=np.float64) / np.asarray(reference_hz))


def note_name(hz: float) -> str:
    """The nearest equal-tempered note of a frequency: ``note_name(440) == "A4"``."""
    midi = int(round(float(hz_to_midi(hz))))
    return f"{NOTE_NAMES[midi % 12]}{midi // 12 - 1}"


def note_to_midi(name: str) -> int:
    """``"A4" -> 69``, ``"C#5"``/``"Db5" -> 73``; raises ``ValueError`` for anything else."""
    m = NOTE_PATTERN.fullmatch(name.strip())
    if not m:
        raise ValueError(f"not a note name: {name!r}")
    letter, accidental, octave = m.groups()
    accidental = {"\u266f": "#", "\u266d": "b"}.get(accidental, accidental)
    pitch = letter + accidental
    pitch = _FLATS.get(pitch, pitch)
    if pitch not in NOTE_NAMES:  # Cb, Fb, E#, B#
        base = NOTE_NAMES.index(letter)
        step = 1 if accidental == "#" else -1
        return (int(octave) + 1) * 12 + base + step
    return (int(octave) + 1) * 12 + NOTE_NAMES.index(pitch)


def pitch_text(hz: float) -> str:
    """A precise pitch phrase: ``"440 Hz (A4)"``, ``"41.2 Hz (E1)"``, ``"1760 Hz (A6)"``:
    whole hertz from 100 Hz up, a tenth below (both within 2 cents), and the nearest note."""
    value = f"{hz:.1f}" if hz < 100 else f"{hz:.0f}"
    return f"{value} Hz ({note_name(hz)})"


def parse_pitches(text: str) -> list[float]:
    """Every pitch a text states, in Hz, in order: numbers with ``Hz``/``kHz``; where none
    is given, note names (``A4`` -> 440.0). ``"about 440 Hz (A4)"`` gives ``[440.0]``."""
    text = str(text or "")
    found = []
    for m in _HZ.finditer(text):
        value = float(m.group(1).replace(",", "."))
        value *= 1000.0 if m.group(2) else 1.0
        if value > 0 and math.isfinite(value):
            found.append(value)
    if found:
        return found
    out = []
    for m in NOTE_PATTERN.finditer(text):
        try:
            out.append(float(midi_to_hz(note_to_midi(m.group(0)))))
        except ValueError:
            continue
    return out
