# %% [markdown]
# # 00 · Train the target model
#
# Offline, the model to dissect is the project's own small Audio Spectrogram Transformer,
# built from a transformers `ASTConfig` and trained on the real ESC-50 clips: folds 1–4 for
# training, fold 5 held out. Log-mel features are computed once with the model's own
# `ASTFeatureExtractor`; training augments those spectrograms (random gain, time shift,
# SpecAugment-style masks, mixup). The model is saved with `save_pretrained` (weights, feature
# extractor, ESC-50 label names), so later stages load it exactly like a hub checkpoint.
#
# Three strategies share the architecture (`train.strategy`, or `strategies` in the config):
# `supervised` (the default), `ssl-frozen` (encoder pretrained by masked spectrogram
# modelling on all clips without labels, then frozen under a linear classifier) and
# `ssl-finetuned` (the same pretrained encoder fine-tuned end to end). With `train.init` (e.g.
# `configs/strategies-online.yaml`), a hub checkpoint such as HuBERT replaces the project's AST
# and its own pretraining replaces the masked-spectrogram step.
#
# Trained models are cached in `<cache_dir>/models/` under a hash of the training settings
# and seed: this notebook trains only what is missing and otherwise just reports.

# %% tags=["parameters"]
config_path = "configs/default.yaml"
overrides = []

# %%
import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import Markdown, display

from andlib.report import plots

from andlib import pipeline
from andlib.models import train
from andlib.config import load_config
from andlib.store import RunDir, show_logs

show_logs()
cfg = load_config(config_path, overrides)
run = RunDir.from_config(cfg)

# %% [markdown]
# ## Train or reuse
#
# Progress is logged per epoch (loss, and held-out accuracy every `train.eval_every` epochs:
# logged only, never used to pick a checkpoint; the final weights are kept).

# %%
summary = pipeline.run_stage("train", cfg)
strategies = train.strategies_to_train(cfg)
if strategies or "head_layer" in summary:
    display(summary)
else:
    display(Markdown(f"Nothing to train: {summary['train']}"))

# %% [markdown]
# ## A probe head for an encoder
#
# An encoder without a classifier (a Whisper encoder with `model.whisper.head: true`) gets a
# probe head in place of training: a linear classifier on the pooled output of the block that
# cross-validation inside folds 1–4 picks, fitted on folds 1–4 and scored once on fold 5. Its
# 50 logits are the `classifier` neurons of the last-layer evaluation and of pruning. The
# figure shows every block's accuracy: the CV accuracy chose the block; the held-out accuracy
# is reported, never used to choose.

# %%
if "head_layer" in summary:
    fig = plots.probe_accuracy(
        summary["head_cv_accuracy"], summary["head_heldout_per_layer"], summary["head_layer"]
    )
    plots.save_figure(fig, "probe_accuracy", cfg)
    plt.show()
    display(
        Markdown(
            f"Head on `{summary['head_layer']}`: held-out (fold 5) accuracy "
            f"{summary['heldout_accuracy']:.3f}."
        )
    )

# %% [markdown]
# ## Accuracy and training time

# %%
tc = cfg.train
architecture = (
    f"checkpoint `{tc.init}` (its own architecture and feature extractor)"
    if tc.init
    else f"AST: hidden {tc.hidden_size}, {tc.num_hidden_layers} layers, "
    f"{tc.num_attention_heads} heads, {tc.num_mel_bins} mel bins x {tc.max_length} frames, "
    f"{tc.patch_size}x{tc.patch_size} patches (strides {tc.frequency_stride}/{tc.time_stride})"
)
display(Markdown(f"{architecture}; {tc.epochs} epochs, batch {tc.batch_size}, lr {tc.lr}"))
columns = [
    "train_accuracy",
    "heldout_accuracy",
    "train_seconds",
    "pretrain_seconds",
    "epochs",
    "steps",
    "n_parameters",
    "seed",
    "num_threads",
]
metrics = pd.DataFrame(
    [{"strategy": s, **train.read_metrics(train.model_dir(cfg, s))} for s in strategies],
    columns=["strategy", *columns],
).set_index("strategy")
metrics.dropna(axis=1, how="all")

# %% [markdown]
# ## Training curves
#
# Left: the training loss of each phase (pretraining is the masked-spectrogram MSE, on its own
# axis scale). Right: held-out (fold 5) accuracy at the logged epochs.

# %%
histories = {s: train.read_history(train.model_dir(cfg, s)) for s in strategies}
if any(histories.values()):
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.6))
    for strategy, phases in histories.items():
        for phase, rows in phases.items():
            if phase == "pretrain":
                continue
            frame = pd.DataFrame(rows)
            label = f"{strategy} ({phase})"
            ax_loss.plot(frame["epoch"], frame["loss"], label=label)
            if "heldout_accuracy" in frame:
                acc = frame.dropna(subset=["heldout_accuracy"])
                ax_acc.plot(acc["epoch"], acc["heldout_accuracy"], marker="o", ms=3, label=label)
    ax_loss.set(xlabel="epoch", ylabel="training loss (soft-target cross-entropy)")
    ax_acc.set(xlabel="epoch", ylabel="held-out accuracy (fold 5)", ylim=(0, 1))
    ax_acc.axhline(1 / 50, color="grey", lw=0.8, ls=":", label="chance")
    ax_loss.legend(fontsize=8)
    ax_acc.legend(fontsize=8)
    fig.suptitle("Training the target model")
    fig.tight_layout()
    plots.save_figure(fig, "training_curve", cfg)
    plt.show()

# %%
pretrain = {s: h["pretrain"] for s, h in histories.items() if "pretrain" in h}
if pretrain:
    fig, ax = plt.subplots(figsize=(5, 3.2))
    rows = pd.DataFrame(next(iter(pretrain.values())))  # one encoder shared by the ssl models
    ax.plot(rows["epoch"], rows["loss"])
    ax.set(xlabel="epoch", ylabel="masked-patch MSE", title="Masked spectrogram pretraining")
    plots.save_figure(fig, "pretraining_curve", cfg)
    plt.show()
