# %% [markdown]
# # 08 · Pitch networks against exact ground truth
#
# Only for configs that dissect a pretrained pitch network (`configs/pitch.yaml`: CREPE-tiny,
# supervised, and PESTO, self-supervised, on the same pitched probing set); for any other
# config this notebook has nothing to do and says so.
#
# - **Output layer**: every output neuron is a pitch bin of known frequency. The pitch its
#   description states (the calibrated summary; also the high summary and the DB concepts
#   of the note-name concept set) is compared with the bin: the share of in-range bins
#   described within ±1 semitone, the median error, and the same with the descriptions
#   shuffled across neurons (chance). Written to `pitch_last_layer.json`.
# - **Every layer**: tuning curves over the synthetic notes (activation against f0 and each
#   timbre parameter), the attribute that explains most of each neuron's variance, how often
#   the description names it, and the pitch selectivity of the top-K notes.
# - **Comparison** (the parent run): supervised CREPE against self-supervised PESTO per
#   relative layer depth (pitch selectivity, polysemantic fraction, simulation score).

# %% tags=["parameters"]
config_path = "configs/default.yaml"
overrides = []

# %%
import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import Markdown, display

from andlib import pipeline, store
from andlib.evaluate import pitch as pitch_eval
from andlib.report import pitch as pitch_report
from andlib.report import plots
from andlib.config import load_config
from andlib.store import RunDir, show_logs

show_logs()
cfg = load_config(config_path, overrides)
run = RunDir.from_config(cfg)
applies = pitch_eval.is_pitch_config(cfg)
comparing = applies and bool(cfg.strategies)
if not applies:
    display(
        Markdown(
            f"Nothing to do here: `{cfg.model.name}` is not a pitch network "
            "(crepe-tiny, crepe-full, pesto); see `configs/pitch.yaml`."
        )
    )

# %% [markdown]
# ## The pitch stage
#
# One network's run: its output layer and tuning tables; the parent run of the comparison: the
# comparison of its networks' runs.

# %%
if applies:
    display(pipeline.run_stage("pitch", cfg))

# %% [markdown]
# ## Output layer: the stated pitch against the bin

# %%
if applies and not comparing:
    report = run.read_json("pitch_last_layer.json")
    methods = pd.DataFrame(report["methods"]).T
    display(
        Markdown(
            f"**{report['model']}**, layer `{report['layer']}`: {report['n_neurons']} of "
            f"{report['n_output_neurons']} output bins lie inside the notes' range "
            f"({report['in_range_hz'][0]:.1f} to {report['in_range_hz'][1]:.1f} Hz)."
        )
    )
    display(methods.round(3))

# %% [markdown]
# ## Tuning curves of a few neurons
#
# Mean activation against f0 (10 quantile bins of the notes) for, per layer, the neuron whose
# variance f0 explains best; the title gives its adjusted eta² and what drives it.

# %%
if applies and not comparing:
    tuning = store.read_table(run, "pitch_tuning.csv")
    curves = store.read_table(run, "pitch_tuning_curves.csv")
    layers = list(dict.fromkeys(tuning["layer"]))
    fig, axes = plt.subplots(1, len(layers), figsize=(2.6 * len(layers), 2.6), squeeze=False)
    for ax, layer in zip(axes[0], layers, strict=True):
        t = tuning[tuning["layer"] == layer]
        best = t.loc[pd.to_numeric(t["eta2_f0"], errors="coerce").idxmax()]
        c = curves[
            (curves["layer"] == layer)
            & (curves["neuron"] == int(best["neuron"]))
            & (curves["attribute"] == "f0")
        ]
        ax.plot(c["centre"], c["mean_activation"], marker="o", ms=3)
        ax.set_title(
            f"{layer} #{int(best['neuron'])}\neta² f0 {float(best['eta2_f0']):.2f}", fontsize=8
        )
        ax.set_xlabel("f0 (MIDI)")
    axes[0, 0].set_ylabel("mean activation")
    fig.tight_layout()
    plots.save_figure(fig, "pitch_tuning_examples", cfg)
    plots.show_figures([fig])

# %% [markdown]
# ## Per layer: what drives the neurons, and do the descriptions say it?
#
# `share_<attribute>`: the share of the layer's neurons whose variance that attribute explains
# best (adjusted eta² at least 0.1; `share_none` below). `names_top_attribute`: of the driven
# neurons, the share whose description names the driving attribute (chance: descriptions
# shuffled within the layer). `selectivity_semitones`: median spread of the top-K notes' f0
# (chance: random K notes).

# %%
if applies and not comparing:
    display(store.read_table(run, "pitch_layers.csv").round(3))

# %% [markdown]
# ## Supervised CREPE vs self-supervised PESTO (finding ii)

# %%
if comparing:
    runs = pitch_eval.pitch_runs(cfg)
    comparison, last = pitch_report.comparison_tables(runs)
    display(Markdown("Output layer, every description method, per model"))
    display(last.round(3))
    wide = comparison[comparison["metric"].isin(pitch_report.COMPARED)].pivot_table(
        index=["model", "layer", "depth"], columns="metric", values="value"
    )
    display(wide.sort_index(level=["model", "depth"]).round(3))
    plots.show_figures(pitch_report.comparison_figures(cfg, runs, comparison))

# %%
if comparing:
    hidden = comparison[(comparison["depth"] < 1) & comparison["metric"].isin(pitch_report.COMPARED)]
    display(Markdown("Hidden layers (relative depth below 1), mean over layers"))
    display(hidden.groupby(["model", "metric"])["value"].mean().unstack().round(3))
