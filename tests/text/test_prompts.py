"""andlib.text.prompts: the prompts' messages."""

from __future__ import annotations

from andlib.text.prompts import (
    PROMPTS,
    adjective_messages,
    captions_from_summarize_messages,
    icl_messages,
    parse_yes_no,
    simulation_messages,
    summarize_messages,
)


def test_prompts_build_messages():
    msgs = summarize_messages(["A dog\nbarks.", "Rain."])
    assert [m["role"] for m in msgs] == ["system", "user"]
    assert "1. A dog barks.\n2. Rain." in msgs[1]["content"]
    assert "2 audio clips" in msgs[1]["content"]
    assert captions_from_summarize_messages(msgs) == ["A dog barks.", "Rain."]
    assert captions_from_summarize_messages(adjective_messages("loud")) is None

    top1 = icl_messages("Loud barking.", ["dog", "rain"], top=1)[1]["content"]
    top5 = icl_messages("Loud barking.", ["dog", "rain"], top=5)[1]["content"]
    assert "dog, rain" in top1 and "exactly one class name" in top1
    assert "5 class names" in top5
    assert '"crisp"' in adjective_messages("crisp")[1]["content"]
    sim = simulation_messages("Loud barking.", ["a dog", "rain"])
    assert [m["role"] for m in sim] == ["user"]
    assert '"Loud barking."' in sim[0]["content"] and sim[0]["content"].endswith(
        "1. a dog\n2. rain"
    )
    assert set(PROMPTS) == {"summarize", "icl", "adjective", "simulate", "detect"}
    assert parse_yes_no("Yes.") is True and parse_yes_no(" no, it is not") is False
    assert parse_yes_no("Maybe") is None
