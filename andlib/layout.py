"""How runs and their layers are laid out, for every layer that reads runs.

- **Layer order**: :func:`layer_sort_key` orders layer keys by depth (``layers.<i>.<kind>``
  by block then kind, ``classifier`` last); :func:`sort_layers` and :func:`layer_depths`.
- **Analysis tables**: :func:`read_table`, :func:`read_text` and :func:`read_trend` read what
  the analysis stage wrote under ``<run>/analysis/`` (:data:`ANALYSIS_DIR`).
- **Comparison runs**: :func:`seed_runs` and :func:`strategy_runs` find the run directories of
  a config's ``strategies`` (and ``seeds``) that exist.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from andlib.config import PROJECT_ROOT, Config
from andlib.store import RunDir, strategy_run_path

SAE_PREFIX = "sae."
"""The start of a virtual layer's key: the latents of a sparse autoencoder on a recorded layer
(``sae.layers.2.out.k32``, :mod:`andlib.models.sae`), recorded like a layer, with no module."""


def is_sae_layer(layer: str) -> bool:
    """True for a virtual layer of SAE latents (it has no module to hook or prune)."""
    return str(layer).startswith(SAE_PREFIX)


def sae_base_layer(layer: str) -> str:
    """The recorded layer an SAE's virtual layer encodes (``sae.layers.2.out.k32`` ->
    ``layers.2.out``); any other layer is its own."""
    if not is_sae_layer(layer):
        return str(layer)
    return str(layer)[len(SAE_PREFIX) :].rsplit(".k", 1)[0]


ANALYSIS_DIR = "analysis"
"""The analysis stage's folder in a run directory."""
KIND_ORDER = {"attn": 0, "attention": 0, "mlp": 1, "intermediate": 1, "out": 2, "output": 2}
"""The order of the layer kinds within a block."""
_INT = re.compile(r"(?:^|[._/])(\d+)(?=$|[._/])")


# --------------------------------------------------------------------------------------------
# Layer order
# --------------------------------------------------------------------------------------------


def layer_sort_key(layer: str) -> tuple[int, int, int, str]:
    """Depth ordering of layer keys: ``layers.<i>.<kind>`` by block then kind, classifier last.

    Within a block the order is ``attn < mlp < out``; other keys with a block number (module
    paths such as ``encoder.layer.3.intermediate``) sort by that number; keys without one come
    after the numbered layers, and ``classifier`` (or any key ending in ``classifier``) last.
    """
    name = str(layer)
    if name.split(".")[-1] == "classifier" or name == "classifier":
        return (2, 0, 0, name)
    m = _INT.search(name)
    if m is None:
        return (1, 0, 0, name)
    rest = name[m.end() :].strip("._/").split(".")[0]
    return (0, int(m.group(1)), KIND_ORDER.get(rest, 3), name)


def sort_layers(layers: Iterable[str]) -> list[str]:
    """Distinct layer keys in depth order (see :func:`layer_sort_key`)."""
    return sorted({str(x) for x in layers}, key=layer_sort_key)


def layer_depths(layers: Iterable[str]) -> dict[str, int]:
    """``{layer: position in depth order}`` (0 = shallowest). An SAE's virtual layer
    (``sae.<layer>.k<k>``) takes the depth of the layer it encodes and moves no other layer."""
    names = {str(x) for x in layers}
    real = sort_layers({sae_base_layer(x) for x in names})
    depth = {layer: i for i, layer in enumerate(real)}
    return {layer: depth[sae_base_layer(layer)] for layer in sort_layers(names)}


# --------------------------------------------------------------------------------------------
# Analysis tables
# --------------------------------------------------------------------------------------------


def analysis_file(run: RunDir, name: str) -> Path:
    """``<run>/analysis/<name>``."""
    return run.path / ANALYSIS_DIR / name


def read_table(run: RunDir, name: str) -> pd.DataFrame | None:
    """``<run>/analysis/<name>`` as a DataFrame, or ``None`` when that analysis was not run."""
    p = analysis_file(run, name)
    return pd.read_csv(p, keep_default_na=True) if p.exists() else None


def read_text(run: RunDir, name: str) -> str | None:
    """``<run>/analysis/<name>`` as text (a verdict the analysis wrote), or ``None`` when that
    analysis was not run."""
    p = analysis_file(run, name)
    return p.read_text(encoding="utf-8") if p.is_file() else None


def read_trend(run: RunDir) -> dict[str, Any] | None:
    """The adjectives-per-layer regression (``analysis/adjective_trend.json``), if computed."""
    p = analysis_file(run, "adjective_trend.json")
    return json.loads(p.read_text()) if p.exists() else None


# --------------------------------------------------------------------------------------------
# The runs of a comparison config
# --------------------------------------------------------------------------------------------


def strategy_trains(cfg: Config, strategy: str) -> bool:
    """Whether a strategy's model is trained here (one run per training seed): every strategy
    that ``strategy_models`` does not map to a model of its own."""
    return strategy not in cfg.strategy_models


def seed_runs(cfg: Config) -> dict[str, dict[int | None, RunDir]]:
    """``{strategy: {seed: RunDir}}``: the run directories of ``cfg.strategies`` that exist.

    With ``cfg.seeds``, a trained strategy has one run per training seed
    (``<run_dir>/<strategy>/seed<k>``) and a strategy mapped to a checkpoint one run under the
    seed ``None`` (``<run_dir>/<strategy>``); without, every strategy has that one run.
    Missing runs (and strategies with none) are left out.
    """
    out: dict[str, dict[int | None, RunDir]] = {}
    for s in cfg.strategies:
        seeds: list[int | None] = [None]
        if cfg.seeds and strategy_trains(cfg, s):
            seeds = list(cfg.seeds)
        paths = {k: strategy_run_path(cfg, s, k) for k in seeds}
        found = {k: RunDir(p) for k, p in paths.items() if p.is_dir()}
        if found:
            out[s] = found
    return out


def strategy_runs(cfg: Config) -> dict[str, RunDir]:
    """``{strategy: RunDir}`` for each of ``cfg.strategies`` whose run directory
    (``cfg.run_path / strategy``) exists; missing ones are left out. With ``cfg.seeds``: each
    strategy's first seed found (:func:`seed_runs` has them all)."""
    return {s: next(iter(by_seed.values())) for s, by_seed in seed_runs(cfg).items()}


# --------------------------------------------------------------------------------------------
# Committed per-seed tables of a strategies comparison
# --------------------------------------------------------------------------------------------

SEED_TABLES = ("measures.csv", "per_layer.csv", "training.csv")
"""The tables one seed of a strategies comparison keeps (``results/<config>/seed<k>/``):
``measures.csv`` (``strategy, measure, value, ci_low, ci_high, n, interval``),
``per_layer.csv`` (``strategy, metric, layer, depth, value``), ``training.csv`` (one row per
strategy: accuracy, time, threads, device); ``provenance.json`` says where they came from."""
PROVENANCE = "provenance.json"
"""A seed folder's record: ``seed``, ``date``, ``commit``, ``config``, ``command`` and per
table its ``stages``, and per strategy the stage ``keys`` of its run and the ``recipe``
(the same stages keyed with the training seed taken out: equal for every seed made by the same
code and settings)."""
_SEED_DIR = re.compile(r"^seed(\d+)$")


def results_root(cfg: Config) -> Path:
    """``<project>/results/<config name>``: where the per-seed tables of a comparison live."""
    return PROJECT_ROOT / "results" / cfg.name


def seed_folder(root: Path, seed: int) -> Path:
    """``<root>/seed<k>``."""
    return Path(root) / f"seed{seed}"


def read_seed_tables(root: Path) -> dict[int, dict[str, Any]]:
    """Every seed folder under ``root`` that holds a :data:`PROVENANCE` record, by seed (in
    order): ``{"provenance": dict, "measures.csv": DataFrame, ...}`` (a table the folder lacks
    is an empty DataFrame). The one reader of the per-seed tables."""
    out: dict[int, dict[str, Any]] = {}
    root = Path(root)
    if not root.is_dir():
        return out
    folders = [(int(m.group(1)), p) for p in root.iterdir() if (m := _SEED_DIR.match(p.name))]
    for seed, folder in sorted(folders):
        if not (folder / PROVENANCE).is_file():
            continue
        tables: dict[str, Any] = {"provenance": json.loads((folder / PROVENANCE).read_text())}
        for name in SEED_TABLES:
            p = folder / name
            tables[name] = pd.read_csv(p) if p.is_file() else pd.DataFrame()
        out[seed] = tables
    return out
