"""Every prompt the pipeline sends to a language model, in one place.

The defaults follow the AND paper (Wu et al., ICML 2024): the LLM (i) summarizes what the
descriptions of a neuron's top-K clips have in common, (ii) picks the concept of a closed set
that matches such a summary (in-context learning, top-1 or top-5), and (iii) says whether an
adjective describes an acoustic quality (Module B keeps only those).

:data:`PROMPTS` holds the raw templates (``str.format`` fields in braces); the ``*_messages``
functions fill them in and return chat message lists ready for :meth:`andlib.text.llm.LLM.complete`.
Editing a template changes the cache key of every affected LLM call, so replies to the old
wording are never reused for the new one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from andlib.templates import PROMPTS as PROMPTS

Messages = list[dict[str, str]]


ADJECTIVE_PROMPTS = {"acoustic": "user", "tone_emotion": "user_tone_emotion"}
"""``concepts.adjective_prompt`` -> the part of ``PROMPTS["adjective"]`` it asks with."""


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def summarize_messages(captions: Sequence[str]) -> Messages:
    """The chat messages asking for the commonalities of ``captions`` (one line per clip)."""
    t = PROMPTS["summarize"]
    listing = "\n".join(f"{i}. {_one_line(c)}" for i, c in enumerate(captions, 1))
    return [
        {"role": "system", "content": t["system"]},
        {"role": "user", "content": t["user"].format(k=len(captions), captions=listing)},
    ]


def captions_from_summarize_messages(messages: Messages) -> list[str] | None:
    """The captions inside messages built by :func:`summarize_messages`, else ``None``.

    The result is checked by rebuilding the messages, so any other prompt gives ``None``.
    """
    if len(messages) != 2:
        return None
    lines = str(messages[-1].get("content", "")).splitlines()
    captions: list[str] = []
    for line in lines:
        m = re.match(r"(\d+)\. (.*)$", line)
        if m and int(m.group(1)) == len(captions) + 1:
            captions.append(m.group(2))
    return captions if summarize_messages(captions) == messages else None


def icl_messages(summary: str, concepts: Sequence[str], top: int = 1) -> Messages:
    """The chat messages asking which of ``concepts`` (top-1, or the ``top`` best) fit ``summary``."""
    if top < 1:
        raise ValueError(f"top must be at least 1, got {top}")
    t = PROMPTS["icl"]
    instruction = t["instruction_top1"] if top == 1 else t["instruction_topn"].format(top=top)
    user = t["user"].format(
        summary=_one_line(summary),
        concepts=", ".join(_one_line(c) for c in concepts),
        instruction=instruction,
    )
    return [{"role": "system", "content": t["system"]}, {"role": "user", "content": user}]


def adjective_messages(adjective: str, wording: str = "acoustic") -> Messages:
    """The chat messages asking whether ``adjective`` describes an acoustic quality (yes/no).

    ``wording`` is ``concepts.adjective_prompt``: ``acoustic`` or AND's ``tone_emotion``.
    """
    if wording not in ADJECTIVE_PROMPTS:
        raise ValueError(
            f"unknown adjective prompt {wording!r}; choose from {', '.join(ADJECTIVE_PROMPTS)}"
        )
    t = PROMPTS["adjective"]
    user = t[ADJECTIVE_PROMPTS[wording]].format(adjective=_one_line(adjective))
    return [{"role": "system", "content": t["system"]}, {"role": "user", "content": user}]


def simulation_messages(description: str, captions: Sequence[str]) -> Messages:
    """The chat message asking for a 0-10 rating of each caption against a neuron's
    description (one ``"<number>: <rating>"`` line per clip)."""
    listing = "\n".join(f"{i}. {c}" for i, c in enumerate(captions, 1))
    content = PROMPTS["simulate"]["user"].format(description=description, captions=listing)
    return [{"role": "user", "content": content}]


def detection_messages(description: str, captions: Sequence[str]) -> Messages:
    """The chat message asking, per caption, whether the described neuron fires for the clip
    (one ``"<number>: yes|no"`` line per clip)."""
    listing = "\n".join(f"{i}. {c}" for i, c in enumerate(captions, 1))
    content = PROMPTS["detect"]["user"].format(description=description, captions=listing)
    return [{"role": "user", "content": content}]


def parse_yes_no_lines(reply: str, n: int) -> list[bool | None]:
    """``n`` answers from ``"<number>: yes|no"`` lines (1-based; the first answer of a number
    counts); ``None`` where a number is missing."""
    out: list[bool | None] = [None] * n
    for m in re.finditer(r"^\W*(\d+)\s*[:.)\-=]\s*\W*(yes|no)\b", reply, flags=re.M | re.I):
        i = int(m.group(1)) - 1
        if 0 <= i < n and out[i] is None:
            out[i] = m.group(2).lower() == "yes"
    return out


def parse_yes_no(reply: str) -> bool | None:
    """``True``/``False`` for a reply that starts with yes/no (any case, punctuation), else ``None``."""
    m = re.match(r"\W*(yes|no)\b", reply.strip().lower())
    return None if m is None else m.group(1) == "yes"
