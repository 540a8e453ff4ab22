# %% [markdown]
# # 07 · Neuron browser
#
# Explore the described neurons of a run: pick a layer and a neuron, or search neurons by a
# concept or a word of their description. For each neuron: the summaries of its highly and
# lowly activating clips, the calibrated summary, its closed-set concepts (description-based
# `db_*`, text-audio `tab`, in-context `icl` or embedding-ranked `icl_embedding`), open-set concepts and acoustic adjectives, the
# histogram of its activation over all probing clips, and its top-K and bottom-K clips, each
# with an audio player, a spectrogram and its caption.
#
# The interactive app needs a live kernel. For runs without one (papermill, an exported
# notebook) a static overview of a few neurons is rendered first; it is always there.

# %% tags=["parameters"]
config_path = "configs/default.yaml"
overrides = []

# %%
from IPython.display import display

from andlib import pipeline
from andlib.report import browser
from andlib.config import load_config
from andlib.store import RunDir

cfg = load_config(config_path, overrides)
run = RunDir.from_config(cfg)
view = browser.RunView(run)  # reads each run file once, shared by the cells below

# %% [markdown]
# ## Static overview
#
# A few neurons from shallow to deep layers (in each, the neuron that fires hardest).

# %%
display(browser.static_overview(view, n=3))

# %% [markdown]
# ## Search
#
# Whole-word, case-insensitive; `_` and `-` count as spaces, so `water drops` finds the
# concept `water_drops`. Matches in closed-set concepts weigh most, then open-set concepts and
# adjectives, then the descriptions.

# %%
for query in ["dog", "water drops", "high-pitched"]:
    hits = browser.search_neurons(view, query, limit=None)
    print(f"{query!r}: {len(hits)} neurons")
    display(hits.head(10))

# %% [markdown]
# ## Interactive browser

# %%
app = browser.NeuronBrowser(view)
display(app)

# %% [markdown]
# ## Atlas: the run as a static website
#
# The `atlas` stage (`python -m andlib atlas --config ...`) writes
# `<run_dir>/atlas/`: open `index.html` in any browser, from disk or from any static host; no
# server, no kernel, nothing fetched from the internet. The index page has the model, the probing
# set, each captioner's accuracy, a per-layer overview with small charts and a searchable,
# sortable table of every neuron; each neuron's page has its summaries, concepts, simulation
# scores, activation histogram and its top-K and bottom-K clips with audio players and
# spectrograms. Each clip's audio (OGG Vorbis) and spectrogram (PNG) is stored once, and reused
# when the atlas is rebuilt.

# %%
atlas = pipeline.run_stage("atlas", cfg)
for key in ("index", "n_neurons", "n_layers", "n_clips", "n_media_errors", "size_mb", "seconds"):
    print(f"{key}: {atlas[key]}")
