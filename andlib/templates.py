"""The LLM prompt templates, as data: :mod:`andlib.text.prompts` builds the messages from them,
and :func:`andlib.store.resource_digest` hashes them into the keys of the stages that ask them."""

from __future__ import annotations

PROMPTS: dict[str, dict[str, str]] = {
    "summarize": {
        "system": (
            "You are an expert in acoustics and sound perception. You read short descriptions "
            "of audio clips and state precisely what they have in common."
        ),
        "user": (
            "Here are descriptions of {k} audio clips:\n"
            "{captions}\n\n"
            "Summarize the commonalities of these clip descriptions in at most three short "
            "sentences: the sound sources and the acoustic qualities (loudness, pitch, timbre, "
            "rhythm, texture, duration) that most of the clips share. Mention a quality only if "
            "several clips have it, and say so when the clips have little in common. Reply with "
            "the summary only."
        ),
    },
    "icl": {
        "system": (
            "You are an expert in sound classification. You match descriptions of sounds to "
            "class names."
        ),
        "user": (
            "Here is a summary of what a group of audio clips have in common:\n"
            "{summary}\n\n"
            "Class names: {concepts}\n\n"
            "{instruction}"
        ),
        "instruction_top1": (
            "Which class name matches the summary best? Reply with exactly one class name "
            "from the list, written as in the list, and nothing else."
        ),
        "instruction_topn": (
            "Which {top} class names match the summary best? Reply with {top} class names from "
            "the list, best match first, one per line, written as in the list, and nothing else."
        ),
    },
    "adjective": {
        "system": "You are an expert in acoustics and in the English language.",
        "user": (
            'Is the adjective "{adjective}" a word that describes an acoustic quality of a '
            "sound, i.e. how something sounds (such as its loudness, pitch, timbre, rhythm or "
            "texture)? Reply with yes or no only."
        ),
        "user_tone_emotion": (
            'Can the adjective "{adjective}" be used to describe the tone, emotion or acoustic '
            "features of audio, music or any other kind of sound? Reply with yes or no only."
        ),
    },
    "simulate": {
        "user": (
            "A neuron of an audio classifier is described as:\n"
            '"{description}"\n'
            "\n"
            "Below are captions of sound clips. For each clip, rate from 0 to 10 how strongly "
            "the neuron\n"
            "should fire for it, i.e. how well the sound matches the description (0 = not at "
            "all, 10 =\n"
            'perfectly). Reply with one line per clip in the form "<number>: <rating>" and '
            "nothing else.\n"
            "\n"
            "{captions}"
        ),
    },
    "detect": {
        "user": (
            "A neuron of an audio classifier is described as:\n"
            '"{description}"\n'
            "\n"
            "Below are captions of sound clips. For each clip, say whether the neuron fires "
            "strongly for it\n"
            "according to the description. Reply with one line per clip in the form "
            '"<number>: yes" or\n'
            '"<number>: no" and nothing else.\n'
            "\n"
            "{captions}"
        ),
    },
}
"""The raw templates: ``PROMPTS[task][part]`` with ``task`` one of ``summarize``, ``icl``,
``adjective``, ``simulate`` (the evaluate stage's LLM simulator), ``detect`` (its LLM
detection simulator). ``PROMPTS["adjective"]["user_tone_emotion"]`` is AND's wording
(``concepts.adjective_prompt: tone_emotion``), which also admits tone and emotion words."""
