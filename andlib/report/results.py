"""Results pages generated from a run's own files: ``docs/results/<name>.md``.

:func:`results_page` reads what the stages wrote (``model.json``, ``caption_accuracy.json``,
``last_layer.json``, ``hidden_layer_accuracy.csv``, ``concept_spread.csv``,
``score_baselines.csv``, ``score_sanity.csv``, ``pruning_summary.csv``, ``.stages/*.json``)
and writes the tables as Markdown, with the code's version (commit, stage keys) and the date;
nothing in it is typed by hand. :func:`readme_block` is the short summary the README holds
between ``<!-- results:<name> -->`` and ``<!-- /results -->``; :func:`run_stage` (the CLI's
``results`` command) writes both. A table whose file the run lacks is left out and named.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

import pandas as pd

from andlib.config import PROJECT_ROOT, Config, load_config
from andlib.layout import read_table as read_analysis_table
from andlib.layout import read_text as read_analysis_text
from andlib.layout import strategy_runs, strategy_trains
from andlib.report.sae_compare import VERDICT
from andlib.report.seed_tables import git_commit
from andlib.store import RunDir, atomic_write_text, read_model_info, read_table

STAGE = "results"
RESULTS_DIR = PROJECT_ROOT / "docs" / "results"
README = PROJECT_ROOT / "README.md"
LAYER_ALL = "all hidden"


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and v != v):
        return "—"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def markdown_table(df: pd.DataFrame, digits: int = 3) -> str:
    """``df`` as a GitHub Markdown table (floats to ``digits`` places, NaN as —)."""
    head = "| " + " | ".join(str(c) for c in df.columns) + " |"
    rule = "|" + "|".join("---" for _ in df.columns) + "|"
    rows = [
        "| " + " | ".join(_fmt(v, digits) for v in row) + " |" for row in df.itertuples(index=False)
    ]
    return "\n".join([head, rule, *rows])


def _csv(run: RunDir, name: str) -> pd.DataFrame | None:
    return read_table(run, name, required=False)


def tables(run: RunDir, cfg: Config) -> dict[str, pd.DataFrame]:
    """Every results table the run's files allow, by title (in page order)."""
    out: dict[str, pd.DataFrame] = {}
    model = read_model_info(run)
    if run.exists("config.yaml"):  # a comparison's run: its own model, not the parent's
        cfg = load_config(run / "config.yaml")
    facts = {
        "model": cfg.model.name,
        "held-out accuracy": model.get("heldout_accuracy"),
        "train accuracy": model.get("train_accuracy"),
        "neurons": model.get("n_neurons") or None,
    }
    if run.exists("caption_accuracy.json"):
        cap = run.read_json("caption_accuracy.json")
        facts["captioner"] = cap.get("captioner", cfg.captioner.name)
        facts["caption top-1"] = cap.get("top1")
        facts["caption top-3"] = cap.get("top3")
    out["Model and captions"] = pd.DataFrame(
        [{"what": k, "value": v} for k, v in facts.items() if v is not None]
    )
    if run.exists("last_layer.json"):
        rows = [
            {
                "captioner": cap,
                "method": m,
                "top-1": s.get("top1"),
                "top-5": s.get("top5"),
                "cos": s.get("cos"),
            }
            for cap, methods in run.read_json("last_layer.json").items()
            for m, s in methods.items()
        ]
        if rows:
            out["Last layer (Table 2): classifier neurons against their class"] = pd.DataFrame(rows)
    hidden = _csv(run, "hidden_layer_accuracy.csv")
    if hidden is not None and len(hidden):
        pooled = hidden[hidden["layer"] == LAYER_ALL]
        out["Hidden layers: concept against the class a neuron's top clips share"] = pooled[
            ["method", "n_neurons", "top1", "top5", "chance_top1", "chance_top5"]
        ]
        default = f"db_{cfg.concepts.db_default}"
        per = hidden[(hidden["layer"] != LAYER_ALL) & (hidden["method"] == default)]
        per = per[
            ["layer", "n_layer", "n_neurons", "top1", "top5", "chance_top1"]
            + [c for c in ("label_top_class", "label_top_share") if c in per.columns]
        ]
        spread = _csv(run, "concept_spread.csv")
        if spread is not None and len(spread) and "label_top_class" in per.columns:
            named = spread[spread["method"] == default][["layer", "top_concept", "top_share"]]
            per = per.merge(named, on="layer", how="left")
        out[
            f"Hidden layers, per layer ({default}; label_top: the class most of the layer's "
            "neurons share by labels, top_concept: the concept the method names most)"
        ] = per
    spread = _csv(run, "concept_spread.csv")
    if spread is not None and len(spread):
        worst = spread.loc[spread.groupby("method", sort=False)["top_share"].idxmax()]
        out["Concept spread: the largest share one concept names, per method"] = worst[
            ["method", "layer", "top_concept", "top_share", "entropy_bits", "max_entropy_bits"]
        ]
    base = _csv(run, "score_baselines.csv")
    if base is not None and len(base):
        overall = base[base["layer"] == "all"] if (base["layer"] == "all").any() else base
        out["Explanation scores beside their baselines"] = overall[
            [
                "scorer",
                "metric",
                "variant",
                "own_mean",
                "baseline_mean",
                "difference",
                "ci_low",
                "ci_high",
            ]
        ]
    sanity = _csv(run, "score_sanity.csv")
    if sanity is not None and len(sanity):
        out["Sanity tests of the scores (a variant must score lower)"] = sanity[
            [
                "scorer",
                "metric",
                "variant",
                "n_neurons",
                "share_lower",
                "mean_drop",
                "ci_low",
                "ci_high",
                "passes",
            ]
        ]
    prune = _csv(run, "pruning_summary.csv")
    if prune is not None and len(prune):
        cols = [
            "strategy", "n_concepts", "n_acted", "n_pruned_mean", "share_pruned_mean",
            "delta_a", "delta_r", "delta_a_minus_r_mean", "ci_low", "ci_high",
            "vs_random_mean", "vs_random_ci_low", "vs_random_ci_high",
        ]  # fmt: skip
        out["Pruning (Table 4): ΔA − ΔR, logits, 95 % bootstrap intervals"] = prune[
            [c for c in cols if c in prune.columns]
        ]
    out.update(sae_tables(run))
    return out


SAE_COLUMNS: tuple[str, ...] = ("k", "d_sae", "train_positions", "passes", "train_seconds")
SAE_COLUMNS += ("variance_explained", "eval_l0", "n_dead", "dead_share")


def sae_tables(run: RunDir) -> dict[str, pd.DataFrame]:
    """The SAEs of the run (``sae.json``) and the neurons-against-latents table
    (``analysis/sae_comparison.csv``), when the run has them (docs/sae.md)."""
    out: dict[str, pd.DataFrame] = {}
    if run.exists("sae.json"):
        rows = [
            {"sae layer": name, **{c: report.get(c) for c in SAE_COLUMNS}}
            for name, report in run.read_json("sae.json").items()
        ]
        out["Sparse autoencoders: variance explained and L0 on the held-out fold, dead latents"] = (
            pd.DataFrame(rows)
        )
    comparison = read_analysis_table(run, "sae_comparison.csv")
    if comparison is not None and len(comparison):
        title = "Neurons against SAE latents on the same layer (latents minus neurons, 95 %)"
        verdict = read_analysis_text(run, VERDICT)
        if verdict is not None:  # the verdict's closing line per SAE layer, as the stage wrote it
            lines = verdict.splitlines()
            title += ". Verdict: " + " ".join(ln.strip() for ln in lines if "beat" in ln)
        out[title] = comparison.drop(columns=["interval"], errors="ignore")
    return out


def stage_keys(run: RunDir) -> dict[str, str]:
    """``{stage: key}`` of every finished stage of the run (``.stages/*.json``)."""
    folder = run / ".stages"
    if not folder.is_dir():
        return {}
    return {
        p.stem: str(json.loads(p.read_text()).get("key", ""))[:12]
        for p in sorted(folder.glob("*.json"))
    }


def results_page(run: RunDir, cfg: Config) -> str:
    """The Markdown page of a run (:func:`tables`, then its version and date)."""
    parts = [
        f"# Results: `{cfg.name}`",
        "",
        f"Generated by `python -m andlib results --config <config>` from `{run.path.name}/` on "
        f"{time.strftime('%Y-%m-%d')}, code at commit `{git_commit()}`. Every number comes from the "
        "run's own files; regenerate the page after a run changes.",
    ]
    for title, df in tables(run, cfg).items():
        parts += ["", f"## {title}", "", markdown_table(df)]
    keys = stage_keys(run)
    if keys:
        parts += [
            "",
            "## Stage keys",
            "",
            markdown_table(pd.DataFrame(list(keys.items()), columns=["stage", "key"])),
        ]
    return "\n".join(parts) + "\n"


PAPER_TABLE2 = pd.DataFrame(
    {
        "model (AND paper, AudioSet-pretrained)": ["AST", "BEATs fine-tuned", "BEATs frozen"],
        "last-layer DB top-1": [1.00, 0.76, 0.58],
    }
)
"""The last-layer accuracy the AND paper reports for its models (Table 2), for reference."""


def comparison_page(run: RunDir, cfg: Config) -> str:
    """The page of a parent run of ``strategies``: the models table the analysis stage wrote
    (``analysis/models_table.csv``, one column per model), the seeds kept (:func:`seeds_section`;
    left out when every strategy is a checkpoint and none is kept), the paper's Table 2 for
    reference, then every strategy's run (:func:`tables`: with its SAE tables, if any)."""
    parts = [
        f"# Results: `{cfg.name}`",
        "",
        f"Generated by `python -m andlib results --config <config>` from `{run.path.name}/` and "
        f"its runs on {time.strftime('%Y-%m-%d')}, code at commit `{git_commit()}`. Every number "
        "comes from the runs' own files; regenerate the page after a run changes.",
    ]
    table = read_analysis_table(run, "models_table.csv")
    if table is not None and len(table):
        wide = table.set_index("model").T.reset_index().rename(columns={"index": "measure"})
        parts += ["", "## Models compared", "", markdown_table(wide)]
    else:
        parts += [
            "",
            "(no single-run models table: `analysis/models_table.csv` comes from "
            f"`python -m andlib reproduce --config configs/{cfg.name}.yaml`)",
        ]
    committed = _committed(cfg)
    if (
        committed["seeds"]
        or "error" in committed
        or any(strategy_trains(cfg, s) for s in cfg.strategies)
    ):  # no seeds section for a comparison of checkpoints that keeps none
        parts += seeds_section(cfg, committed)
    parts += [
        "",
        "## The paper's last-layer accuracy (reference)",
        "",
        markdown_table(PAPER_TABLE2),
    ]
    for strategy, sub in strategy_runs(cfg).items():
        seed = re.fullmatch(r"seed(\d+)", sub.path.name)
        parts += ["", f"## {strategy}" + (f", training seed {seed[1]}" if seed else "")]
        for title, df in tables(sub, cfg).items():
            parts += ["", f"### {title}", "", markdown_table(df)]
    return "\n".join(parts) + "\n"


SEEDS_TITLE = "Finding (ii) across seeds"


def _committed(cfg: Config) -> dict[str, Any]:
    """The comparison over the seeds kept in ``results/<name>/`` (``error``: the refusal)."""
    from andlib.layout import results_root
    from andlib.report.seed_tables import StaleSeedsError, committed_comparison

    try:
        return committed_comparison(results_root(cfg), f"configs/{cfg.name}.yaml")
    except StaleSeedsError as exc:
        return {"error": str(exc), "seeds": []}


def seeds_section(cfg: Config, result: dict[str, Any] | None = None) -> list[str]:
    """The page's section on the seeds kept in ``results/<name>/seed<k>/``: which seeds, on
    which device each model trained, how much held-out accuracy moves between seeds, the
    orderings that hold in every seed (the verdict) and every measure's mean, SD and min–max
    over the seeds. Without kept seeds, the command that makes one."""
    result = _committed(cfg) if result is None else result
    command = f"python -m andlib strategies-seed --config configs/{cfg.name}.yaml --seed K"
    parts = ["", f"## {SEEDS_TITLE}", ""]
    if "error" in result:
        return [*parts, f"The comparison over seeds is refused: {result['error']}."]
    if not result["seeds"]:
        return [*parts, f"No seed is kept in `results/{cfg.name}/` yet: run `{command}`."]
    seeds = ", ".join(map(str, result["seeds"]))
    parts += [
        f"From the tables kept in `results/{cfg.name}/seed<k>/` (seeds {seeds}; one more: "
        f"`{command}`). Only orderings that hold in every seed are stated.",
        "",
        "```",
        result["verdict"],
        "```",
    ]
    training = result["training"]
    if len(training):
        cols = ["seed", "strategy", "heldout_accuracy", "train_seconds", "num_threads", "device"]
        parts += [
            "",
            "### Where each seed trained",
            "",
            markdown_table(training[[c for c in [*cols, "date"] if c in training.columns]]),
        ]
    summary = result["summary"]
    if len(summary):
        held = summary[summary["measure"] == "heldout_accuracy"]
        if len(held):
            parts += [
                "",
                "### Held-out accuracy between seeds",
                "",
                markdown_table(held[["model", "n_seeds", "mean", "sd", "min", "max", "spread"]]),
            ]
        cols = ["model", "measure", "n_seeds", "mean", "sd", "min", "max", "holds_in_every_seed"]
        parts += ["", "### Every measure over the seeds", "", markdown_table(summary[cols])]
    return parts


def seeds_figure(cfg: Config, per_seed: pd.DataFrame) -> str | None:
    """Draw ``strategies_seeds`` (one marker per kept seed) into the config's figures folder;
    the figure's name, or ``None`` without seeds."""
    if per_seed.empty:
        return None
    import matplotlib.pyplot as plt

    from andlib.report import plots

    fig = plots.plot_seed_measures(per_seed, db_method=cfg.concepts.db_default)
    plots.save_figure(fig, "strategies_seeds", cfg)
    plt.close(fig)
    return "strategies_seeds"


def readme_block(run: RunDir, cfg: Config) -> str:
    """A few headline lines for the README (between its results markers)."""
    t = tables(run, cfg)
    lines = [
        f"Offline default, generated from `runs/{cfg.name}` (details: `docs/results/{cfg.name}.md`):",
        "",
    ]
    facts = t.get("Model and captions")
    if facts is not None:
        f = dict(zip(facts["what"], facts["value"], strict=True))
        lines.append(
            f"- target model held-out accuracy {_fmt(f.get('held-out accuracy'))}; captions name "
            f"the right class first for {_fmt(f.get('caption top-1'))} of the clips"
        )
    last = run.read_json("last_layer.json") if run.exists("last_layer.json") else {}
    method = f"db_{cfg.concepts.db_default}"
    own = last.get(cfg.captioner.name, {}).get(method)
    if own:
        lines.append(
            f"- last layer, DB ({method}): top-1 {_fmt(own['top1'], 2)}, top-5 {_fmt(own['top5'], 2)}"
        )
    hidden = _csv(run, "hidden_layer_accuracy.csv")
    if hidden is not None and len(hidden):
        row = hidden[(hidden["layer"] == LAYER_ALL) & (hidden["method"] == method)]
        if len(row):
            r = row.iloc[0]
            lines.append(
                f"- hidden layers, DB ({method}): top-1 {_fmt(r['top1'], 2)} against the class "
                f"shared by a neuron's top clips ({int(r['n_neurons'])} neurons; chance "
                f"{_fmt(r['chance_top1'], 2)})"
            )
    prune = _csv(run, "pruning_summary.csv")
    if prune is not None and "db" in set(prune["strategy"]):
        r = prune[prune["strategy"] == "db"].iloc[0]
        lines.append(
            f"- pruning, DB: ΔA − ΔR {_fmt(r['delta_a_minus_r_mean'], 2)} "
            f"[{_fmt(r['ci_low'], 2)}, {_fmt(r['ci_high'], 2)}], beyond random "
            f"{_fmt(r['vs_random_mean'], 2)} [{_fmt(r['vs_random_ci_low'], 2)}, "
            f"{_fmt(r['vs_random_ci_high'], 2)}]"
        )
    return "\n".join(lines)


def replace_block(text: str, name: str, block: str) -> str:
    """``text`` with the lines between ``<!-- results:<name> -->`` and ``<!-- /results -->``
    replaced by ``block``; unchanged when the markers are absent."""
    pattern = re.compile(
        rf"(<!-- results:{re.escape(name)} -->\n)(?:.*?\n)?(<!-- /results -->)", re.S
    )
    return pattern.sub(lambda m: m.group(1) + block.rstrip("\n") + "\n" + m.group(2), text)


def run_stage(cfg: Config, run: RunDir) -> dict[str, Any]:
    """Write ``docs/results/<name>.md`` and refresh the README's block for the run."""
    page = RESULTS_DIR / f"{cfg.name}.md"
    page.parent.mkdir(parents=True, exist_ok=True)
    if cfg.strategies and not run.exists("neurons.csv"):
        atomic_write_text(page, comparison_page(run, cfg))
        committed = _committed(cfg)
        figure = seeds_figure(cfg, committed["per_seed"]) if committed["seeds"] else None
        return {"page": str(page), **({"figure": figure} if figure else {})}
    atomic_write_text(page, results_page(run, cfg))
    out: dict[str, Any] = {"page": str(page)}
    if README.exists():
        text = README.read_text(encoding="utf-8")
        new = replace_block(text, cfg.name, readme_block(run, cfg))
        if new != text:
            atomic_write_text(README, new)
            out["readme"] = "block updated"
    return out
