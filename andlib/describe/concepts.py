"""Modules A, B and C of AND: closed-set concepts, summary calibration, open-set concepts.

**Module A: closed-set concept identification.** Each neuron gets concepts from a closed set
(:func:`load_concept_set`; ESC-50's 50 classes by default) three ways:

- DB, description-based (:func:`db_concepts`): every clip's caption is embedded with the
  sentence embedder and compared with every concept name, ``concept_probs = softmax(100 *
  cos)`` over concepts (AND's DB, 100 being CLIP's logit scale), and the chosen similarity
  functions (:mod:`andlib.describe.similarity`) score these against the layer's activations. The
  functions get the full ``[n_clips, n_concepts]`` and ``[n_clips, n_neurons]`` matrices and
  restrict themselves to each neuron's top clips as CLIP-Dissect does (soft-WPMI its top 100,
  WPMI its top 28, rank-reorder its top 5 %; the cosines use every clip): this is the paper's
  definition (``[v_c]_j = e_c . e_{d_j}`` over all clips ``j`` of the probing set). AND's
  code instead scores each neuron alone on its K=5 top clips, where soft-WPMI's ``p(c)``
  normalisation over a single neuron cancels out (with ``lam = 1`` every score is 0):
  ``concepts.db_clips: top_k`` does that (:func:`db_scores`). The functions' constants are
  ``concepts.similarity_params``.
- TAB, text-audio-based (:func:`tab_concepts`): the same with CLAP: audio embeddings of every
  clip (resampled to 48 kHz, ``truncation="rand_trunc"``, seeded) against the text
  embeddings of ``"This is a sound of <concept>."``, ``softmax(CLAP's logit scale * cos)``
  (``concepts.tab_logit_scale: 1.0``: AND's unscaled softmax),
  scored with ``concepts.tab_similarity`` against the full activation matrix. Skipped (the
  function returns ``None`` and says why, the stage records why in its ``tab`` entry) only
  when ``concepts.clap_model`` is not set; a configured model that cannot be loaded is an
  error (:class:`ClapLoadError`). A clip CLAP cannot read is left out of TAB's scoring and
  listed in ``tab_skipped_clips.csv`` (``clip_id, path, reason``), never scored as silence.
- ICL, in-context learning (:func:`icl_concepts`): the LLM reads the neuron's high summary
  and names the best concept (or the ``top`` best); replies are parsed leniently
  (:func:`parse_icl_reply`) and mapped onto the concept set, exactly when a name matches and
  otherwise by embedding similarity of ``"This is an audio about <x>"`` (AND's mapping). The
  offline ``extractive`` backend is not a language model: then the concepts are ranked by
  the embedding similarity between the summary and the concepts instead, and the result is
  reported under its own method name, ``icl_embedding`` (columns ``icl_embedding`` and
  ``icl_embedding_top5`` of ``neurons.csv``, never ``icl``). With an LLM a reply naming fewer
  than 5 concepts is completed with embedding neighbours; ``icl_llm_slots`` counts the
  slots of each neuron's top 5 the LLM named itself.

**Module B: summary calibration** (:func:`calibrate`, :func:`acoustic_adjectives`). Sentences
of the high summary whose embedding cosine to any sentence of the low summary reaches
``concepts.calibration_threshold`` (0.5, AND's default) are dropped: they describe what high
and low clips share. Sentences are compared without their clip counts ("(4 of 5 clips)", "Most clips (4 of 5)"),
and (``concepts.calibration_keep_contrasts``, on by default) a matched sentence is kept when it
names a sound adjective or a concept word its low counterparts do not, because the embedder
scores "are loud." and "are quiet." 0.81 alike. The adjectives of the calibrated summary (spaCy POS tags, hyphenated compounds as one word,
negated ones and a stop list skipped) are kept when they describe sound: the LLM is asked
about each distinct adjective once (cached) with a generative backend, the shipped lexicon
``resources/sound_adjectives.txt`` decides otherwise.

**Module C: open-set concepts** (:func:`open_concepts`): the nouns and verbs of the calibrated
summary, lemmatized, de-duplicated, without generic words ("sound", "clip", ...);
``concepts.open_concepts_verbs: false`` keeps the nouns only, as the paper does.

Every departure from AND has a config key that restores AND's choice
(``configs/paper-faithful.yaml``, ``docs/paper-faithful.md``).

:func:`run_stage` runs all three for every neuron of ``summaries.csv`` and writes
``neurons.csv``. Embeddings of distinct sentences are computed once, spaCy parses each
distinct summary once, and the similarity functions score a whole layer at a time.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import torch

from andlib.config import Config, stable_hash
from andlib.describe.extractive import hyphenated_spans
from andlib.describe.similarity import get_similarity, top_concepts, top_concepts_scored
from andlib.describe.spread import concept_spread, log_collapses
from andlib.store import RESOURCE_DIR, ActivationCache, RunDir, Stage, resource_path
from andlib.text.concept_sets import (
    concept_set_resource,
    display_name,
    load_concept_set,
)
from andlib.text.embeddings import embedder_device
from andlib.text.names import normalize_concept
from andlib.text.nlp import load_spacy

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

STAGE = "concepts"
VERSION = 3
"""Algorithm version of the concepts stage (part of its cache key): raise it when a change of
the code changes ``neurons.csv`` for the same inputs."""
RESOURCES = RESOURCE_DIR
ADJECTIVE_LEXICON = "sound_adjectives.txt"
"""The shipped sound-adjective lexicon (a file in :func:`andlib.store.resource_dir`)."""

DB_LOGIT_SCALE = 100.0
"""DB's caption-concept probabilities: ``softmax(DB_LOGIT_SCALE * cosine)`` (AND uses CLIP's 100)."""
ICL_TEMPLATE = "This is an audio about {}"
"""How ICL replies, summaries and concepts are embedded for matching (AND's template)."""
CLAP_TEMPLATE = "This is a sound of {}."
CLAP_SAMPLE_RATE = 48000
ICL_FALLBACK = "icl_embedding"
"""The method name of ICL without a generative LLM (concepts ranked by embedding similarity)."""
TAB_SKIPPED_CLIPS = "tab_skipped_clips.csv"
"""Clips TAB left out because CLAP could not read them: ``clip_id, path, reason``."""
CONCEPT_SPREAD = "concept_spread.csv"
"""Per layer and closed-set method, how evenly the top-1 concepts spread over the neurons."""

ArrayLike = np.ndarray | torch.Tensor


def _default_embedder(embedder: Any) -> Any:
    if embedder is not None:
        return embedder
    from andlib.text.embeddings import get_embedder

    return get_embedder()


def stage_resources(cfg: Config) -> list[str]:
    """Everything outside the config the concepts stage reads, as
    :func:`andlib.store.resource_digest` names: the concept set, the adjective lexicon and the
    ICL and adjective prompts. Part of the stage key, so editing any of them recomputes
    ``neurons.csv``."""
    c = cfg.concepts
    lexicon = ADJECTIVE_LEXICON if c.adjective_lexicon is None else str(c.adjective_lexicon)
    return [concept_set_resource(c.concept_set), lexicon, "prompts:icl", "prompts:adjective"]


def _softmax(x: np.ndarray, scale: float) -> np.ndarray:
    return torch.softmax(torch.as_tensor(x, dtype=torch.float32) * scale, dim=1).numpy()


# --------------------------------------------------------------------------------------------
# Module A: DB
# --------------------------------------------------------------------------------------------


def caption_concept_probs(
    captions: Sequence[str],
    concepts: Sequence[str],
    embedder: Any = None,
    logit_scale: float = DB_LOGIT_SCALE,
    template: str = "{}",
) -> np.ndarray:
    """``[n_clips, n_concepts]``: ``softmax(logit_scale * cos(caption, concept))``, each
    concept embedded as ``template`` filled with its name (``concepts.db_template``)."""
    embedder = _default_embedder(embedder)
    cap = embedder.encode([str(c) for c in captions])
    con = embedder.encode([template.format(display_name(c)) for c in concepts])
    return _softmax(cap @ con.T, logit_scale)


def _as_list(similarity: str | Sequence[str]) -> list[str]:
    return [similarity] if isinstance(similarity, str) else list(similarity)


DB_CLIPS = ("all", "top_k")
"""``concepts.db_clips``: score on every clip (default) or, as AND's code, on each neuron's top K."""


def db_scores(
    concept_probs: ArrayLike,
    activations: ArrayLike,
    similarity: str = "soft_wpmi",
    clips: str = "all",
    k: int = 5,
    params: Any = None,
    neurons: Sequence[int] | None = None,
) -> torch.Tensor:
    """DB scores ``[n_neurons, n_concepts]`` of one layer (rows ``neurons`` only, when given).

    ``clips="all"`` (``concepts.db_clips``' default): the similarity function gets every
    clip and the whole layer at once (it restricts itself to each neuron's top clips, and
    WPMI's ``p(c)`` is the mean over the layer's neurons). ``clips="top_k"``: AND's code,
    each neuron is scored alone on its own ``k`` most activating clips (``concept_probs`` rows
    of those clips against the neuron's activations on them); WPMI's ``p(c)`` is then that
    one neuron's, so with soft-WPMI's ``lam = 1`` every score is 0. ``params`` is
    ``concepts.similarity_params`` (``None``: the functions' defaults).
    """
    fn = get_similarity(similarity, params)
    if clips == "all":
        scores = fn(concept_probs, activations)
        return scores if neurons is None else scores[torch.as_tensor(np.asarray(neurons))]
    if clips != "top_k":
        raise ValueError(f"unknown db_clips {clips!r}; choose from {', '.join(DB_CLIPS)}")
    probs = torch.as_tensor(np.array(concept_probs, dtype=np.float32))
    acts = torch.as_tensor(np.array(activations, dtype=np.float32))
    top = torch.topk(acts, k=min(max(int(k), 1), acts.shape[0]), dim=0).indices  # [k, n]
    cols = range(acts.shape[1]) if neurons is None else [int(n) for n in neurons]
    rows = [fn(probs[top[:, n]], acts[top[:, n], n : n + 1])[0] for n in cols]
    return torch.stack(rows) if rows else torch.empty(0, probs.shape[1])


def db_concepts(
    captions: Sequence[str],
    concepts: Sequence[str],
    activations: ArrayLike,
    embedder: Any = None,
    similarity: str | Sequence[str] = ("soft_wpmi",),
    top: int = 5,
    logit_scale: float = DB_LOGIT_SCALE,
    clips: str = "all",
    k: int = 5,
    params: Any = None,
    template: str = "{}",
) -> dict[str, list[list[str]]]:
    """Description-based concepts of every neuron of one layer.

    ``captions[j]`` describes clip ``j`` = row ``j`` of ``activations`` (``[n_clips,
    n_neurons]``, one layer: WPMI-type scores are normalised over the neurons scored
    together). Returns ``{similarity name: [[best concept, ...top] per neuron]}``.
    ``clips``, ``k`` and ``params`` are those of :func:`db_scores`; ``template`` that of
    :func:`caption_concept_probs`.

    Note that plain ``cos`` is blind to the scale of a concept's probability column: a
    concept that is improbable everywhere but least improbable on a neuron's clips scores as
    high as the right one (with AND's sharp ``logit_scale`` of 100 such columns are common).
    ``cos3`` avoids this through its minimum norm; the WPMI functions work on probabilities.
    """
    acts = np.asarray(activations, dtype=np.float32)
    if len(captions) != acts.shape[0]:
        raise ValueError(f"{len(captions)} captions for {acts.shape[0]} activation rows")
    probs = caption_concept_probs(captions, concepts, embedder, logit_scale, template)
    names = list(concepts)
    return {
        fn: top_concepts(db_scores(probs, acts, fn, clips, k, params), names, top)
        for fn in _as_list(similarity)
    }


# --------------------------------------------------------------------------------------------
# Module A: TAB (CLAP)
# --------------------------------------------------------------------------------------------


class TABUnavailable(RuntimeError):
    """TAB is skipped: no CLAP model is configured (``concepts.clap_model`` is null)."""


class ClapLoadError(RuntimeError):
    """The configured CLAP model (``concepts.clap_model``) cannot be loaded: an error, not a
    skip; the message names the model."""


class ClapScorer:
    """A CLAP model and its processor: audio and text embeddings, concept probabilities.

    Audio is resampled to 48 kHz and processed with ``truncation="rand_trunc"`` under a fixed
    NumPy seed (clips longer than the model's 10 s window are cropped reproducibly). Audio
    embeddings are remembered per clip in memory and, with ``cache_dir``, on disk
    (``<cache_dir>/clap/``, keyed by model, file, size and modification time). ``device``: where
    the model runs (a torch device name; the stage passes what ``model.device`` resolves to).
    """

    def __init__(
        self,
        model: Any,
        processor: Any,
        name: str = "clap",
        batch_size: int = 8,
        cache_dir: str | os.PathLike | None = None,
        seed: int = 0,
        device: str = "cpu",
    ):
        self.device = device
        self.model = model.to(device).eval()
        self.processor = processor
        self.name = name
        self.batch_size = max(1, int(batch_size))
        self.cache_dir = Path(cache_dir) / "clap" if cache_dir is not None else None
        self.seed = seed
        self._audio: dict[str, np.ndarray] = {}

    @classmethod
    def from_pretrained(cls, name: str, **kwargs: Any) -> ClapScorer:
        """Load ``ClapModel`` and ``ClapProcessor`` from a hub id or local directory."""
        from transformers import ClapModel, ClapProcessor

        try:
            model = ClapModel.from_pretrained(name)
            processor = ClapProcessor.from_pretrained(name)
        except Exception as exc:  # OSError offline, ValueError for a wrong checkpoint, ...
            raise ClapLoadError(
                f"cannot load the CLAP model {name!r} (concepts.clap_model): {exc}; set "
                f"concepts.clap_model to a loadable hub id or folder, or to null to skip TAB"
            ) from exc
        return cls(model, processor, name=name, **kwargs)

    @property
    def logit_scale(self) -> float:
        scale = getattr(self.model, "logit_scale_a", None)
        return float(scale.detach().exp()) if scale is not None else DB_LOGIT_SCALE

    @staticmethod
    def _features(out: Any) -> torch.Tensor:
        feats = getattr(out, "pooler_output", out)  # transformers 5 returns a model output
        return torch.nn.functional.normalize(feats.float(), dim=-1)

    def _clip_key(self, clip: Any) -> str | None:
        if isinstance(clip, str | os.PathLike):
            p = Path(clip)
            st = p.stat() if p.exists() else None
            return stable_hash(
                [self.name, str(p.resolve()), st and st.st_size, st and st.st_mtime_ns, self.seed]
            )
        return None

    def _load(self, clip: Any) -> np.ndarray:
        """A clip's 48 kHz waveform; :class:`andlib.data.probing.AudioError` when it cannot be read."""
        if not isinstance(clip, str | os.PathLike):
            return np.asarray(clip, dtype=np.float32)  # already a 48 kHz waveform
        from andlib.data.audio import load_audio

        return load_audio(clip, CLAP_SAMPLE_RATE, silence_dbfs=-np.inf)

    @torch.no_grad()
    def audio_embeddings(
        self, clips: Sequence[Any], skipped: list[tuple[int, str]] | None = None
    ) -> np.ndarray:
        """``[n, d]`` unit-norm CLAP audio embeddings of file paths or 48 kHz waveforms.

        The row of a clip that cannot be read (:class:`andlib.data.probing.AudioError`) is NaN, never
        silence: callers leave it out. Its ``(index, reason)`` is appended to ``skipped`` when
        a list is given.
        """
        from andlib.data.audio import AudioError

        keys = [self._clip_key(c) for c in clips]
        out: list[np.ndarray | None] = [self._audio.get(k) if k else None for k in keys]
        for i, k in enumerate(keys):
            if out[i] is None and k and self.cache_dir and (self.cache_dir / f"{k}.npy").exists():
                out[i] = self._audio[k] = np.load(self.cache_dir / f"{k}.npy")
        todo = [i for i, v in enumerate(out) if v is None]
        bad: set[int] = set()
        state = np.random.get_state()
        np.random.seed(self.seed)
        try:
            for s in range(0, len(todo), self.batch_size):
                idx, waves = [], []
                for i in todo[s : s + self.batch_size]:
                    try:
                        waves.append(self._load(clips[i]))
                    except AudioError as exc:
                        log.warning("TAB: %s; the clip is left out of TAB", exc)
                        if skipped is not None:
                            skipped.append((i, exc.reason))
                        bad.add(i)
                        continue
                    idx.append(i)
                if not idx:
                    continue
                inputs = self.processor(
                    audio=waves,
                    sampling_rate=CLAP_SAMPLE_RATE,
                    truncation="rand_trunc",
                    return_tensors="pt",
                )
                inputs = {
                    k: v.to(self.device)
                    for k, v in inputs.items()
                    if k in ("input_features", "is_longer")
                }
                feats = self._features(self.model.get_audio_features(**inputs)).cpu().numpy()
                for i, v in zip(idx, feats, strict=True):
                    out[i] = v
                    key = keys[i]
                    if key:
                        self._audio[key] = v
                        if self.cache_dir:
                            self.cache_dir.mkdir(parents=True, exist_ok=True)
                            np.save(self.cache_dir / f"{key}.npy", v)
        finally:
            np.random.set_state(state)
        dim = next((v.shape[0] for v in out if v is not None), 0)
        out = [np.full(dim, np.nan, np.float32) if i in bad else v for i, v in enumerate(out)]
        done = [v for v in out if v is not None]
        if len(done) != len(out):  # every clip is embedded above; a gap would misalign rows
            raise RuntimeError(f"CLAP: {len(out) - len(done)} clips were not embedded")
        return np.stack(done).astype(np.float32) if done else np.zeros((0, 0), np.float32)

    @torch.no_grad()
    def text_embeddings(self, texts: Sequence[str]) -> np.ndarray:
        """``[n, d]`` unit-norm CLAP text embeddings."""
        inputs = self.processor(text=list(texts), return_tensors="pt", padding=True)
        inputs = {
            k: v.to(self.device) for k, v in inputs.items() if k in ("input_ids", "attention_mask")
        }
        return self._features(self.model.get_text_features(**inputs)).cpu().numpy()

    def concept_probs(
        self,
        clips: Sequence[Any],
        concepts: Sequence[str],
        logit_scale: float | None = None,
        skipped: list[tuple[int, str]] | None = None,
    ) -> np.ndarray:
        """``[n_clips, n_concepts]``: CLAP's zero-shot probabilities, ``softmax(scale * cos)``.

        ``logit_scale`` (``concepts.tab_logit_scale``) ``None``: CLAP's learned scale
        (:attr:`logit_scale`); AND's code uses ``1.0``, an unscaled softmax. The row of a clip
        that cannot be read is NaN; ``skipped`` collects ``(index, reason)`` of those clips
        (:meth:`audio_embeddings`).
        """
        audio = (
            self.audio_embeddings(clips)
            if skipped is None
            else self.audio_embeddings(clips, skipped)
        )
        text = self.text_embeddings([CLAP_TEMPLATE.format(display_name(c)) for c in concepts])
        scale = self.logit_scale if logit_scale is None else float(logit_scale)
        return _softmax(audio @ text.T, scale)


@lru_cache(maxsize=2)
def _cached_clap(name: str, batch_size: int, cache_dir: str | None, device: str) -> ClapScorer:
    return ClapScorer.from_pretrained(
        name, batch_size=batch_size, cache_dir=cache_dir, device=device
    )


def load_clap(
    name: str | None,
    batch_size: int = 8,
    cache_dir: str | os.PathLike | None = None,
    device: str = "cpu",
) -> ClapScorer:
    """The (process-wide, shared) :class:`ClapScorer` for ``name`` on ``device``:
    :class:`TABUnavailable` (TAB is skipped) when ``name`` is empty, :class:`ClapLoadError`
    (an error naming the model) when it cannot be loaded."""
    if not name:
        raise TABUnavailable(
            "TAB skipped: no CLAP model is configured (concepts.clap_model is null)"
        )
    return _cached_clap(
        str(name), int(batch_size), str(cache_dir) if cache_dir else None, str(device)
    )


def tab_concepts(
    clips: Sequence[Any],
    concepts: Sequence[str],
    activations: ArrayLike,
    clap: str | ClapScorer | None,
    similarity: str = "soft_wpmi",
    top: int = 5,
    logit_scale: float | None = None,
    params: Any = None,
) -> list[list[str]] | None:
    """Text-audio-based concepts of every neuron of one layer, or ``None`` when TAB cannot run.

    ``clips[j]`` (an audio file path or a 48 kHz waveform) is row ``j`` of ``activations``.
    ``clap`` is a CLAP model id/path, a loaded :class:`ClapScorer`, or ``None``; when it is
    ``None`` the reason is logged and printed and ``None`` is returned; a model that cannot be
    loaded raises :class:`ClapLoadError`. Clips CLAP cannot read (NaN rows of
    :meth:`ClapScorer.concept_probs`) are left out of the scoring. ``logit_scale`` is ``concepts.tab_logit_scale`` (:meth:`ClapScorer.concept_probs`),
    ``params`` ``concepts.similarity_params``.
    """
    try:
        scorer = clap if isinstance(clap, ClapScorer) else load_clap(clap)
    except TABUnavailable as exc:
        log.warning("%s", exc)
        print(exc)
        return None
    acts = np.asarray(activations, dtype=np.float32)
    if len(clips) != acts.shape[0]:
        raise ValueError(f"{len(clips)} clips for {acts.shape[0]} activation rows")
    probs = (  # a subclass may still take (clips, concepts) only
        scorer.concept_probs(clips, concepts)
        if logit_scale is None
        else scorer.concept_probs(clips, concepts, logit_scale)
    )
    readable = np.isfinite(np.asarray(probs, dtype=np.float32)).all(axis=1)
    if not readable.all():
        if not readable.any():
            raise ValueError("TAB: CLAP could read none of the clips")
        probs, acts = np.asarray(probs)[readable], acts[readable]
    return top_concepts(get_similarity(similarity, params)(probs, acts), list(concepts), top)


# --------------------------------------------------------------------------------------------
# Module A: ICL
# --------------------------------------------------------------------------------------------


class ICLResult(NamedTuple):
    """Concepts picked for each summary (best first) and how: ``icl`` (an LLM picked) or
    ``icl_embedding`` (:data:`ICL_FALLBACK`: ranked by embedding similarity, no LLM).

    ``llm_slots[i]`` (``icl`` only, else ``None``): how many of ``concepts[i]`` the LLM's
    reply named itself (mapped onto the set); the slots after them are embedding neighbours
    that complete a short reply (:func:`map_to_concepts`).
    """

    concepts: list[list[str]]
    method: str
    llm_slots: list[int] | None = None


_ANSWER = re.compile(
    r"\b(?:final\s+)?(?:answer|answers|class(?:\s*name)?s?)\s*(?:(?:is|are)\b\s*:?|:)\s*", re.I
)
_LIST_ITEM = re.compile(r"^\s*(?:\(?\d{1,2}\s*[.):\]]|[-*•·])\s+(.+?)\s*$")
_QUOTED = re.compile(r"[\"“‘'`]([^\"”’'`\n]{1,60})[\"”’'`]")
_CUT = re.compile(r"\s+(?:-|–|—|because|since|as it|as the|which|\()\s*|:\s+|\.\s", re.I)
_LEAD = re.compile(
    r"^(?:the\s+)?(?:(?:class(?:\s*name)?|concept|label|category)\b)?\s*[:=]?\s*", re.I
)


def _clean_item(item: str) -> str:
    item = re.sub(r"[*_`]{2,}", "", item).strip(" \t:;,-")  # markdown emphasis, stray marks
    item = _CUT.split(item, maxsplit=1)[0]
    item = item.strip(" \t\"'“”‘’`*.,;:!?()[]{}")
    item = _LEAD.sub("", item)
    item = re.sub(r"^(?:a|an|the)\s+", "", item, flags=re.I)
    return normalize_concept(item)


def _split_items(segment: str, known: Mapping[str, str]) -> list[str]:
    lines = [ln for ln in segment.splitlines() if ln.strip()]
    listed = [m.group(1) for ln in lines if (m := _LIST_ITEM.match(ln))]
    if listed:
        return listed
    if len(lines) > 1 and all(len(ln.split()) <= 5 for ln in lines):
        return lines
    first = lines[0] if lines else ""
    quoted = _QUOTED.findall(first)
    if quoted:
        return quoted
    items = [p for p in re.split(r"\s*(?:[,;/|]|\bor\b)\s*", first) if p.strip()]
    # "dog and cat" is two answers unless a concept is called that.
    return [
        q for p in items for q in ([p] if _clean_item(p) in known else re.split(r"\s+and\s+", p))
    ]


def parse_icl_reply(reply: str, concepts: Sequence[str] = ()) -> list[str]:
    """Candidate concept phrases in a free-form ICL reply, best first (normalised, de-duplicated).

    Handles ``Answer: dog, cat``, numbered or bulleted lists, comma lists, quoted names
    (``the class is 'dog'``), markdown, any casing and ``water_drops`` vs ``water drops``. When
    the reply is prose without any of these, the ``concepts`` it mentions (in order of
    appearance) are the candidates, else its first line.
    """
    text = str(reply or "").strip()
    if not text:
        return []
    known = {normalize_concept(c): c for c in concepts}
    answers = list(_ANSWER.finditer(text))
    if answers:
        items = _split_items(text[answers[-1].end() :], known)
    elif any(_LIST_ITEM.match(ln) for ln in text.splitlines()):
        items = _split_items(text, known)
    elif _QUOTED.search(text):
        items = _QUOTED.findall(text)
    else:  # prose: the concepts it mentions, in order
        words = f" {normalize_concept(re.sub(r'[^A-Za-z0-9_ -]+', ' ', text))} "
        found = []
        for norm in known:
            hits = [p for form in (norm, norm + "s") if (p := words.find(f" {form} ")) >= 0]
            if norm and hits:
                found.append((min(hits), norm))
        items = [n for _, n in sorted(found)] or _split_items(text, known)
    return list(dict.fromkeys(c for c in (_clean_item(i) for i in items) if c))


def _match_exact(phrase: str, by_norm: Mapping[str, str]) -> str | None:
    if phrase in by_norm:
        return by_norm[phrase]
    for variant in (phrase[:-1] if phrase.endswith("s") else None, phrase + "s"):
        if variant and variant in by_norm:
            return by_norm[variant]
    # A concept named inside a longer phrase ("a dog barking loudly" -> dog): longest first.
    padded = f" {phrase} "
    for norm in sorted(by_norm, key=len, reverse=True):
        if f" {norm} " in padded:
            return by_norm[norm]
    return None


def map_to_concepts(
    phrases: Sequence[str], concepts: Sequence[str], embedder: Any = None, top: int = 5
) -> list[str]:
    """Map candidate phrases onto the concept set, keeping their order.

    A phrase maps to a concept it names (case, ``_``/``-``/space and a plural ``s`` ignored;
    "a dog barking" names ``dog``), otherwise to the concept whose ``"This is an audio about
    <x>"`` embedding is nearest. When fewer than ``top`` distinct concepts result, the list is
    completed with the concepts nearest to the phrases on average (padding:
    :func:`map_to_concepts_marked` says how many slots the phrases filled themselves).
    """
    return map_to_concepts_marked(phrases, concepts, embedder, top)[0]


def map_to_concepts_marked(
    phrases: Sequence[str], concepts: Sequence[str], embedder: Any = None, top: int = 5
) -> tuple[list[str], int]:
    """:func:`map_to_concepts` and the number of its leading slots the phrases named; the
    slots after them are padding (the concepts nearest to the phrases on average)."""
    concepts = list(concepts)
    by_norm = {normalize_concept(c): c for c in concepts}
    picked = [_match_exact(p, by_norm) for p in phrases]
    if all(m is not None for m in picked) and len(set(picked)) >= top:
        out = list(dict.fromkeys(m for m in picked if m is not None))[:top]
        return out, len(out)
    embedder = _default_embedder(embedder)
    con = embedder.encode([ICL_TEMPLATE.format(display_name(c)) for c in concepts])
    sims = embedder.encode([ICL_TEMPLATE.format(p) for p in phrases]) @ con.T
    named = [m if m is not None else concepts[int(sims[i].argmax())] for i, m in enumerate(picked)]
    out = list(dict.fromkeys(named))[:top]
    n_named = len(out)
    for j in np.argsort(-sims.mean(axis=0), kind="stable"):
        if len(out) >= top:
            break
        if concepts[j] not in out:
            out.append(concepts[j])
    return out, n_named


def icl_answer(
    reply: str, concepts: Sequence[str], embedder: Any = None, top: int = 5
) -> list[str]:
    """One ICL reply -> up to ``top`` concepts of the set, best first (``[]`` for an empty reply)."""
    return icl_answer_marked(reply, concepts, embedder, top)[0]


def icl_answer_marked(
    reply: str, concepts: Sequence[str], embedder: Any = None, top: int = 5
) -> tuple[list[str], int]:
    """:func:`icl_answer` and how many of its leading concepts the reply named itself
    (:func:`map_to_concepts_marked`; the rest pad a short reply)."""
    phrases = parse_icl_reply(reply, concepts)
    return map_to_concepts_marked(phrases, concepts, embedder, top) if phrases else ([], 0)


_COUNT = re.compile(
    r"\(\s*(\d+)\s+of\s+\d+(?:\s+clips)?\s*\)|\(\s*all\s+(\d+)(?:\s+clips)?\s*\)"
    r"|\(\s*(both)(?:\s+clips)?\s*\)|^\s*all\s+(\d+)\s+clips\b|^\s*(both)\s+clips\b",
    re.I,
)
_COUNTS = re.compile(r"\s*\(\s*(?:\d+\s+of\s+\d+|all\s+\d+|both)(?:\s+clips)?\s*\)", re.I)


def sentence_weight(sentence: str) -> float:
    """How many clips a sentence speaks for: its first count, 4 for "A dog barking (4 of 5
    clips).", 5 for "... (all 5)" or "All 5 clips ...", 2 for "(both clips)" or "Both clips
    ...", else 1 (the extractive summarizer's wording, and common LLM phrasings)."""
    m = _COUNT.search(sentence)
    if m is None:
        return 1.0
    if m.group(3) or m.group(5):
        return 2.0
    return float(m.group(1) or m.group(2) or m.group(4))


def embed_summaries(texts: Sequence[str], embedder: Any = None) -> np.ndarray:
    """``[n, d]`` unit-norm embeddings of summaries: the mean of their sentences' embeddings.

    Sentences are embedded without their clip-count subject (:func:`comparable`) and weighted
    by the clips they speak for (:func:`sentence_weight`), so "Most clips (4 of 5) are dogs
    barking" outweighs "Only one clip is wind". Long summaries would exceed the embedder's
    window, and calibration has already embedded every sentence (the embedder remembers
    them), so this costs almost nothing in the stage. An empty text gives a zero row.
    """
    embedder = _default_embedder(embedder)
    texts = list(texts)
    row = {t: i for i, t in enumerate(dict.fromkeys(texts))}  # each distinct text once
    sentences = [split_sentences(t) for t in row]
    form = {x: comparable(x) for group in sentences for x in group}
    flat = sorted(set(form.values()))
    vec = dict(zip(flat, embedder.encode(flat), strict=True)) if flat else {}
    dim = next(iter(vec.values())).shape[0] if vec else 0
    weight = {x: sentence_weight(x) for x in form}
    distinct = np.zeros((len(row), dim), dtype=np.float32)
    for i, group in enumerate(sentences):
        if group:
            weights = np.array([weight[x] for x in group], dtype=np.float32)
            m = weights @ np.stack([vec[form[x]] for x in group])
            distinct[i] = m / max(float(np.linalg.norm(m)), 1e-12)
    return distinct[[row[t] for t in texts]] if texts else distinct


def rank_by_embedding(
    texts: Sequence[str], concepts: Sequence[str], embedder: Any = None, top: int = 5
) -> list[list[str]]:
    """Concepts ranked by cosine between each text (:func:`embed_summaries`) and ``"This is an
    audio about <concept>"``: the ICL fallback of the non-generative backend. Empty texts get
    ``[]``."""
    embedder = _default_embedder(embedder)
    con = embedder.encode([ICL_TEMPLATE.format(display_name(c)) for c in concepts])
    emb = embed_summaries(texts, embedder)
    out: list[list[str]] = [[] for _ in texts]
    if emb.shape[1]:
        order = np.argsort(-(emb @ con.T), axis=1, kind="stable")[:, :top]
        for i, row in enumerate(order):
            if np.any(emb[i]):
                out[i] = [concepts[j] for j in row]
    return out


def icl_concepts(
    summaries: Sequence[str],
    concepts: Sequence[str],
    llm: Any,
    top: int = 5,
    embedder: Any = None,
    labels: Sequence[str] | None = None,
) -> ICLResult:
    """ICL: the LLM picks the ``top`` concepts (best first) that match each summary.

    With a generative ``llm`` (``llm.generative`` true) every non-empty summary is one call
    (:func:`andlib.text.prompts.icl_messages`; all sent as one batch, cached by the LLM) and the
    reply is mapped onto the set by :func:`icl_answer`. With ``llm=None`` or the
    non-generative ``extractive`` backend no model can pick: the concepts are ranked by
    embedding similarity to the summary instead (:func:`rank_by_embedding`) and the method
    is ``icl_embedding`` (:data:`ICL_FALLBACK`). ``labels`` name the requests in LLM error
    messages. With an LLM, :attr:`ICLResult.llm_slots` counts the concepts of each list the
    reply named itself (the rest are embedding neighbours padding a short reply).
    """
    concepts = list(concepts)
    if llm is None or not getattr(llm, "generative", True):
        return ICLResult(rank_by_embedding(summaries, concepts, embedder, top), ICL_FALLBACK)
    from andlib.text.prompts import icl_messages

    asked = [i for i, s in enumerate(summaries) if str(s).strip()]
    names = list(labels) if labels is not None else [f"summary {i}" for i in range(len(summaries))]
    replies = llm.complete_many(
        [icl_messages(str(summaries[i]), [display_name(c) for c in concepts], top) for i in asked],
        [f"{names[i]} (icl)" for i in asked],
    )
    embedder = _prewarm_icl(replies, concepts, embedder, top)
    out: list[list[str]] = [[] for _ in summaries]
    slots = [0 for _ in summaries]
    for i, reply in zip(asked, replies, strict=True):
        out[i], slots[i] = icl_answer_marked(reply, concepts, embedder, top)
    return ICLResult(out, "icl", slots)


def _prewarm_icl(replies: Sequence[str], concepts: list[str], embedder: Any, top: int) -> Any:
    """Embed, in one call, every phrase :func:`map_to_concepts_marked` will embed for these
    replies (those of replies that do not name ``top`` concepts outright), so mapping 10^4
    replies costs one embedder call, not one per neuron; the mapping then finds them in the
    embedder's memory. Returns the embedder (the default one when ``embedder`` is None)."""
    by_norm = {normalize_concept(c): c for c in concepts}
    need: set[str] = set()
    for reply in replies:
        phrases = parse_icl_reply(reply, concepts)
        picked = [_match_exact(p, by_norm) for p in phrases]
        if phrases and not (all(m is not None for m in picked) and len(set(picked)) >= top):
            need.update(ICL_TEMPLATE.format(p) for p in phrases)
    if not need:
        return embedder
    embedder = _default_embedder(embedder)
    embedder.encode([ICL_TEMPLATE.format(display_name(c)) for c in concepts])
    embedder.encode(sorted(need))
    return embedder


# --------------------------------------------------------------------------------------------
# Module B: calibration
# --------------------------------------------------------------------------------------------

_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]?\s+(?=[\"'(\[]?[A-Z0-9])|\s*\n+\s*")
_BULLET = re.compile(r"^\s*(?:\d{1,2}[.)]|[-*•·])\s+")
_SUBJECT = re.compile(
    r"^(?:(?:all|both|most|many|several|some|few|only|each|every)\b(?:\s+(?:of|the|these|\d+|one|"
    r"two|three|four|five))*\s+|the\s+|these\s+|this\s+)?(?:audio\s+)?"
    r"(?:clips?|recordings?|samples?|excerpts?|audios?)\b\s*(?:\(\s*\d+\s+of\s+\d+\s*\)\s*)?",
    re.I,
)
_CHATTER = re.compile(
    r"^(?:sure|certainly|of course|here (?:is|are)|i hope|let me know|feel free|hope this)\b", re.I
)


def split_sentences(text: str) -> list[str]:
    """Sentences (and list items) of a summary, stripped of bullets; empty ones dropped."""
    parts = (_BULLET.sub("", p).strip() for p in _SENTENCE_END.split(str(text or "").strip()))
    return [p for p in parts if p and re.search(r"[A-Za-z0-9]", p)]


def comparable(sentence: str) -> str:
    """The part of a sentence calibration compares: without its clip-count subject and counts.

    ``"Most clips (4 of 5) are loud."`` -> ``"are loud."``, ``"Loud sounds (4 of 5 clips);
    sharp (3 of 5)."`` -> ``"Loud sounds; sharp."``: such subjects (most LLMs open sentences
    with them) and counts alone make unrelated high and low sentences look alike to a sentence
    embedder (cosine ~0.7 to 0.9).
    """
    rest = _COUNTS.sub("", _SUBJECT.sub("", sentence.strip(), count=1)).strip()
    return rest or sentence.strip()


def _telling_words(sentence: str, vocabulary: frozenset[str]) -> frozenset[str]:
    """The words of ``vocabulary`` a sentence names (comparatives and plurals as their base),
    and the notes it names (``note:A4``): two sentences stating different pitches differ in
    what they say however alike their embeddings are."""
    from andlib.data.notes import NOTE_PATTERN

    out = {f"note:{''.join(m.groups())}" for m in NOTE_PATTERN.finditer(sentence)}
    for w in re.findall(r"[a-z]+(?:-[a-z]+)*", sentence.lower()):
        form = _lexicon_form(w, vocabulary) or (w if is_sound_adjective(w, vocabulary) else None)
        if form is None and w.endswith("s") and w[:-1] in vocabulary:
            form = w[:-1]
        if form:
            out.add(form)
    return frozenset(out)


def contrast_vocabulary(
    lexicon: frozenset[str] | None = None, concepts: Sequence[str] = ()
) -> frozenset[str]:
    """Words whose presence makes a sentence distinct for calibration's ``keep_contrasts``:
    the sound adjectives of the lexicon and the words of the concept names (singular too)."""
    words = {w for c in concepts for w in normalize_concept(c).split() if len(w) > 2}
    words |= {w[:-1] for w in words if w.endswith("s") and not w.endswith("ss")}
    return (load_adjective_lexicon() if lexicon is None else lexicon) | frozenset(words)


def calibrate_many(
    high_summaries: Sequence[str],
    low_summaries: Sequence[str],
    embedder: Any = None,
    threshold: float = 0.5,
    keep_contrasts: bool = True,
    vocabulary: frozenset[str] | None = None,
    strip_counts: bool = True,
) -> list[str]:
    """:func:`calibrate` for many neurons; every distinct sentence is embedded once.

    ``vocabulary`` is the word list of ``keep_contrasts`` (default: the sound-adjective
    lexicon; :func:`run_stage` adds the concept names, see :func:`contrast_vocabulary`).
    ``strip_counts`` (``concepts.calibration_strip_counts``) compares sentences as
    :func:`comparable` gives them; false compares whole sentences, as AND does.
    """
    if len(high_summaries) != len(low_summaries):
        raise ValueError(f"{len(high_summaries)} high summaries for {len(low_summaries)} low")
    comparable_form = comparable if strip_counts else str.strip
    # Summaries of 10^4 neurons repeat their sentences: split each distinct summary, and
    # work out each distinct sentence's comparable form and telling words, once.
    split = {t: split_sentences(t) for t in dict.fromkeys((*high_summaries, *low_summaries))}
    highs = [[s for s in split[h] if not _CHATTER.match(s)] for h in high_summaries]
    lows = [split[lo] for lo in low_summaries]
    form = {s: comparable_form(s) for group in split.values() for s in group}
    texts = sorted({form[s] for group in (*highs, *lows) for s in group})
    if not texts:
        return ["" for _ in highs]
    embedder = _default_embedder(embedder)
    vec = dict(zip(texts, embedder.encode(texts), strict=True))
    words: frozenset[str] = frozenset()
    if keep_contrasts:
        words = contrast_vocabulary() if vocabulary is None else vocabulary
    telling: dict[str, frozenset[str]] = {}

    def telling_words(sentence: str) -> frozenset[str]:
        found = telling.get(sentence)
        if found is None:
            found = telling[sentence] = _telling_words(sentence, words)
        return found

    out = []
    for hs, ls in zip(highs, lows, strict=True):
        if hs and ls:
            sims = np.stack([vec[form[s]] for s in hs]) @ np.stack([vec[form[s]] for s in ls]).T
            kept = []
            for s, row in zip(hs, sims, strict=True):
                matches = [lo for lo, sim in zip(ls, row, strict=True) if sim >= threshold]
                if matches and keep_contrasts:
                    said = frozenset().union(*(telling_words(m) for m in matches))
                    if telling_words(s) - said:
                        matches = []  # it names a quality or a source they do not
                if not matches:
                    kept.append(s)
            hs = kept
        out.append(" ".join(hs))
    return out


def calibrate(
    high_summary: str,
    low_summary: str,
    embedder: Any = None,
    threshold: float = 0.5,
    keep_contrasts: bool = True,
    concepts: Sequence[str] = (),
    strip_counts: bool = True,
) -> str:
    """Module B: the high summary without the sentences the low summary also says.

    Both summaries are split into sentences; a high sentence is dropped when its embedding
    cosine to a low sentence is ``>= threshold`` (AND's rule; compared without the "Most
    clips (4 of 5)"-like subject, see :func:`comparable`, unless ``strip_counts`` is false,
    AND's whole sentences). Conversational filler ("Sure, here is ...") is dropped too.
    Returns the kept sentences joined by spaces.

    ``keep_contrasts`` (on by default; off gives AND's plain rule) keeps a matched high
    sentence when it names a sound adjective of the lexicon, or a word of a concept name in
    ``concepts``, that none of its matching low sentences names: sentence embedders barely
    tell antonyms apart (all-MiniLM-L6-v2 gives "are loud." / "are quiet." a cosine of 0.81)
    and short sentences score ~0.5 on their shared wording alone ("are sounds of dog." /
    "are low-pitched."), while a contrast in quality or source is what calibration must keep.
    """
    vocabulary = contrast_vocabulary(None, concepts) if keep_contrasts else None
    return calibrate_many(
        [high_summary], [low_summary], embedder, threshold, keep_contrasts, vocabulary, strip_counts
    )[0]


# --------------------------------------------------------------------------------------------
# Module B: adjectives and Module C: open concepts (one spaCy pass)
# --------------------------------------------------------------------------------------------

STOP_ADJECTIVES = frozenset(
    """other same many several different similar various most few some any all each every
    another both either neither such more less much little certain possible likely specific
    general main whole entire single multiple particular overall own next last first second
    third fourth fifth only additional further related actual common everyday usual typical
    same-sounding used recorded meant designed detailed suitable due best good bad well-defined
    identifiable distinct distinguishable noticeable present consistent unclear unknown
    new old real natural human mobile external personal kitchen heard described captured
    played produced made mixed given shown based followed accompanied combined mentioned
    included featured characterized filled composed done known called compared""".split()
)
"""Adjectives that never describe a neuron (quantifiers, vague or meta words; after AND's list)."""
NEGATORS = frozenset({"not", "n't", "no", "never", "without", "nor", "neither", "none", "hardly"})
CLAUSE_BREAKS = frozenset({"but", "while", "whereas", "although", "though", "yet", "however"})
NEGATION_WINDOW = 4
"""An adjective is negated by a negator among the 4 words before it in the same clause (AND)."""
GENERIC_WORDS = frozenset(
    """sound noise clip audio recording record sample excerpt track file description summary
    feature quality level type kind thing way part example time second moment lot bit amount
    range series content character component element aspect background variety number
    presence degree instance case portion segment section duration one other others
    be have do make get go come seem appear contain include hear describe mention indicate
    suggest share vary differ use take give show occur become remain consist involve
    characterize capture say tell know think let help need want like can""".split()
)
"""Lemmas that are never open-set concepts: the vocabulary of describing a clip itself."""
_ADJ_TAGS = frozenset({"JJ", "JJR", "JJS"})
_NOMINAL_DEPS = frozenset({"nsubj", "nsubjpass", "dobj", "pobj", "compound", "poss", "agent"})
_ACOUSTIC_SUFFIXES = ("-pitched", "-toned", "-sounding", "-frequency")


def _nlp() -> Any:
    """The shared spaCy pipeline (:func:`andlib.text.nlp.load_spacy`)."""
    return load_spacy()


@dataclass(frozen=True)
class _Words:
    adjectives: tuple[str, ...]
    concepts: tuple[str, ...]


def _units(doc: Any) -> list[list[Any]]:
    """Tokens grouped into words, hyphenated compounds (``high - pitched``) as one word."""
    starts = dict(hyphenated_spans(doc))
    units: list[list[Any]] = []
    i = 0
    while i < len(doc):
        end = starts.get(i, i + 1)
        units.append([doc[t] for t in range(i, end)])
        i = end
    return units


def _negated(doc: Any, i: int) -> bool:
    for j in range(i - 1, max(-1, i - 1 - NEGATION_WINDOW), -1):
        tok = doc[j]
        if (tok.is_punct and tok.text != "-") or tok.lower_ in CLAUSE_BREAKS:
            return False
        if tok.lower_ in NEGATORS or tok.lemma_ == "lack":
            return True
    return False


def _lexicon_form(word: str, lexicon: frozenset[str]) -> str | None:
    """``word`` if listed, else the listed base of a comparative/superlative (quieter -> quiet)."""
    if word in lexicon:
        return word
    for suffix in ("est", "er"):
        if word.endswith(suffix) and len(word) > len(suffix) + 2:
            stem = word[: -len(suffix)]
            for base in (
                stem,
                stem[:-1] + "y" if stem.endswith("i") else None,
                stem[:-1],
                stem + "e",
            ):
                if base and base in lexicon:
                    return base
    return None


def _adjective(unit: list[Any], word: str, lexicon: frozenset[str]) -> str | None:
    """The adjective a word is (lemmatized comparatives), or ``None`` when it is not one.

    Adjectives are words tagged JJ/JJR/JJS, past participles (VBN, as in AND), and any word
    in an adjective's slot (``amod``, ``acomp``, ``oprd``: the small model tags "shrill" in
    "shrill barking" as a noun). Lexicon words also count in any non-nominal slot, which
    recovers the small model's mistags ("is muffled" as a verb, "are quieter" as a noun).
    """
    if len(unit) > 1:  # hyphenated compound: adjectival if a part is or it sits in a modifier slot
        parts = unit[::2]
        if (
            word in lexicon
            or any(t.tag_ in _ADJ_TAGS | {"VBN"} for t in parts)
            or unit[-1].dep_ in ("amod", "acomp", "oprd")
        ):
            return word
        return None
    tok = unit[0]
    if tok.pos_ in ("DET", "NUM", "PRON", "ADP", "AUX", "PART", "CCONJ", "SCONJ", "PUNCT"):
        return None
    if tok.tag_ in ("JJR", "JJS"):
        return tok.lemma_.lower()
    if tok.tag_ in ("JJ", "VBN") or tok.dep_ in ("amod", "acomp", "oprd"):
        return word
    base = _lexicon_form(word, lexicon)
    return base if base is not None and tok.dep_ not in _NOMINAL_DEPS else None


OPEN_POS = ("NOUN", "PROPN", "VERB")
"""Parts of speech of open-set concepts (``concepts.open_concepts_verbs`` false drops VERB)."""


def _analyse(texts: Sequence[str], lexicon: frozenset[str], verbs: bool = True) -> list[_Words]:
    """Adjective candidates and open concepts of each text (spaCy over distinct texts once);
    open concepts are nouns, and verbs unless ``verbs`` is false."""
    open_pos = OPEN_POS if verbs else tuple(p for p in OPEN_POS if p != "VERB")
    distinct = list(dict.fromkeys(str(t) for t in texts))
    found: dict[str, _Words] = {}
    todo = [t for t in distinct if t.strip()]
    docs = _nlp().pipe([t.lower() for t in todo], batch_size=256) if todo else []
    for text, doc in zip(todo, docs, strict=True):
        adjectives: list[str] = []
        nouns: list[str] = []
        for unit in _units(doc):
            first = unit[0]
            word = "".join(t.text for t in unit).lower() if len(unit) > 1 else first.lower_
            if not re.fullmatch(r"[a-z][a-z-]*", word) or _negated(doc, first.i):
                continue
            adjective = _adjective(unit, word, lexicon)
            if adjective is not None:
                if adjective not in STOP_ADJECTIVES and len(adjective) > 1:
                    adjectives.append(adjective)
                continue
            head = unit[-1]
            if head.pos_ in open_pos and not (len(unit) == 1 and first.is_stop):
                lemma = word if len(unit) > 1 else first.lemma_.lower()
                if len(lemma) > 2 and lemma not in GENERIC_WORDS and lemma.isascii():
                    nouns.append(lemma)
        found[text] = _Words(tuple(dict.fromkeys(adjectives)), tuple(dict.fromkeys(nouns)))
    empty = _Words((), ())
    return [found.get(str(t), empty) for t in texts]


def load_adjective_lexicon(path: str | os.PathLike | None = None) -> frozenset[str]:
    """The sound-adjective lexicon (shipped ``resources/sound_adjectives.txt`` by default;
    a path is found as :func:`andlib.store.resource_path` finds it)."""
    p = resource_path(path if path is not None else ADJECTIVE_LEXICON)
    if not p.is_file():
        raise FileNotFoundError(f"adjective lexicon {p} does not exist")
    words = (ln.strip().lower() for ln in p.read_text(encoding="utf-8").splitlines())
    return frozenset(w for w in words if w and not w.startswith("#"))


def is_sound_adjective(word: str, lexicon: frozenset[str]) -> bool:
    """Lexicon decision: listed, or a hyphenated word whose last part is listed or that ends in
    ``-pitched``, ``-toned``, ``-sounding`` or ``-frequency``."""
    w = word.lower()
    if w in lexicon:
        return True
    return "-" in w and (w.rsplit("-", 1)[1] in lexicon or w.endswith(_ACOUSTIC_SUFFIXES))


def judge_adjectives(
    words: Sequence[str],
    llm: Any = None,
    lexicon: frozenset[str] | None = None,
    wording: str = "acoustic",
) -> dict[str, bool]:
    """Whether each distinct word describes sound: asked to a generative ``llm`` once per word
    (its replies are cached on disk), else decided by the lexicon.

    ``wording`` (``concepts.adjective_prompt``) picks the question
    (:func:`andlib.text.prompts.adjective_messages`): ``acoustic`` or AND's ``tone_emotion``.
    An LLM reply that says neither yes nor no falls back to the lexicon too.
    """
    lexicon = load_adjective_lexicon() if lexicon is None else lexicon
    distinct = list(dict.fromkeys(words))
    verdict = {w: is_sound_adjective(w, lexicon) for w in distinct}
    if distinct and llm is not None and getattr(llm, "generative", False):
        from andlib.text.prompts import adjective_messages, parse_yes_no

        replies = llm.complete_many(
            [adjective_messages(w, wording) for w in distinct],
            [f"adjective {w!r}" for w in distinct],
        )
        for w, reply in zip(distinct, replies, strict=True):
            answer = parse_yes_no(reply)
            if answer is None:
                m = re.search(r"\b(yes|no)\b", str(reply).lower())
                answer = None if m is None else m.group(1) == "yes"
            if answer is not None:
                verdict[w] = answer
    return verdict


def extract_adjectives(texts: Sequence[str]) -> list[list[str]]:
    """Adjective candidates of each text: POS-tagged adjectives (and participles in adjective
    lists), hyphenated compounds as one word, comparatives lemmatized, negated ones ("not
    loud", "no clear pitch") and :data:`STOP_ADJECTIVES` skipped; in order, de-duplicated."""
    return [list(w.adjectives) for w in _analyse(texts, load_adjective_lexicon())]


def acoustic_adjectives_many(
    texts: Sequence[str],
    llm: Any = None,
    lexicon: frozenset[str] | None = None,
    wording: str = "acoustic",
) -> list[list[str]]:
    """:func:`acoustic_adjectives` of many texts; each distinct adjective is judged once."""
    lexicon = load_adjective_lexicon() if lexicon is None else lexicon
    candidates = [list(w.adjectives) for w in _analyse(texts, lexicon)]
    verdict = judge_adjectives([a for adjs in candidates for a in adjs], llm, lexicon, wording)
    return [[a for a in adjs if verdict[a]] for adjs in candidates]


def acoustic_adjectives(
    text: str, llm: Any = None, lexicon: frozenset[str] | None = None, wording: str = "acoustic"
) -> list[str]:
    """Module B: the adjectives of ``text`` that describe sound (see :func:`extract_adjectives`
    and :func:`judge_adjectives`)."""
    return acoustic_adjectives_many([text], llm, lexicon, wording)[0]


def open_concepts_many(texts: Sequence[str], verbs: bool = True) -> list[list[str]]:
    """:func:`open_concepts` of many texts (spaCy parses each distinct text once)."""
    return [list(w.concepts) for w in _analyse(texts, load_adjective_lexicon(), verbs)]


def open_concepts(calibrated_summary: str, verbs: bool = True) -> list[str]:
    """Module C: nouns and verbs of the calibrated summary, lemmatized, de-duplicated, in order.

    ``verbs`` false (``concepts.open_concepts_verbs``, AND's "nouns") keeps the nouns only.
    Skipped: adjectives (and nouns used as adjectives), negated words ("no speech"), stop
    words, words of two letters or fewer and :data:`GENERIC_WORDS` ("sound", "clip",
    "noise", "feature", "contain", ...).
    """
    return open_concepts_many([calibrated_summary], verbs)[0]


# --------------------------------------------------------------------------------------------
# The stage
# --------------------------------------------------------------------------------------------


def _join(items: Sequence[str]) -> str:
    return ";".join(items)


def _join_scores(values: Sequence[float]) -> str:
    return ";".join(f"{v:.6g}" for v in values)


def _label(layer: str, neuron: int) -> str:
    return f"{layer} neuron {neuron}"


def _tab_clips(cfg: Config, clips: Any, clip_ids: Sequence[str]) -> list[Any]:
    """What CLAP reads for each clip (in activation row order): its audio file, or, for a clip
    without one (synthetic probes), its waveform rendered again and resampled to 48 kHz."""
    path_of = dict(zip(clips["clip_id"], clips["path"], strict=True))
    out: list[Any] = [path_of.get(cid, "") for cid in clip_ids]
    todo = [i for i, p in enumerate(out) if not p]
    if todo:
        from andlib.data.audio import resample
        from andlib.data.probing import load_probing_set

        probing = load_probing_set(cfg)
        known = set(probing.clip_ids)
        for i in todo:
            if clip_ids[i] not in known:
                raise ValueError(
                    f"TAB: clip {clip_ids[i]!r} has no audio file and is not in the probing set"
                )
            wave = probing.audio[probing.index_of(clip_ids[i])]
            out[i] = resample(wave, probing.sample_rate, CLAP_SAMPLE_RATE)
    return out


SPEC = Stage(
    STAGE,
    sections=("concepts", "embedder", "llm", "k"),
    upstream=("record", "caption", "summarize"),
    resources=stage_resources,
    version=VERSION,
)
"""The concepts stage's cache key: the ``concepts``, ``embedder``, ``llm`` and ``k``
settings, the record, caption and summarize stage keys, :data:`VERSION` and the contents of
the concept set, the adjective lexicon and the ICL and adjective prompts
(:func:`stage_resources`)."""


class Described(NamedTuple):
    """What :func:`describe_neurons` found: ``neurons`` (the rows of ``neurons.csv``),
    ``tab_skipped`` (``clip_id, path, reason`` of the clips CLAP could not read, ``None`` when
    it read every clip), ``spread`` (``concept_spread.csv``,
    :func:`andlib.describe.spread.concept_spread`) and ``info`` (the stage's summary)."""

    neurons: pd.DataFrame
    tab_skipped: pd.DataFrame | None
    spread: pd.DataFrame
    info: dict[str, Any]


def describe_neurons(
    cfg: Config,
    summaries: pd.DataFrame,
    captions: pd.DataFrame,
    clips: pd.DataFrame,
    cache: ActivationCache,
    logger: logging.Logger = log,
) -> Described:
    """Modules A, B, C for every neuron of ``summaries`` (``summaries.csv``, ``neuron`` as int)
    from the clips' ``captions`` (``captions.csv``), ``clips`` (``clips.csv``) and the
    recorded activations ``cache``."""
    t0 = time.time()
    from andlib.text.embeddings import get_embedder
    from andlib.text.llm import get_llm

    c = cfg.concepts
    concepts = load_concept_set(c.concept_set)
    params = c.similarity_params
    for fn in [*c.similarity, c.tab_similarity]:
        get_similarity(fn, params)  # fail early on a typo
    embedder = get_embedder(cfg)
    llm = get_llm(cfg.llm, cfg.cache_path)
    lexicon = load_adjective_lexicon(c.adjective_lexicon)
    highs, lows = summaries["high_summary"].tolist(), summaries["low_summary"].tolist()
    labels = [_label(la, n) for la, n in zip(summaries["layer"], summaries["neuron"], strict=True)]
    timings: dict[str, float] = {}

    # Module B, then C on the same parse.
    t = time.time()
    calibrated = calibrate_many(
        highs,
        lows,
        embedder,
        c.calibration_threshold,
        c.calibration_keep_contrasts,
        contrast_vocabulary(lexicon, concepts),
        c.calibration_strip_counts,
    )
    timings["calibration"] = time.time() - t
    # spaCy's parse of the calibrated summaries (one pass over the distinct ones, for Modules
    # B and C) runs in a thread while DB and TAB embed and score: at 10^4 neurons each takes
    # minutes, spaCy keeps one core busy and torch releases the GIL. Neither reads what the
    # other computes, so the results are those of running them one after the other.
    parser = ThreadPoolExecutor(max_workers=1, thread_name_prefix="andlib-spacy")
    parsing = parser.submit(_analyse, calibrated, lexicon, c.open_concepts_verbs)
    parser.shutdown(wait=False)  # no further work; the parse submitted above still runs

    # Module A: DB and TAB, one layer at a time over the whole activation matrix.
    t = time.time()
    caption_of = dict(zip(captions["clip_id"], captions["caption"], strict=True))
    missing = [cid for cid in cache.clip_ids if cid not in caption_of]
    if missing:
        logger.warning(
            "%d clips have no caption (e.g. %s); DB treats them as ''", len(missing), missing[0]
        )
    clip_captions = [caption_of.get(cid, "") for cid in cache.clip_ids]
    db_probs = caption_concept_probs(clip_captions, concepts, embedder, template=c.db_template)
    db: dict[str, list[str]] = {fn: [""] * len(summaries) for fn in c.similarity}
    db5: dict[str, list[str]] = {fn: [""] * len(summaries) for fn in c.similarity}
    db5s: dict[str, list[str]] = {fn: [""] * len(summaries) for fn in c.similarity}
    tab, tab5, tab5s = [""] * len(summaries), [""] * len(summaries), [""] * len(summaries)
    tab_skipped: list[tuple[int, str]] = []  # (row, reason) of clips CLAP cannot read
    tab_keep: np.ndarray | None = None
    try:  # only an unset clap_model skips TAB; one that cannot load raises ClapLoadError
        scorer = load_clap(
            c.clap_model, c.clap_batch_size, cfg.cache_path, embedder_device(cfg.model.device)
        )
        tab_clips = _tab_clips(cfg, clips, cache.clip_ids)
        tab_probs = scorer.concept_probs(tab_clips, concepts, c.tab_logit_scale, tab_skipped)
        tab_status = f"CLAP {c.clap_model}"
    except TABUnavailable as exc:
        tab_probs, tab_status = None, str(exc)
        logger.info("%s", exc)
    if tab_probs is not None and tab_skipped:  # left out of TAB's scoring, and recorded
        tab_keep = np.ones(len(cache.clip_ids), dtype=bool)
        tab_keep[[i for i, _ in tab_skipped]] = False
        if not tab_keep.any():
            raise ValueError(f"TAB: CLAP could read none of the {len(tab_keep)} clips")
        tab_probs = tab_probs[tab_keep]
        tab_status += f" ({len(tab_skipped)} unreadable clips left out: {TAB_SKIPPED_CLIPS})"
    rows_of_layer = summaries.groupby("layer", sort=False).indices
    for layer, rows in rows_of_layer.items():
        if layer not in cache:
            raise KeyError(f"summaries.csv names layer {layer!r}, which was not recorded")
        acts = np.array(cache[layer], dtype=np.float32)  # a writable copy of the memmap
        neurons = summaries["neuron"].to_numpy()[rows]
        for fn in c.similarity:
            scores = db_scores(db_probs, acts, fn, c.db_clips, cfg.k, params, neurons)
            ranked, values = top_concepts_scored(scores, concepts, 5)
            for r, names, v in zip(rows, ranked, values, strict=True):
                db[fn][r], db5[fn][r], db5s[fn][r] = names[0], _join(names), _join_scores(v)
        if tab_probs is not None:  # TAB scores every (readable) clip, in AND's code too
            tab_acts = acts if tab_keep is None else acts[tab_keep]
            scores = get_similarity(c.tab_similarity, params)(tab_probs, tab_acts)[neurons]
            ranked, values = top_concepts_scored(scores, concepts, 5)
            for r, names, v in zip(rows, ranked, values, strict=True):
                tab[r], tab5[r], tab5s[r] = names[0], _join(names), _join_scores(v)
    timings["db_tab"] = time.time() - t

    # Modules B and C on the parse (done meanwhile), before ICL as always: with a generative
    # LLM the adjective questions are asked first.
    t = time.time()
    words = parsing.result()
    timings["adjectives_open_wait"] = time.time() - t
    verdict = judge_adjectives(
        [a for w in words for a in w.adjectives], llm, lexicon, c.adjective_prompt
    )
    adjectives = [[a for a in w.adjectives if verdict[a]] for w in words]
    opened = [list(w.concepts) for w in words]
    timings["adjectives_open"] = time.time() - t

    # Module A: ICL on the high summaries.
    t = time.time()
    icl, icl5, icl_method = [""] * len(summaries), [""] * len(summaries), ""
    icl_slots: list[int] | None = None
    icl_padded = 0  # neurons whose top 5 the LLM's reply did not fill itself
    if c.icl:
        result = icl_concepts(highs, concepts, llm, max(1, c.icl_top), embedder, labels)
        icl_method, icl_slots = result.method, result.llm_slots
        if icl_slots is not None:
            icl_padded = sum(n < len(x) for n, x in zip(icl_slots, result.concepts, strict=True))
        for r, names in enumerate(result.concepts):
            icl[r], icl5[r] = (names[0] if names else ""), _join(names)
    timings["icl"] = time.time() - t

    out = summaries.copy()
    out["calibrated_summary"] = calibrated
    out["adjectives"] = [_join(a) for a in adjectives]
    for fn in c.similarity:
        out[f"db_{fn}"], out[f"db_{fn}_top5"] = db[fn], db5[fn]
        out[f"db_{fn}_top5_scores"] = db5s[fn]
    out["tab"], out["tab_top5"], out["tab_top5_scores"] = tab, tab5, tab5s
    # ICL without an LLM is another method: its own columns, never "icl".
    icl_col = ICL_FALLBACK if icl_method == ICL_FALLBACK else "icl"
    out[icl_col], out[f"{icl_col}_top5"] = icl, icl5
    if icl_slots is not None:  # how many of the top 5 the LLM named (the rest pad its reply)
        out["icl_llm_slots"] = icl_slots
    out["icl_method"] = icl_method if c.icl else ""
    out["open_concepts"] = [_join(o) for o in opened]
    frame = None
    if tab_skipped:
        import pandas as pd

        ids = cache.clip_ids
        path_of = dict(zip(clips["clip_id"], clips["path"], strict=True))
        skipped_rows = [(ids[i], path_of.get(ids[i], ""), why) for i, why in tab_skipped]
        frame = pd.DataFrame(skipped_rows, columns=["clip_id", "path", "reason"])

    methods = [f"db_{fn}" for fn in c.similarity] + ["tab", icl_col]
    spread = concept_spread(out, [m for m in methods if m in out], len(concepts))
    collapsed = log_collapses(spread, logger)
    seconds = round(time.time() - t0, 1)
    dropped = sum(len(split_sentences(h)) for h in highs) - sum(
        len(split_sentences(x)) for x in calibrated
    )
    info = {
        "neurons": len(out),
        "concepts": f"{c.concept_set} ({len(concepts)})",
        "tab": tab_status,
        "icl": icl_method or "off",
        **({"icl_padded_neurons": icl_padded} if icl_slots is not None else {}),
        "calibration_dropped_sentences": int(dropped),
        "collapsed_layers": len(collapsed),
        "seconds": seconds,
    }
    logger.info("concepts: %s; timings %s", info, {k: round(v, 1) for k, v in timings.items()})
    return Described(out, frame, spread, info)


def run_stage(cfg: Config, run: RunDir) -> dict[str, Any]:
    """Modules A, B, C for every neuron of ``summaries.csv`` (:func:`describe_neurons`);
    writes ``neurons.csv`` and, when CLAP could not read some clips, ``tab_skipped_clips.csv``.

    Reads ``summaries.csv`` (summarize), ``captions.csv`` (caption), ``clips.csv`` and the
    activations (record). Keyed by :data:`SPEC`; reused when nothing in it changed.
    """
    key = SPEC.key(cfg, run)
    if run.is_fresh(STAGE, key):
        return {"neurons": "up to date"}
    summaries = run.read_csv("summaries.csv", stage="summarize", dtype=str)
    summaries["neuron"] = summaries["neuron"].astype(int)
    captions = run.read_csv("captions.csv", stage="caption", dtype=str)
    clips = run.read_csv("clips.csv", stage="record", dtype=str)
    cache = ActivationCache.load(run)
    found = describe_neurons(cfg, summaries, captions, clips, cache, run.logger(STAGE))
    run.write_csv("neurons.csv", found.neurons)
    run.write_csv(CONCEPT_SPREAD, found.spread)
    outputs = ["neurons.csv", CONCEPT_SPREAD]
    if found.tab_skipped is not None:
        run.write_csv(TAB_SKIPPED_CLIPS, found.tab_skipped)
        outputs.append(TAB_SKIPPED_CLIPS)
    else:
        (run / TAB_SKIPPED_CLIPS).unlink(missing_ok=True)
    run.mark_done(STAGE, key, outputs=outputs, **found.info)
    return found.info
