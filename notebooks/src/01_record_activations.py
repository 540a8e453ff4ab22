# %% [markdown]
# # 01 · Record activations
#
# Every probing clip is played through the target model; forward hooks capture the output of
# each chosen layer (by default the AST preset: per block the attention output, the MLP hidden
# units after the activation and the block output, plus the classifier's logits). Token/time
# axes are pooled (`record.pooling`), giving one value per clip and neuron, stored as shards in
# `activations/<layer>/`. Each neuron's top-K highly and lowly activating clips go to
# `neuron_topk.csv`, the input of the captioning and summarizing stages.
#
# Recording resumes from the last finished shard after an interruption, and is reused when
# the model, data and layers are unchanged.

# %% tags=["parameters"]
config_path = "configs/default.yaml"
overrides = []

# %%
import numpy as np
import pandas as pd
from IPython.display import Audio, Markdown, display

from andlib import pipeline, store

from andlib.report import plots
from andlib.config import load_config
from andlib.data.probing import load_probing_set
from andlib.store import RunDir

cfg = load_config(config_path, overrides)
run = RunDir.from_config(cfg)

# %%
summary = pipeline.run_stage("record", cfg)
display(summary)

# %% [markdown]
# ## What was recorded

# %%
cache = store.ActivationCache.load(run)
model_info = store.read_model_info(run, required=True)
display(
    Markdown(
        f"**{model_info['model_id']}** ({model_info['kind']}): {cache.n_clips} clips, "
        f"{len(cache)} layers, pooling `{cache.pooling}`"
    )
)
metrics = {k: model_info[k] for k in ("train_accuracy", "heldout_accuracy") if k in model_info}
if metrics:
    display(pd.Series(metrics, name="accuracy").to_frame())
pd.DataFrame(
    {
        "layer": cache.layers,
        "module": [cache.module_path(layer) for layer in cache.layers],
        "neurons": [cache.n_neurons(layer) for layer in cache.layers],
    }
)

# %% [markdown]
# ## Activation distributions
#
# All activations of a few layers (every clip and neuron), log-scaled counts. MLP units after
# the GELU are bounded below by about -0.17; block outputs and logits are not.

# %%
hidden_layers = [layer for layer in cache.layers if layer != "classifier"]
mlp_layers = [layer for layer in hidden_layers if layer.endswith(".mlp")] or hidden_layers
heads = [layer for layer in cache.layers if layer == "classifier"]
picks = list(dict.fromkeys(mlp_layers[:1] + mlp_layers[-1:] + hidden_layers[-1:] + heads))
fig = plots.activation_histograms({layer: cache[layer] for layer in picks})
plots.save_figure(fig, "activation_histograms", cfg)
plots.show_figures([fig])

# %% [markdown]
# ## Top clips of a few neurons
#
# Two hidden neurons with the widest range of activations in the last MLP layer, and the
# classifier neuron of the first class. For each: the top clips (highest activation first)
# with spectrograms and players, and the clips that activate it least.

# %%
topk = store.read_topk(run)
clips = store.read_clips(run).set_index("clip_id")
hidden = (mlp_layers or cache.layers)[-1]
spread = np.ptp(np.asarray(cache[hidden]), axis=0)
neurons = [(hidden, int(j)) for j in np.argsort(-spread, kind="stable")[:2]]
if "classifier" in cache and hidden != "classifier":
    neurons.append(("classifier", 0))

probing_set = load_probing_set(cfg)  # decoded clips, in the recorded order
assert probing_set.clip_ids == cache.clip_ids
n_show = min(3, cfg.k)
panels = []
for layer, neuron in neurons:
    rows = topk[(topk["layer"] == layer) & (topk["neuron"] == neuron)]
    high = rows[rows["end"] == "high"].sort_values("rank")
    low = rows[rows["end"] == "low"].sort_values("rank")
    name = f"{layer} #{neuron}"
    if layer == "classifier" and model_info.get("label_names"):
        name += f" ({model_info['label_names'][neuron]})"
    display(Markdown(f"### {name}"))
    display(
        Markdown(
            "lowest: "
            + ", ".join(
                f"{c} ({clips.loc[c, 'category']}, {a:.2f})"
                for c, a in zip(low["clip_id"], low["activation"], strict=True)
            )
        )
    )
    panels.append([])
    for col, (clip_id, act) in enumerate(
        zip(high["clip_id"][:n_show], high["activation"][:n_show], strict=True)
    ):
        audio = probing_set.audio[probing_set.index_of(clip_id)]
        title = f"{name}\n{clip_id} ({clips.loc[clip_id, 'category']}) {act:.2f}"
        panels[-1].append((title, audio))
        display(Markdown(f"rank {col}: `{clip_id}` ({clips.loc[clip_id, 'category']}), {act:.3f}"))
        display(Audio(audio, rate=probing_set.sample_rate))
fig = plots.neuron_top_clips(panels, probing_set.sample_rate)
plots.save_figure(fig, "neuron_top_clips", cfg)
plots.show_figures([fig])
