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
# 2. **Explanation scoring by simulation** (beyond the paper). From a neuron's description
#    alone, predict its activation on held-out clips (every clip except the top-K and bottom-K
#    clips the description was built from): the cosine similarity of each clip's caption and the
#    description. Pearson and Spearman correlation with the true activations, per neuron, beside
#    baselines: a random other neuron's description, the clip's class name in place of its
#    caption (`label`), and the leave-one-out class-mean activation (`label_oracle`, the
#    ceiling of any predictor that only sees the label). With a generative LLM backend an LLM
#    simulator (`llm`) rates captions against the description too.

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
hidden = run.read_csv("hidden_layer_accuracy.csv")
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
sweep = run.read_csv("caption_quality.csv")
if not sweep.empty:
    display(
        sweep.pivot_table(index="method", columns=["captioner", "caption_accuracy"], values="top1")
        .round(2)
    )
    fig = plots.caption_quality(sweep)

# %% [markdown]
# ## Simulation scores
#
# Mean correlation per layer and method (error bars: standard error over the sampled neurons).
# A description is informative beyond chance when `description` is clearly above
# `random_description`; it carries more than the class identity when it also beats `label`.

# %%
scores = run.read_csv("simulation_scores.csv")
for column in ("pearson", "spearman"):  # empty for a neuron whose activation is constant
    scores[column] = pd.to_numeric(scores[column], errors="coerce")
display(
    scores.groupby("method", sort=False)[["pearson", "spearman"]].agg(["mean", "median"]).round(3)
)
per_layer = evaluate.simulation_summary(scores)
display(
    per_layer.pivot(index="layer", columns="method", values="pearson").round(3),
)
fig = plots.simulation_by_layer(scores)

# %% [markdown]
# ## Best and worst explained neurons

# %%
desc = scores[scores["method"] == "description"].dropna(subset=["pearson"])
neurons = store.read_neurons(run).set_index(["layer", "neuron"])
for title, rows in [("best", desc.nlargest(5, "pearson")), ("worst", desc.nsmallest(5, "pearson"))]:
    rows = rows.assign(
        description=[
            evaluate.description_of(neurons.loc[(r.layer, r.neuron)]) for r in rows.itertuples()
        ]
    )
    display(Markdown(f"**{title}**"))
    display(rows[["layer", "neuron", "pearson", "spearman", "description"]])
