# %% [markdown]
# # 04 · Evaluate the descriptions
#
# Two ways of asking "are the neuron descriptions any good?":
#
# 1. **Last-layer dissection accuracy** (paper Table 2). The classifier's output neurons are
#    the classes, so their true concept is known. For each concept-identification method (DB
#    with each similarity function, TAB, ICL: `icl` with an LLM, `icl_embedding` without one)
#    we report Top-1 / Top-5 accuracy of the
#    identified concept against the class name and the mean cosine similarity of the two in the
#    sentence embedder's space. Only the output neurons whose class occurs in the probing set
#    are scored (`n_left_out` and `left_out_reason` in `last_layer.json` count the others). Both captioners are reported: `metadata+acoustic` captions
#    contain the class name, so their accuracy measures label leakage as much as description
#    quality; `acoustic` captions describe only what is heard.
# 2. **Explanation scores** (beyond the paper), every scorer of `evaluate.scorers` on the same
#    seeded sample of neurons per layer (the classifier layer whole), on held-out clips only
#    (never the top-K and bottom-K clips the description was built from):
#    - *simulation*: the cosine similarity of each clip's caption and the description,
#      correlated with the true activation (Pearson, Spearman);
#    - *detection*: can the description tell clips from the neuron's top decile (spread over
#      its sub-quantiles) from clips below its median? AUROC, AUPRC, and at a threshold fitted
#      on the other half of the clips balanced accuracy, F1 and IoU;
#    - *intruder*: four top clips and one from below the median; is the caption least like
#      the others the intruder? (no description read: how coherent the neuron is).
#
#    Each beside its baselines (`random`: another neuron's description; `label`: the top
#    clips' majority class name as the whole description; `oracle`: the leave-one-out
#    class-mean activation) and two **sanity tests**: the description without its source
#    phrase (`missing_label`) and with a wrong source added (`extra_label`) must score lower.

# %% tags=["parameters"]
config_path = "configs/default.yaml"
overrides = []

# %%
import pandas as pd
from IPython.display import Markdown, display

from andlib import pipeline, store
from andlib.evaluate import scores as evaluate

from andlib.report import plots
from andlib.config import load_config
from andlib.store import RunDir

cfg = load_config(config_path, overrides)
run = RunDir.from_config(cfg)

# %% [markdown]
# The pipeline first makes the control runs the evaluate stage reads (`last_layer/<name>/`:
# the classifier layer described again from the other captioners' captions, and from
# captions with a wrong source at the sweep's rates), then runs the stage.

# %%
summary = pipeline.run_stage("evaluate", cfg)
display(summary)

# %% [markdown]
# ## Last-layer dissection accuracy

# %%
results = run.read_json("last_layer.json")
if results:
    table = evaluate.last_layer_frame(results)
    display(table.round(3))
    fig = plots.last_layer_table(results)
else:
    display(Markdown("No classifier layer with known class names was dissected."))

# %% [markdown]
# ## Hidden layers against the class their top clips share
#
# A hidden neuron whose top-K clips mostly (3 of 5) carry one label has a class to check its
# concept against; the descriptions never see the labels. Per layer and method, the share of
# those neurons whose top-1 (and top-5) concept is that class, beside chance (the classes
# shuffled across the same neurons, seeded). `all hidden` pools the layers.

# %%
hidden = store.read_table(run, "hidden_layer_accuracy.csv")
if not hidden.empty:
    pooled = hidden[hidden["layer"] == "all hidden"].set_index("method")
    display(pooled[["n_neurons", "top1", "top5", "chance_top1", "chance_top5"]].round(3))
    display(hidden.pivot_table(index="layer", columns="method", values="top1", sort=False).round(2))
else:
    display(Markdown("The probing set has no labels: no hidden-layer check."))

# %% [markdown]
# ## How good must captions be?
#
# `metadata+acoustic` captions with the source of a seeded share of clips replaced by a wrong
# class: last-layer top-1 against caption accuracy (1 − the corruption rate). The measured
# captioners are points: `tagger+acoustic` at its cross-fitted accuracy, `acoustic` (no source)
# at 0.

# %%
sweep = store.read_table(run, "caption_quality.csv")
if not sweep.empty:
    display(
        sweep.pivot_table(
            index="method", columns=["captioner", "caption_accuracy"], values="top1"
        ).round(2)
    )
    fig = plots.caption_quality(sweep)

# %% [markdown]
# ## Every scorer beside its baselines
#
# Mean per scorer, metric and variant over the sampled neurons (`own`: the description).
# What could not be scored, and why, is listed below (`score_missing.csv`).

# %%
from andlib.evaluate.scorers.sanity import score_summary

scores = store.read_scores(run)
display(score_summary(scores).round(3))
missing = store.read_table(run, "score_missing.csv")
if len(missing):
    display(
        missing.groupby(["scorer", "variant", "reason"], dropna=False)["n_neurons"].sum().to_frame()
    )

# %% [markdown]
# ## Sanity tests
#
# A description with its source phrase removed, or with a wrong source added, must score
# lower than the description itself. `share_lower`: the share of neurons where it does;
# `mean_drop` with its paired 95 % interval; `passes`: the interval lies above zero and most
# neurons drop.

# %%
sanity = store.read_table(run, "score_sanity.csv")
display(sanity.round(3))
failing = sanity[sanity["passes"].astype(str) != "True"]
display(
    Markdown(
        "**Metrics that fail a sanity test:** "
        + (
            ", ".join(f"{r.scorer} {r.metric} ({r.variant})" for r in failing.itertuples())
            or "none"
        )
    )
)

# %% [markdown]
# ## How much the description explains beyond the class name
#
# Per layer, the description's mean score minus the `label` baseline's (the top clips'
# majority class name as the whole description), with a paired 95 % interval.

# %%
baselines = store.read_table(run, "score_baselines.csv")
beyond = baselines[
    (baselines["variant"] == "label") & baselines["metric"].isin(["pearson", "auroc"])
]
display(beyond.round(3))

# %% [markdown]
# ## Simulation per layer
#
# Mean correlation per layer and variant (error bars: standard error over the sampled neurons).

# %%
per_layer = evaluate.simulation_summary(scores)
display(
    per_layer[per_layer["metric"] == "pearson"]
    .pivot(index="layer", columns="variant", values="value")
    .round(3)
)
fig = plots.simulation_by_layer(scores)

# %% [markdown]
# ## Best and worst explained neurons (detection AUROC)

# %%
desc = scores[
    (scores["scorer"] == "detection") & (scores["metric"] == "auroc") & (scores["variant"] == "own")
].dropna(subset=["value"])
neurons = store.read_neurons(run).set_index(["layer", "neuron"])
for title, rows in [("best", desc.nlargest(5, "value")), ("worst", desc.nsmallest(5, "value"))]:
    rows = rows.assign(
        description=[
            evaluate.description_of(neurons.loc[(r.layer, r.neuron)]) for r in rows.itertuples()
        ]
    )
    display(Markdown(f"**{title}**"))
    display(rows[["layer", "neuron", "value", "n", "description"]])
