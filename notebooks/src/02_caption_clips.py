# %% [markdown]
# # 02 · Caption the probing clips
#
# Every clip of the probing set gets a description of what is heard, by the captioner the
# config names (`captioner.name`): the offline default `acoustic` measures loudness, pitch,
# tonal vs noisy, brightness, onsets and envelope and says them in words, judged against the
# whole probing set and against absolute anchors; `metadata+acoustic` prefixes the label
# ("The sound of a dog barking."); `transformers:<id>` and `openai:<model>` ask an audio
# language model. Captions are cached per clip, so re-running costs nothing.
#
# Writes `captions.csv` (clip_id, caption) and `features.csv` (the acoustic measurements,
# for every captioner) into the run directory.

# %% tags=["parameters"]
config_path = "configs/default.yaml"
overrides = []

# %%
from IPython.display import Audio, Markdown, display

from andlib import pipeline, store
import andlib.describe.wording
from andlib.config import load_config
from andlib.data.probing import load_probing_set
from andlib.report import plots
from andlib.report.plots import save_figure, show_figures
from andlib.store import RunDir

cfg = load_config(config_path, overrides)
run = RunDir.from_config(cfg)
print(f"captioner: {cfg.captioner.name}   run directory: {run.path}")

# %%
summary = pipeline.run_stage("caption", cfg)
print(summary)

# %%
captions = store.read_captions(run)
features = store.read_features(run)
print(f"{len(captions)} captions, {features.shape[1] - 1} acoustic features per clip")
print("what the captioner may know of each clip's source:", run.read_json("caption_accuracy.json"))
captions.head(10)

# %% [markdown]
# ## A sample of clips: listen, look, read
#
# Each row: the caption, an audio player and the clip's spectrogram.

# %%
probing_set = load_probing_set(cfg)
sample = captions.sample(n=min(8, len(captions)), random_state=cfg.seed)
for clip_id, caption in zip(sample["clip_id"], sample["caption"], strict=True):
    audio = probing_set.audio[probing_set.index_of(clip_id)]
    category = probing_set.meta.loc[probing_set.index_of(clip_id), "category"]
    display(Markdown(f"**{clip_id}** ({category or 'no label'}): {caption}"))
    display(Audio(audio, rate=probing_set.sample_rate))
    show_figures([plots.clip_spectrogram(audio, probing_set.sample_rate, clip_id)])

# %% [markdown]
# ## The vocabulary
#
# How often each descriptive word occurs across all captions: a captioner that says the same
# few words about every clip cannot tell neurons apart.

# %%
vocabulary = andlib.describe.wording.caption_vocabulary(captions["caption"], top=40)
fig = plots.caption_vocabulary(vocabulary, cfg.captioner.name)
save_figure(fig, "caption_vocabulary", cfg)
show_figures([fig])
print(
    f"{len(andlib.describe.wording.caption_vocabulary(captions['caption']))} distinct words; "
    f"{captions['caption'].nunique()} distinct captions out of {len(captions)}"
)

# %% [markdown]
# ## The acoustic measurements
#
# `features.csv` holds one row per clip; later analyses regress neuron activations on these.

# %%
features.describe().T.round(2)
