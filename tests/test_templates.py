"""andlib.templates: the prompt templates as data, and what hashes them."""

from __future__ import annotations

import string

from andlib.store import resource_digest
from andlib.templates import PROMPTS


def fields(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def test_every_task_has_a_user_template():
    assert {"summarize", "icl", "adjective", "simulate", "detect"} <= set(PROMPTS)
    for task, parts in PROMPTS.items():
        assert parts["user"].strip() and all(t.strip() for t in parts.values()), task


def test_the_templates_name_the_fields_their_builders_fill():
    assert fields(PROMPTS["summarize"]["user"]) == {"k", "captions"}
    assert {"summary", "concepts", "instruction"} <= fields(PROMPTS["icl"]["user"])


def test_each_task_is_hashed_on_its_own():
    digests = resource_digest(*(f"prompts:{task}" for task in PROMPTS))
    assert len(set(digests.values())) == len(PROMPTS)
