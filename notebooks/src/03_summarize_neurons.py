# %% [markdown]
# # 03 · Summarize neurons; Modules A, B and C
#
# For every recorded neuron, the captions of its top-K highly and lowly activating clips are
# summarized (`llm.backend`; the offline default `extractive` is **not a language model**: it
# counts what the captions share). Then AND's three modules describe the neuron:
#
# - **A, closed-set concepts** from `concepts.concept_set` (ESC-50's 50 classes by default):
#   DB (caption embeddings vs concept names, scored against the activations with each
#   similarity function of `concepts.similarity`), TAB (CLAP audio-text retrieval; only when
#   `concepts.clap_model` names a CLAP model) and ICL (the LLM picks from the summary; with the
#   non-generative extractive backend the concepts are ranked by embedding similarity to the
#   summary instead, reported as its own method, `icl_embedding`, never as `icl`).
# - **B, calibration**: high-summary sentences that the low summary repeats are dropped; the
#   remaining adjectives that describe sound are kept.
# - **C, open-set concepts**: the nouns and verbs of the calibrated summary.
#
# Writes `summaries.csv` and `neurons.csv` into the run directory.

# %% tags=["parameters"]
config_path = "configs/default.yaml"
overrides = []

# %%
import pandas as pd
from IPython.display import Audio, Markdown, display

from andlib import pipeline
from andlib.config import load_config
from andlib.data.audio import AudioError, load_audio
from andlib import store
from andlib.store import RunDir

cfg = load_config(config_path, overrides)
run = RunDir.from_config(cfg)
print(f"LLM backend: {cfg.llm.backend}   embedder: {cfg.embedder.name}   run directory: {run.path}")

# %%
# The summarize stage, then the concepts stage (Modules A, B, C) on its summaries.
summary = pipeline.run_stage("summarize", cfg)
print(summary)
if not cfg.concepts.clap_model:
    print(
        "TAB was skipped: no CLAP model is configured (set concepts.clap_model, e.g. "
        "laion/clap-htsat-unfused); the tab columns of neurons.csv are empty."
    )
if cfg.llm.backend == "extractive":
    print(
        "ICL: the extractive backend is not a language model, so the ICL concepts are the "
        "concepts most similar (sentence embeddings) to each high summary, reported as "
        "icl_embedding (columns icl_embedding, icl_embedding_top5)."
    )

# %%
neurons = store.read_neurons(run)
print(f"{len(neurons)} neurons in {neurons['layer'].nunique()} layers")
neurons.groupby("layer", sort=False).agg(
    neurons=("neuron", "size"),
    with_adjectives=("adjectives", lambda s: int((s != "").sum())),
    with_open_concepts=("open_concepts", lambda s: int((s != "").sum())),
)

# %% [markdown]
# ## How evenly each method spreads its concepts
#
# `concept_spread.csv`: per layer and closed-set method, the share of the layer's neurons that
# the most common top-1 concept names, and the entropy of the concepts in bits. A share over
# 25 % means the method, not the neurons, picks the concept (the stage logs a warning). The
# DB concept shown everywhere is `concepts.db_default`.

# %%
spread = store.read_table(run, "concept_spread.csv")
print(f"DB concept of a neuron: db_{cfg.concepts.db_default}")
display(spread.pivot_table(index="layer", columns="method", values="top_share", sort=False).round(2))
display(spread[spread["method"] == f"db_{cfg.concepts.db_default}"].round(3))

# %% [markdown]
# ## A few neurons end to end
#
# For each neuron: its high and low summaries, the calibrated summary, the acoustic
# adjectives, the closed-set concepts (DB per similarity function, TAB, ICL or, without an
# LLM, `icl_embedding`), the open-set concepts, and its top clips with their captions.

# %%
clips = store.read_clips(run).set_index("clip_id")
captions = store.caption_of(run)
described = neurons[neurons["calibrated_summary"] != ""]
shown = (described if len(described) else neurons).groupby("layer", sort=False).head(2)
shown = shown.sample(n=min(4, len(shown)), random_state=cfg.seed).sort_index()
closed = store.concept_columns(neurons.columns)
n_clips_shown = 3


def listed(cell):
    return ", ".join(store.decode_list(cell))


for _, row in shown.iterrows():
    display(Markdown(f"### {row['layer']} · neuron {row['neuron']}"))
    display(
        Markdown(
            f"**High summary:** {row['high_summary']}\n\n"
            f"**Low summary:** {row['low_summary']}\n\n"
            f"**Calibrated summary:** {row['calibrated_summary'] or '(nothing left)'}\n\n"
            f"**Acoustic adjectives:** {listed(row['adjectives']) or '(none)'}\n\n"
            f"**Open-set concepts:** {listed(row['open_concepts']) or '(none)'}"
        )
    )
    table = pd.DataFrame(
        {
            "top-1": [row[c] for c in closed],
            "top-5": [listed(row.get(f"{c}_top5", "")) for c in closed],
        },
        index=closed,
    )
    display(table)
    for clip_id in store.decode_list(row["top_clips"])[:n_clips_shown]:
        meta = clips.loc[clip_id]
        display(
            Markdown(
                f"*{clip_id}* ({meta.get('category', '') or 'no label'}): {captions.get(clip_id, '')}"
            )
        )
        try:
            audio = load_audio(meta["path"], cfg.data.sample_rate, cfg.data.duration)
            display(Audio(audio, rate=cfg.data.sample_rate))
        except (AudioError, OSError) as exc:
            print(f"  (no audio player: {exc})")

# %% [markdown]
# ## The classifier layer: do the closed-set methods agree with the class?
#
# The output neurons have a known concept (their class), which `04_evaluate` scores properly;
# here is just a first look at the first few.

# %%
layer = cfg.evaluate.classifier_layer
out_layer = neurons[neurons["layer"] == layer]
if len(out_layer):
    display(out_layer[["neuron", *closed]].head(10))
else:
    print(f"layer {layer!r} was not recorded")
