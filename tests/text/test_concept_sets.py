"""andlib.text.concept_sets: shipped and file concept sets."""

from __future__ import annotations

import pandas as pd
import pytest

from andlib.describe.concepts import (
    display_name,
    load_concept_set,
)
from tests.conftest import requires_esc50

ESC50 = load_concept_set("esc50")


def test_shipped_esc50_set():
    assert len(ESC50) == 50 and ESC50[:3] == ["dog", "rooster", "pig"]
    assert "water_drops" in ESC50 and ESC50[-1] == "hand_saw"
    assert display_name("water_drops") == "water drops"


@requires_esc50
def test_esc50_set_is_in_target_order():
    from andlib.data.esc50 import SHARED_ESC50

    meta = pd.read_csv(SHARED_ESC50 / "meta" / "esc50.csv")
    by_target = meta.drop_duplicates("target").set_index("target")["category"].sort_index()
    assert ESC50 == by_target.tolist()


def test_concept_file_ignores_blanks_comments_and_duplicates(tmp_path):
    f = tmp_path / "set.txt"
    f.write_text("# my concepts\n\ndog\n  water_drops  \n# more\ndog\nsiren\n")
    assert load_concept_set(f) == ["dog", "water_drops", "siren"]
    assert load_concept_set(str(f)) == ["dog", "water_drops", "siren"]


def test_missing_or_empty_concept_set_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.txt.*shipped set"):
        load_concept_set(tmp_path / "nope.txt")
    (tmp_path / "empty.txt").write_text("# nothing\n\n")
    with pytest.raises(ValueError, match="no concepts"):
        load_concept_set(tmp_path / "empty.txt")
