"""The concepts stage: Modules A, B and C of AND for every neuron, written to ``neurons.csv``.

**Module A: closed-set concept identification.** Each neuron gets concepts from a closed set
(:func:`load_concept_set`; ESC-50's 50 classes by default) three ways: DB, description-based
(:mod:`andlib.describe.closed_set`, from the clips' captions), TAB, text-audio-based
(:mod:`andlib.describe.tab`, from CLAP) and ICL, in-context learning
(:mod:`andlib.describe.icl`, an LLM reads the neuron's high summary).

**Module B: summary calibration** (:mod:`andlib.describe.calibration`: the high summary
without the sentences the low summary also says) and the sound adjectives of the calibrated
summary (:mod:`andlib.describe.adjectives`).

**Module C: open-set concepts** (:mod:`andlib.describe.open_set`): the nouns and verbs of the
calibrated summary, lemmatized, de-duplicated, without generic words ("sound", "clip", ...).

Every departure from AND has a config key that restores AND's choice
(``configs/paper-faithful.yaml``, ``docs/paper-faithful.md``).

:func:`run_stage` runs all three for every neuron of ``summaries.csv`` and writes
``neurons.csv``. Embeddings of distinct sentences are computed once, spaCy parses each
distinct summary once, and the similarity functions score a whole layer at a time. The
functions of the modules above stay importable from here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from andlib.config import Config
from andlib.describe.adjectives import ADJECTIVE_LEXICON as ADJECTIVE_LEXICON
from andlib.describe.adjectives import CLAUSE_BREAKS as CLAUSE_BREAKS
from andlib.describe.adjectives import GENERIC_WORDS as GENERIC_WORDS
from andlib.describe.adjectives import NEGATION_WINDOW as NEGATION_WINDOW
from andlib.describe.adjectives import NEGATORS as NEGATORS
from andlib.describe.adjectives import OPEN_POS as OPEN_POS
from andlib.describe.adjectives import STOP_ADJECTIVES as STOP_ADJECTIVES
from andlib.describe.adjectives import _analyse as _analyse
from andlib.describe.adjectives import acoustic_adjectives as acoustic_adjectives
from andlib.describe.adjectives import acoustic_adjectives_many as acoustic_adjectives_many
from andlib.describe.adjectives import extract_adjectives as extract_adjectives
from andlib.describe.adjectives import is_sound_adjective as is_sound_adjective
from andlib.describe.adjectives import judge_adjectives as judge_adjectives
from andlib.describe.adjectives import load_adjective_lexicon as load_adjective_lexicon
from andlib.describe.calibration import calibrate as calibrate
from andlib.describe.calibration import calibrate_many as calibrate_many
from andlib.describe.calibration import comparable as comparable
from andlib.describe.calibration import contrast_vocabulary as contrast_vocabulary
from andlib.describe.calibration import sentence_weight as sentence_weight
from andlib.describe.calibration import split_sentences as split_sentences
from andlib.describe.closed_set import DB_CLIPS as DB_CLIPS
from andlib.describe.closed_set import DB_LOGIT_SCALE as DB_LOGIT_SCALE
from andlib.describe.closed_set import ArrayLike as ArrayLike
from andlib.describe.closed_set import caption_concept_probs as caption_concept_probs
from andlib.describe.closed_set import db_concepts as db_concepts
from andlib.describe.closed_set import db_scores as db_scores
from andlib.describe.icl import ICL_FALLBACK as ICL_FALLBACK
from andlib.describe.icl import ICL_TEMPLATE as ICL_TEMPLATE
from andlib.describe.icl import ICLResult as ICLResult
from andlib.describe.icl import embed_summaries as embed_summaries
from andlib.describe.icl import icl_answer as icl_answer
from andlib.describe.icl import icl_answer_marked as icl_answer_marked
from andlib.describe.icl import icl_concepts as icl_concepts
from andlib.describe.icl import map_to_concepts as map_to_concepts
from andlib.describe.icl import map_to_concepts_marked as map_to_concepts_marked
from andlib.describe.icl import parse_icl_reply as parse_icl_reply
from andlib.describe.icl import rank_by_embedding as rank_by_embedding
from andlib.describe.open_set import open_concepts as open_concepts
from andlib.describe.open_set import open_concepts_many as open_concepts_many
from andlib.describe.similarity import get_similarity, top_concepts_scored
from andlib.describe.similarity import top_concepts as top_concepts
from andlib.describe.spread import concept_spread, log_collapses
from andlib.describe.tab import CLAP_SAMPLE_RATE as CLAP_SAMPLE_RATE
from andlib.describe.tab import CLAP_TEMPLATE as CLAP_TEMPLATE
from andlib.describe.tab import ClapLoadError as ClapLoadError
from andlib.describe.tab import ClapScorer as ClapScorer
from andlib.describe.tab import TABUnavailable as TABUnavailable
from andlib.describe.tab import load_clap as load_clap
from andlib.describe.tab import tab_concepts as tab_concepts
from andlib.store import (
    RESOURCE_DIR,
    ActivationCache,
    RunDir,
    Stage,
    encode_list,
    read_captions,
    read_clips,
    read_summaries,
)
from andlib.text.concept_sets import concept_set_resource
from andlib.text.concept_sets import display_name as display_name
from andlib.text.concept_sets import load_concept_set as load_concept_set
from andlib.text.embeddings import embedder_device as embedder_device

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

STAGE = "concepts"
VERSION = 3
"""Algorithm version of the concepts stage (part of its cache key): raise it when a change of
the code changes ``neurons.csv`` for the same inputs."""
RESOURCES = RESOURCE_DIR
TAB_SKIPPED_CLIPS = "tab_skipped_clips.csv"
"""Clips TAB left out because CLAP could not read them: ``clip_id, path, reason``."""
CONCEPT_SPREAD = "concept_spread.csv"
"""Per layer and closed-set method, how evenly the top-1 concepts spread over the neurons."""


def stage_resources(cfg: Config) -> list[str]:
    """Everything outside the config the concepts stage reads, as
    :func:`andlib.store.resource_digest` names: the concept set, the adjective lexicon and the
    ICL and adjective prompts. Part of the stage key, so editing any of them recomputes
    ``neurons.csv``."""
    c = cfg.concepts
    lexicon = ADJECTIVE_LEXICON if c.adjective_lexicon is None else str(c.adjective_lexicon)
    return [concept_set_resource(c.concept_set), lexicon, "prompts:icl", "prompts:adjective"]


# --------------------------------------------------------------------------------------------
# The stage
# --------------------------------------------------------------------------------------------


def _join(items: Sequence[str]) -> str:
    return encode_list(items)


def _join_scores(values: Sequence[float]) -> str:
    return encode_list(f"{v:.6g}" for v in values)


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
    summaries = read_summaries(run)
    captions = read_captions(run)
    clips = read_clips(run)
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
