"""andlib.data.notes: note names, frequencies and pitches in text."""

from __future__ import annotations

import pytest

from andlib.data import notes


def test_note_names_and_frequencies():
    assert notes.note_name(440.0) == "A4"
    assert notes.note_name(41.2) == "E1" and notes.note_name(2093.0) == "C7"
    assert notes.note_name(440 * 2 ** (0.49 / 12)) == "A4"
    assert notes.note_name(440 * 2 ** (0.51 / 12)) == "A#4"
    assert notes.note_to_midi("A4") == 69
    assert notes.note_to_midi("C#5") == notes.note_to_midi("Db5") == 73
    assert notes.note_to_midi("E-1") == 4
    with pytest.raises(ValueError):
        notes.note_to_midi("H2")
    assert notes.pitch_text(440.0) == "440 Hz (A4)"
    assert notes.pitch_text(41.2034) == "41.2 Hz (E1)"


def test_pitches_are_parsed_from_text():
    assert notes.parse_pitches("a steady tone at about 440 Hz (A4)") == [440.0]
    assert notes.parse_pitches("around 1.2 kHz, then 300 hz") == [1200.0, 300.0]
    assert notes.parse_pitches("the note C#5") == pytest.approx([554.365], abs=1e-3)
    assert notes.parse_pitches("A loud, sharp sound with a click.") == []
    assert notes.parse_pitches("Most clips (4 of 5) are loud") == []
