# %% [markdown]
# # 06 · Analyses
#
# The paper's analyses of the described neurons, each as a table in `<run>/analysis/` and a
# figure in `figures/` (PNG + PDF):
#
# - **Acoustic adjectives** (paper Fig. 3): which acoustic adjectives the calibrated
#   descriptions use, over all described neurons.
# - **Adjectives per layer** (paper Fig. 5): the mean number of acoustic adjectives per
#   neuron for each layer, shallow to deep, with a fitted regression line, its slope and a 95%
#   confidence interval (fitted over neurons; x = the layer's position in depth order).
# - **Polysemantic neurons** (paper Fig. 6): every clip's caption is embedded and the clips
#   are clustered by those embeddings (KMeans, `analysis.n_clusters`, 11 as in the paper); a
#   neuron whose top-K clips fall in at least `analysis.polysemantic_threshold` clusters counts
#   as polysemantic.
# - **Acoustic features vs concepts** (paper finding i): per layer, the share of neurons whose
#   description has more acoustic adjectives than source nouns (or the reverse), and how much
#   of each neuron's activation the captioner's numeric acoustic measurements alone explain
#   (cross-validated ridge R²).
# - **Training strategies** (paper finding ii): with `configs/strategies.yaml`, the
#   supervised, SSL-frozen and SSL-fine-tuned models side by side.

# %% tags=["parameters"]
config_path = "configs/default.yaml"
overrides = []

# %%
from IPython.display import Markdown, display

from andlib import pipeline
from andlib.report import analysis

from andlib.report import plots
from andlib.config import load_config
from andlib.store import RunDir, show_logs

show_logs()
cfg = load_config(config_path, overrides)
run = RunDir.from_config(cfg)


def show(name):
    """Show one of this run's figures inline (if that analysis could run)."""
    if name in figures:
        plots.show_figures([figures[name]])
    elif not cfg.strategies:
        print(f"{name}: not computed (its inputs are missing from {run.path})")


# %%
figures = {}
if cfg.strategies:
    display(
        Markdown(
            "This config compares training strategies: each model's own analyses are in its run "
            f"directory (`{cfg.run_path}/<strategy>/analysis/`) and figures folder "
            f"(`{cfg.figures_path}/<strategy>/`). The comparison is at the end."
        )
    )
else:
    display(pipeline.run_stage("analyze", cfg))
    figures = analysis.make_figures(cfg, run)

# %% [markdown]
# ## Acoustic adjectives over all described neurons (Fig. 3)

# %%
counts = analysis.read_table(run, "adjective_counts.csv")
if counts is not None:
    display(counts.head(cfg.analysis.top_n_adjectives))
show("adjective_distribution")

# %% [markdown]
# ## Acoustic adjectives per layer (Fig. 5)

# %%
per_layer = analysis.read_table(run, "adjectives_per_layer.csv")
if per_layer is not None:
    trend = analysis.read_trend(run)
    display(per_layer)
    display(
        Markdown(
            f"Slope **{trend['slope']:+.4f}** adjectives per layer step "
            f"({trend['confidence']:.0%} CI [{trend['ci_low']:+.4f}, {trend['ci_high']:+.4f}], "
            f"p = {trend['p_value']:.3g}, {trend['n']} neurons)."
        )
    )
show("adjectives_per_layer")

# %% [markdown]
# ## Uninterpretable / polysemantic neurons (Fig. 6)

# %%
poly = analysis.read_table(run, "polysemantic_per_layer.csv")
if poly is not None:
    display(poly)
show("polysemantic_neurons")

# %% [markdown]
# ## Basic acoustic features vs high-level concepts (finding i)
#
# Left: whose words dominate each neuron's description. Right: how well the acoustic
# measurements of the captioner (loudness, pitch, spectral shape, onsets, ...) alone predict
# the activation: R² near 1 means the neuron tracks low-level acoustics; near 0 or below, it
# responds to something those measurements do not capture.

# %%
balance = analysis.read_table(run, "acoustic_vs_concepts.csv")
if balance is not None:
    display(balance)
show("acoustic_vs_concepts")

# %%
r2 = analysis.read_table(run, "feature_r2_per_layer.csv")
if r2 is not None:
    display(r2)
show("acoustic_feature_r2")

# %% [markdown]
# ## Class purity: how narrow neurons are, by the known labels
#
# The share of each neuron's top-K clips that belong to their most common ESC-50 class (the
# descriptions never see these labels). Random K-sets of clips give the chance line. A model
# whose training narrows neurons onto classes layer by layer (finding ii) shows purity rising
# with depth.

# %%
purity = analysis.read_table(run, "class_purity_per_layer.csv")
if purity is not None:
    display(purity)
show("class_purity")

# %% [markdown]
# ## Supervised vs self-supervised training strategies (finding ii)
#
# Runs only for a config with `strategies` (`configs/strategies.yaml`): `reproduce` first runs
# every notebook once per strategy into `<run_dir>/<strategy>/` (with `seeds`: once per
# strategy and training seed, into `<run_dir>/<strategy>/seed<k>/`), then this notebook once
# more on the parent config, which reads those runs. With several seeds the figure draws
# every seed (one marker shape per seed).

# %%
seed_runs = analysis.seed_runs(cfg)
strategy_runs = analysis.strategy_runs(cfg)
result = None
if not cfg.strategies:
    print(
        "The training-strategy comparison needs configs/strategies.yaml: "
        "python -m andlib reproduce --config configs/strategies.yaml"
    )
elif not seed_runs:
    print(f"No per-strategy runs under {cfg.run_path} yet (expected {cfg.strategies}).")
else:
    display(analysis.run_comparison(cfg, run))
    result = analysis.seed_comparison(cfg)
    comparison = result["comparison"]
    display(
        comparison.fillna({"depth": -1}).pivot_table(
            index=["metric", "depth", "layer"],
            columns=["model", "seed"] if "seed" in comparison else "model",
            values="value",
        )
    )
    plots.show_figures(
        analysis.comparison_figures(cfg, strategy_runs, comparison, result["per_seed"])
    )

# %% [markdown]
# Does training narrow neurons layer by layer? Per neuron, class purity and the polysemantic
# flag regressed on the block index over the hidden layers (the classifier left out): a
# positive purity slope and a negative polysemantic slope mean neurons narrow with depth.

# %%
if result is not None:
    display(result["trends"])

# %% [markdown]
# ## Does an ordering survive a retrain? (the strategies over training seeds)
#
# Per model and measure: the mean over the training seeds, the spread between seeds (`min`,
# `max`, `spread` = max − min, `sd`) beside the within-run interval (`within_half_width`: the
# mean half-width of each run's own interval: regression for slopes, t over neurons for
# means, Wilson for accuracies). An ordering of two models is stated only where it holds in
# every seed (`holds_in_every_seed`: every seed of one above every seed of the other); with a
# single run per model none is stated.

# %%
if result is not None:
    display(result["summary"])
    display(result["orderings"])
    print(result["verdict"])
