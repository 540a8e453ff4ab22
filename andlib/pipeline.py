"""The pipeline: the stages in order, each ``run_stage(cfg, run) -> dict`` in its own module.

Data flows one way: data -> models/train -> record -> caption -> summarize -> concepts ->
(control runs) -> evaluate / prune -> analysis. Each stage reads its inputs from the run
directory, writes its outputs there, and is skipped when the hash of what it depends on is
unchanged (its :class:`andlib.store.Stage`, ``SPEC`` in its module). This module alone knows
that order, and it owns the evaluate stage's control runs (:func:`run_controls`): ordinary runs
of the caption, summarize and concepts stages on the classifier layer, in sibling run
directories ``<run>/last_layer/<name>/``, made before the evaluate stage reads them.

``reproduce`` executes the numbered notebooks with papermill instead: the notebooks call the
same stage functions and add the tables and figures.
"""

from __future__ import annotations

import importlib
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from andlib.config import PROJECT_ROOT, Config, find_config_file, load_config, stable_hash
from andlib.store import RunDir, control_run_path
from andlib.strategy_runs import strategy_overrides as strategy_overrides

StageFunction = Callable[[Config, RunDir], dict[str, Any]]

MODULES: dict[str, str] = {
    "train": "andlib.models.train_stage",
    "record": "andlib.models.activations",
    "caption": "andlib.describe.captioning",
    "summarize": "andlib.describe.summarize",
    "concepts": "andlib.describe.concepts",
    "evaluate": "andlib.evaluate.scores",
    "prune": "andlib.evaluate.prune",
    "analysis": "andlib.report.analysis",
    "sae_compare": "andlib.report.sae_compare",
    "pitch": "andlib.evaluate.pitch",
    "pitch_comparison": "andlib.report.pitch",
    "atlas": "andlib.report.atlas",
    "figures": "andlib.report.figures",
    "results": "andlib.report.results",
}
"""Stage (the name of its record in ``.stages/``) -> the module whose ``run_stage`` runs it."""

STAGES: dict[str, tuple[str, ...]] = {
    "train": ("train",),
    "record": ("record",),
    "caption": ("caption",),
    "summarize": ("summarize", "concepts"),
    "evaluate": ("controls", "evaluate", "figures"),
    "prune": ("prune", "figures"),
    "analyze": ("analysis", "sae_compare"),
    "pitch": ("pitch", "pitch_comparison"),
    "atlas": ("atlas",),
    "results": ("results",),
}
"""CLI stage -> the stages it runs, in order (``controls``: :func:`run_controls`)."""

DESCRIBE = ("caption", "summarize", "concepts")
"""The stages a captioner's control run runs after its ``record``."""

NOTEBOOK_DIR = PROJECT_ROOT / "notebooks"


def stage_function(stage: str) -> StageFunction:
    """``run_stage`` of a stage of :data:`MODULES` (``controls``: :func:`run_controls`)."""
    if stage == "controls":
        return run_controls
    if stage not in MODULES:
        raise ValueError(f"unknown stage {stage!r}; stages: {', '.join(['controls', *MODULES])}")
    return importlib.import_module(MODULES[stage]).run_stage


def stage_functions(stage: str) -> list[StageFunction]:
    """The functions a CLI stage (:data:`STAGES`) calls, in order."""
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; stages: {', '.join(STAGES)}")
    return [stage_function(s) for s in STAGES[stage]]


def check_models(cfg: Config) -> None:
    """Before any work: a :class:`ConfigError` when a captioner the config may run (its own or
    one of ``evaluate.captioners``) uses the model of a target it dissects (``model.name`` or
    a strategy's model), unless ``captioner.allow_same_model``."""
    from andlib.describe.encoder_features import check_same_model

    targets = [cfg.model.name, *(cfg.strategy_model(s) for s in cfg.strategies)]
    captioners = [cfg.captioner.name, *cfg.evaluate.captioners]
    check_same_model(cfg, targets=list(dict.fromkeys(targets)), captioners=captioners)


def run_stage(stage: str, cfg: Config) -> dict[str, Any]:
    """Run one CLI stage (and nothing else) on the config's run directory."""
    check_models(cfg)
    run = RunDir.from_config(cfg)
    summary: dict[str, Any] = {}
    for fn in stage_functions(stage):
        summary.update(fn(cfg, run) or {})
    return summary


# --------------------------------------------------------------------------------------------
# The evaluate stage's control runs
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Control:
    """One control run: ``<run>/last_layer/<name>/`` with ``captioner.name = captioner``; after
    its ``record`` (the run's classifier layer) it runs ``stages``. A sweep's control run
    (``rate`` set) gets its captions from :func:`andlib.controls.sweep_caption_stage`."""

    name: str
    captioner: str
    stages: tuple[str, ...]
    rate: float | None = None


def control_plan(cfg: Config, run: RunDir) -> list[Control]:
    """The control runs the evaluate stage reads, in the order they are made.

    Every captioner of :func:`andlib.evaluate.controls_read.control_captioners` (the classifier layer
    described again from another captioner's captions); with a caption-quality sweep
    (:func:`andlib.evaluate.controls_read.sweep_rates`) the ``acoustic`` captions it starts from, then
    one control run per rate. None when the classifier layer was not recorded.
    """
    from andlib.controls import SWEEP_BASE
    from andlib.evaluate.controls_read import control_captioners, sweep_control, sweep_rates
    from andlib.store import activation_index

    layer = cfg.evaluate.classifier_layer
    if not run.exists("activations/index.json") or layer not in activation_index(run)["layers"]:
        return []
    plan = [Control(c, c, DESCRIBE) for c in control_captioners(cfg)]
    rates = sweep_rates(cfg)
    if rates and SWEEP_BASE not in {c.name for c in plan}:
        plan.append(Control(SWEEP_BASE, SWEEP_BASE, ("caption",)))
    for rate in rates:
        name = sweep_control(rate)
        plan.append(Control(name, f"metadata+acoustic@{rate:g}", DESCRIBE[1:], rate))
    return plan


def run_controls(cfg: Config, run: RunDir) -> dict[str, Any]:
    """Make the evaluate stage's control runs (:func:`control_plan`), each stage skipped when
    fresh, and record them as the run's ``controls`` stage (its key: their last stages' keys,
    an upstream key of the evaluate stage)."""
    from andlib import controls

    keys: dict[str, str | None] = {}
    outputs = []
    for c in control_plan(cfg, run):
        sub_cfg = controls.control_config(cfg, run, c.name, c.captioner)
        sub = RunDir.from_config(sub_cfg)
        controls.record_stage(sub_cfg, sub)
        if c.rate is not None:
            controls.sweep_caption_stage(sub_cfg, sub, c.rate)
        for stage in c.stages:
            stage_function(stage)(sub_cfg, sub)
        keys[c.name] = sub.stage_key(c.stages[-1])
        last = "neurons.csv" if c.stages[-1] == "concepts" else "captions.csv"
        outputs.append(str(control_run_path(run, c.name).relative_to(run.path) / last))
    run.mark_done("controls", stable_hash(keys), outputs=outputs)
    return {"control_runs": ", ".join(keys) or "none"}


def notebooks() -> list[Path]:
    return sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))


class NotebookFailed(RuntimeError):
    pass


def reproduction_plan(cfg: Config, overrides: list[str]) -> list[tuple[Path, list[str], Path]]:
    """``(notebook, overrides, output folder)`` in execution order.

    A plain config runs every numbered notebook once. A config with ``strategies`` runs every
    notebook once per strategy (its own run directory ``<run_dir>/<strategy>`` and figures
    folder ``<figures_dir>/<strategy>``, target ``strategy_models[strategy]`` or else
    ``trained:<strategy>``; ``train.strategy`` is set for a training strategy), then the
    analyses notebook once more on the parent config, whose comparison section reads the
    per-strategy runs, and for a comparison of pitch networks (``configs/pitch.yaml``) the
    pitch notebook too. Notebooks whose prefix ``skip_notebooks`` lists are left out.

    With ``seeds`` as well, every trained strategy runs once per seed (seed by seed: all
    strategies of the first seed, then the next), with ``train.seed=<k>`` into
    ``<run_dir>/<strategy>/seed<k>`` (figures ``<figures_dir>/<strategy>/seed<k>``); a strategy
    mapped to a checkpoint (nothing to train) runs once, in the first round.
    """
    from andlib.models.families.registry import family_of

    books = [nb for nb in notebooks() if nb.name[:2] not in set(cfg.skip_notebooks)]
    if not books:
        raise NotebookFailed(f"no numbered notebooks in {NOTEBOOK_DIR}")
    if not cfg.strategies:
        return [(nb, overrides, cfg.run_path / "notebooks") for nb in books]
    plan = []
    seeds: list[int | None] = list(cfg.seeds) if cfg.seeds else [None]
    for i, seed in enumerate(seeds):
        for strategy in cfg.strategies:
            trained = family_of(cfg.strategy_model(strategy)).trains
            if seed is not None and not trained and i > 0:
                continue  # a checkpoint is the same model whatever the seed: one run
            sub, folder = strategy_overrides(cfg, strategy, seed)
            plan += [(nb, [*overrides, *sub], folder / "notebooks") for nb in books]
    compare = ("06_", "08_") if _is_pitch_comparison(cfg) else ("06_",)
    plan += [
        (nb, overrides, cfg.run_path / "notebooks") for nb in books if nb.name.startswith(compare)
    ]
    return plan


def _is_pitch_comparison(cfg: Config) -> bool:
    from andlib.evaluate.pitch import is_pitch_config

    return is_pitch_config(cfg)


def reproduce(config_path: str, overrides: list[str] | None = None, out: str | None = None) -> Path:
    """Execute the numbered notebooks in order with papermill into ``<run_dir>/notebooks/``.

    Prints a progress line per notebook and streams each kernel's log lines and progress bars
    to the terminal as they come (:mod:`andlib.report.progress`; ``ANDLIB_PROGRESS=0``: off), then
    a closing summary (outputs, figures, atlas, headline numbers); on error, stops with the
    failing notebook's path and cell. Every notebook reuses the stages whose inputs have not
    changed, so a second run with a cached model only recomputes what changed.
    """
    import papermill as pm

    from andlib.report import progress

    overrides = list(overrides or [])
    if out:
        overrides.append(f"run_dir={out}")
    config_file = str(find_config_file(config_path))
    cfg = load_config(config_file, overrides)
    check_models(cfg)
    RunDir.from_config(cfg)
    plan = reproduction_plan(cfg, overrides)
    t_all = time.time()
    for i, (nb, nb_overrides, folder) in enumerate(plan, 1):
        folder.mkdir(parents=True, exist_ok=True)
        dest = folder / nb.name
        print(f"[{i}/{len(plan)}] {nb.name} -> {dest.parent} ...", flush=True)
        t0 = time.time()
        # the kernel's log lines and tqdm bars, as they come
        streams: dict[str, Any] = progress.streams(nb.name) if progress.enabled() else {}
        try:
            pm.execute_notebook(
                str(nb),
                str(dest),
                parameters={"config_path": config_file, "overrides": nb_overrides},
                cwd=str(NOTEBOOK_DIR),
                kernel_name="python3",
                progress_bar=False,
                **streams,
            )
        except pm.PapermillExecutionError as exc:
            raise NotebookFailed(
                f"{nb.name} failed in cell {exc.exec_count} ({exc.ename}: {exc.evalue}); "
                f"executed notebook with the traceback: {dest}"
            ) from exc
        print(f"[{i}/{len(plan)}] {nb.name} done in {time.time() - t0:.0f} s", flush=True)
    print(progress.closing_summary(plan, cfg.figures_path, time.time() - t_all), flush=True)
    return cfg.run_path


def main_reproduce(config_path: str, overrides: list[str], out: str | None) -> int:
    try:
        reproduce(config_path, overrides, out)
    except NotebookFailed as exc:
        print(f"reproduce failed: {exc}", file=sys.stderr)
        return 1
    return 0


# --------------------------------------------------------------------------------------------
# A strategies comparison, one training seed at a time
# --------------------------------------------------------------------------------------------

SEED_STAGES = ("record", "caption", "summarize", "evaluate", "prune", "analyze")
"""The CLI stages :func:`strategies_seed` runs on each strategy's run, after training them all."""
RECIPE_STAGES = (
    "train",
    "record",
    "caption",
    "summarize",
    "concepts",
    "evaluate",
    "prune",
    "analysis",
)
"""The stages whose recipes (:func:`recipe_keys`) a seed's provenance records."""


def recipe_keys(
    cfg: Config, run: RunDir, stages: tuple[str, ...] = RECIPE_STAGES
) -> dict[str, str]:
    """``{stage: key}``: each stage's key (its ``SPEC``) with the training seed taken out
    (``train.seed`` unset) and without its upstream keys and input fingerprints, which change
    with the trained model. Two seeds made by the same code, settings and resources have
    equal recipes; any other change of a stage's code version, settings or resources shows."""
    import dataclasses

    plain = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, seed=None))
    out = {}
    for stage in stages:
        spec = importlib.import_module(MODULES[stage]).SPEC
        out[stage] = dataclasses.replace(spec, upstream=(), inputs=()).key(plain, run)[:16]
    return out


def _shown(config_path: str) -> str:
    """The config path as a command names it (relative to the project when inside it)."""
    path = Path(config_path).resolve()
    try:
        return str(path.relative_to(PROJECT_ROOT))
    except ValueError:
        return str(path)


def strategies_seed(
    config_path: str,
    seed: int,
    overrides: list[str] | None = None,
    tables: str | Path | None = None,
    train_only: bool = False,
) -> dict[str, Any]:
    """Train and dissect every strategy of a strategies config for one training seed, and keep
    the small tables the comparison needs (:mod:`andlib.report.seed_tables`) in
    ``<tables>/seed<k>/`` (``tables`` default ``results/<config name>``).

    First the ``train`` stage of every strategy (the ssl strategies share one pretrained
    encoder; a half-trained model resumes from its checkpoint), then each strategy's
    :data:`SEED_STAGES` through :func:`run_stage`, each skipped while its key is unchanged,
    into ``<run_dir>/<strategy>/seed<k>/``. Then the seed's tables with their provenance
    (each strategy's stage keys and recipes, :func:`recipe_keys`; date; commit), and the
    comparison over every seed kept beside them (a refusal when some seeds are stale).
    ``train_only``: stop after training.
    """
    from andlib.config import ConfigError
    from andlib.layout import results_root, seed_folder
    from andlib.models.train_data import forget_features
    from andlib.report.seed_tables import (
        StaleSeedsError,
        committed_comparison,
        git_commit,
        rerun_command,
        seed_tables,
        write_seed_tables,
    )

    overrides = list(overrides or [])
    config_file = str(find_config_file(config_path))
    cfg = load_config(config_file, overrides)
    if not cfg.strategies:
        raise ConfigError(f"strategies-seed: {config_path} sets no strategies")
    check_models(cfg)
    subs = {
        s: load_config(config_file, [*overrides, *strategy_overrides(cfg, s, seed)[0]])
        for s in cfg.strategies
    }
    summary: dict[str, Any] = {}
    for s, sub in subs.items():  # the log-mel features are computed once for all of them
        summary.update({f"{s}.{k}": v for k, v in run_stage("train", sub).items()})
    forget_features()
    if train_only:
        return summary
    for sub in subs.values():
        for stage in SEED_STAGES:
            run_stage(stage, sub)
    runs = {s: RunDir.from_config(sub) for s, sub in subs.items()}
    shown = _shown(config_file)
    provenance = {
        "seed": seed,
        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "commit": git_commit(),
        "config": shown,
        "overrides": overrides,
        "command": rerun_command(shown, [seed], overrides),
        "keys": {s: {st: run.stage_key(st) for st in RECIPE_STAGES} for s, run in runs.items()},
        "recipe": {s: recipe_keys(subs[s], run) for s, run in runs.items()},
    }
    root = Path(tables) if tables else results_root(cfg)
    folder = seed_folder(root, seed)
    written = write_seed_tables(
        folder, seed_tables(runs, cfg.concepts.db_default, cfg.analysis.confidence), provenance
    )
    summary["tables"] = ", ".join(str(p) for p in written)
    try:
        result = committed_comparison(root, shown)
        summary["seeds"] = ", ".join(map(str, result["seeds"]))
        summary["verdict"] = result["verdict"]
    except StaleSeedsError as exc:
        summary["comparison"] = f"refused: {exc}"
    return summary
