# %% [markdown]
# # 05 · Concept-specific pruning
#
# Can the descriptions make the model forget one concept (paper Table 4)? For each class of the
# held-out fold we choose the neurons that "are about" that concept and silence them, with four
# strategies:
#
# - **OCP**: the neuron's open-set concepts (nouns and verbs of its calibrated summary) contain
#   every word of the concept name (`prune.ocp_match`);
# - **DB** / **TAB**: the concept is among the neuron's top-3 closed-set concepts (TAB only when
#   a CLAP model was configured);
# - **random**: as many neurons per layer as the strategy that chose the most, drawn at random
#   (seeded) -- the control.
#
# Neurons are silenced by zeroing the weights and bias that produce them (or, for block
# outputs, by an output mask); the model is restored bit for bit after every measurement and
# the saved checkpoint is never touched. On the concept's class (A) and on every other clip (R)
# we measure the drop in confidence (the logit and the probability of each clip's true class)
# and the accuracy before and after. Forgetting that is specific to the concept shows as a
# large ΔA and a small ΔR: higher ΔA − ΔR is better.

# %% tags=["parameters"]
config_path = "configs/default.yaml"
overrides = []

# %%
from IPython.display import Markdown, display

from andlib.report import plots

from andlib import pipeline, store
from andlib.evaluate import prune
from andlib.config import load_config
from andlib.text.names import normalize_concept
from andlib.store import RunDir

cfg = load_config(config_path, overrides)
run = RunDir.from_config(cfg)

# %%
summary = pipeline.run_stage("prune", cfg)
display(summary)

# %% [markdown]
# ## Summary over the held-out classes
#
# Every strategy on the same seeded classes (`n_concepts`; `n_acted`: classes where it chose
# at least one neuron); the random baseline is drawn several times per class and its draws are
# averaged per class first. `n_pruned_mean` is the mean number of neurons pruned per class;
# `delta_a_minus_r_mean` is the mean ΔA − ΔR (confidence drops in logits) with a 95 % bootstrap
# interval over classes (`ci_low`, `ci_high`); `vs_random_*` is the per-class difference from
# the random baseline.

# %%
df = store.read_pruning(run)
table = prune.pruning_summary(df)
display(table.round(3))
if not table.empty:
    fig = plots.pruning_summary_bars(table)

# %% [markdown]
# ## The named concept

# %%
named = df[df["concept"].map(normalize_concept) == normalize_concept(cfg.prune.concept)]
display(Markdown(f"Pruning the neurons of **{cfg.prune.concept}**"))
display(named.round(3))
if not named.empty:
    fig = plots.pruning_concept_bars(named, cfg.prune.concept)

# %% [markdown]
# ## Every class

# %%
display(Markdown("Confidence drop on the class (ΔA, logits) per strategy"))
per_class = prune.average_draws(df)
display(per_class.pivot(index="concept", columns="strategy", values="delta_a").round(2))
display(Markdown("Neurons pruned per strategy"))
display(per_class.pivot(index="concept", columns="strategy", values="n_pruned"))
