"""End to end: `reproduce` runs every numbered notebook with papermill on the smoke config."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from andlib import store
from andlib.config import PROJECT_ROOT, ConfigError, load_config
from andlib.pipeline import (
    NotebookFailed,
    check_models,
    notebooks,
    reproduce,
    reproduction_plan,
)
from andlib.store import RunDir
from tests.conftest import requires_esc50


def test_reproduction_plan_runs_each_strategy_then_the_comparison():
    cfg = load_config("configs/strategies.yaml", ["seeds=[]"])
    plan = reproduction_plan(cfg, ["seeds=[]"])
    books = notebooks()
    assert len(plan) == 3 * len(books) + 1
    first = plan[0][1]
    assert "model.name=trained:supervised" in first and "strategies=[]" in first
    assert any(o.startswith("run_dir=") and o.endswith("/supervised") for o in first)
    assert not any(o.startswith("train.seed=") for _, ov, _ in plan for o in ov)
    last_nb, last_overrides, last_folder = plan[-1]
    assert (
        last_nb.name.startswith("06_")
        and last_overrides == ["seeds=[]"]
        and last_folder == cfg.run_path / "notebooks"
    )


def test_reproduction_plan_runs_every_trained_strategy_once_per_seed():
    from andlib.models.train import model_dir

    cfg = load_config("configs/strategies.yaml")
    assert cfg.seeds == [0, 1, 2]
    plan = reproduction_plan(cfg, [])
    books = notebooks()
    assert len(plan) == 3 * 3 * len(books) + 1
    runs = {}
    for _, ov, folder in plan[:-1]:
        sub = load_config("configs/strategies.yaml", ov)
        assert sub.strategies == [] and sub.seeds == [] and folder == sub.run_path / "notebooks"
        runs[sub.run_path.relative_to(cfg.run_path).as_posix()] = sub
    assert sorted(runs) == sorted(
        f"{s}/seed{k}" for s in ("supervised", "ssl-frozen", "ssl-finetuned") for k in (0, 1, 2)
    )
    assert runs["ssl-frozen/seed2"].train.seed == 2
    assert runs["ssl-frozen/seed2"].figures_path == cfg.figures_path / "ssl-frozen" / "seed2"
    # seed by seed: every strategy of seed 0 runs before any of seed 1
    order = [Path(o.split("=", 1)[1]).name for _, ov, _ in plan[:-1] for o in ov if "run_dir=" in o]
    assert order.index("seed1") > max(i for i, name in enumerate(order) if name == "seed0")
    # one model per strategy and seed; seed 0 is the model of the config without seeds
    dirs = {(s, k): model_dir(runs[f"{s}/seed{k}"], s) for s in cfg.strategies for k in (0, 1, 2)}
    assert len(set(dirs.values())) == 9
    single = load_config("configs/strategies.yaml", ["seeds=[]"])
    assert dirs[("supervised", 0)] == model_dir(single, "supervised")
    assert plan[-1][0].name.startswith("06_") and plan[-1][2] == cfg.run_path / "notebooks"


def test_a_checkpoint_strategy_runs_once_among_seeded_ones():
    cfg = load_config("configs/strategies-online.yaml", ["seeds=[0, 1]"])
    folders = sorted(
        {f.parent.relative_to(cfg.run_path).as_posix() for _, _, f in reproduction_plan(cfg, [])}
    )
    assert folders == [
        ".",
        "ssl-finetuned/seed0",
        "ssl-finetuned/seed1",
        "ssl-frozen/seed0",
        "ssl-frozen/seed1",
        "supervised",
    ]


def test_reproduction_plan_targets_the_checkpoint_a_strategy_maps_to():
    from andlib.models.train import strategies_to_train

    cfg = load_config("configs/strategies-online.yaml")
    plan = reproduction_plan(cfg, [])
    by_strategy = {
        Path(o.split("=", 1)[1]).name: ov
        for _, ov, _ in plan
        for o in ov
        if o.startswith("run_dir=")
    }
    assert (
        "model.name=shreyahegde/ast-finetuned-audioset-10-10-0.450_ESC50"
        in by_strategy["supervised"]
    )
    assert "model.name=trained:ssl-frozen" in by_strategy["ssl-frozen"]
    sub = load_config("configs/strategies-online.yaml", by_strategy["ssl-frozen"])
    assert sub.strategies == [] and sub.strategy_models == {}
    assert sub.train.init == "facebook/hubert-base-ls960"
    assert strategies_to_train(cfg) == ["ssl-frozen", "ssl-finetuned"]


def test_the_sae_config_reproduces_each_target_on_its_base_run_without_pruning():
    cfg = load_config("configs/sae.yaml")
    plan = reproduction_plan(cfg, [])
    folders = [f.parent.relative_to(cfg.run_path).as_posix() for _, _, f in plan]
    books = [nb.name[:2] for nb, _, _ in plan]
    per_target = ["00", "01", "02", "03", "04", "06", "07"]
    assert books == [*per_target, *per_target, "06"]
    assert folders == ["ast"] * 7 + ["whisper-base"] * 7 + ["."]
    bases = {
        f.parent.name: [o for o in ov if o.startswith("record.base.run_dir=")]
        for _, ov, f in plan[:-1]
    }
    assert bases == {
        "ast": [f"record.base.run_dir={PROJECT_ROOT / 'runs' / 'default'}"],
        "whisper-base": [
            f"record.base.run_dir={PROJECT_ROOT / 'runs' / 'whisper' / 'whisper-base'}"
        ],
    }


# Every stage that writes ``.stages/<stage>.json``; model training records itself in model.json.
STAGES = {"record", "caption", "summarize", "concepts", "controls", "evaluate", "prune", "analysis"}
SKIP_WORDS = re.compile(r"\bskip(s|ped|ping)?\b|\bleft out\b|\bnot computed\b", re.I)


def skip_notices(out: Path, allowed: list[str]) -> list[str]:
    """Lines of the executed notebooks' printed output and of ``run.log`` that report work
    skipped or left out, except those matching one of the ``allowed`` patterns."""
    lines = []
    for nb_path in sorted((out / "notebooks").glob("*.ipynb")):
        for cell in json.loads(nb_path.read_text())["cells"]:
            for output in cell.get("outputs", []):
                text = output.get("text", "")
                text = "".join(text) if isinstance(text, list) else text
                lines += [f"{nb_path.name}: {line}" for line in text.splitlines()]
    if (out / "run.log").exists():
        lines += [f"run.log: {line}" for line in (out / "run.log").read_text().splitlines()]
    return [
        line
        for line in lines
        if SKIP_WORDS.search(line) and not any(re.search(a, line) for a in allowed)
    ]


def test_skip_notices_finds_skipped_work_in_notebooks_and_the_run_log(tmp_path):
    import nbformat

    (tmp_path / "notebooks").mkdir()
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("x")
    cell.outputs = [
        nbformat.v4.new_output(
            "stream", name="stderr", text="prune: the tab strategy is skipped\n"
        ),
        nbformat.v4.new_output("stream", name="stdout", text="TAB skipped: no CLAP model\nok\n"),
    ]
    nb.cells = [cell]
    nbformat.write(nb, str(tmp_path / "notebooks" / "05_prune.ipynb"))
    (tmp_path / "run.log").write_text("INFO fine\nWARNING LLM simulator skipped for layer x\n")
    assert skip_notices(tmp_path, [r"TAB skipped: no CLAP"]) == [
        "05_prune.ipynb: prune: the tab strategy is skipped",
        "run.log: WARNING LLM simulator skipped for layer x",
    ]
    assert len(skip_notices(tmp_path, [])) == 3


def assert_nothing_asked_for_was_skipped(cfg, out: Path) -> None:
    """Every piece of work the config asks for was done, and no stage says it skipped any."""
    # data: every clip asked for was read
    clips = pd.read_csv(out / "clips.csv")
    skipped = pd.read_csv(out / "skipped.csv")
    assert skipped.empty, f"clips skipped: {skipped.to_dict('records')}"
    assert len(clips) == cfg.data.limit, f"{len(clips)} clips, asked for {cfg.data.limit}"
    # training ran every epoch asked for (not cut short by max_steps or max_minutes)
    model = json.loads((out / "model.json").read_text())
    assert model["epochs"] == cfg.train.epochs, model
    # every stage finished, and every output it lists exists
    stages = {p.stem: json.loads(p.read_text()) for p in (out / ".stages").glob("*.json")}
    assert STAGES <= set(stages), f"stages without a record: {STAGES - set(stages)}"
    for stage, record in stages.items():
        missing = [o for o in record["outputs"] if not (out / o).exists()]
        assert not missing, f"{stage} lists outputs it did not write: {missing}"
    captions = pd.read_csv(out / "captions.csv", keep_default_na=False)
    assert set(captions["clip_id"]) == set(clips["clip_id"]) and (captions["caption"] != "").all()
    # Module A: TAB runs when (and only when) a CLAP model is configured; ICL when asked
    concepts = stages["concepts"]
    if cfg.concepts.clap_model:
        assert concepts["tab"].startswith("CLAP"), concepts["tab"]
    else:
        assert "no CLAP model is configured" in concepts["tab"], concepts["tab"]
    assert (concepts["icl"] != "off") == cfg.concepts.icl, concepts["icl"]
    # last layer: every configured captioner, with every similarity function (and ICL, TAB)
    last = json.loads((out / "last_layer.json").read_text())
    for captioner in cfg.evaluate.captioners:
        methods = set(last[captioner])
        assert {f"db_{fn}" for fn in cfg.concepts.similarity} <= methods, (captioner, methods)
        assert any(m.startswith("icl") for m in methods) == cfg.concepts.icl, methods
        assert ("tab" in methods) == bool(cfg.concepts.clap_model), methods
    sweep = pd.read_csv(out / "caption_quality.csv")
    corrupted = sweep[sweep["captioner"] == "metadata+acoustic (corrupted)"]
    assert (corrupted.groupby("method").size() == len(cfg.evaluate.caption_sweep_rates)).all()
    # simulation: every recorded layer, the asked-for number of neurons, every method
    index = json.loads((out / "activations" / "index.json").read_text())
    layers = cfg.evaluate.simulation_layers or list(index["layers"])
    sim = store.read_scores(RunDir(out), scorer="simulation", metric="pearson")
    assert sim is not None
    for layer in layers:
        n = int(index["layers"][layer]["n_neurons"])
        limit = (
            None if layer == cfg.evaluate.classifier_layer else cfg.evaluate.simulation_max_neurons
        )
        expected = min(n, limit or n)
        per_variant = sim[sim["layer"] == layer].groupby("variant").size().to_dict()
        assert per_variant.get("own") == expected, (layer, per_variant)
        assert per_variant.get("random") == expected, (layer, per_variant)
    every = store.read_scores(RunDir(out))
    assert every is not None and {"simulation", "detection", "intruder"} <= set(every["scorer"])
    generative = cfg.llm.backend != "extractive"
    assert ("simulation_llm" in set(every["scorer"])) == (
        generative and cfg.evaluate.llm_simulation
    )
    # pruning: every configured strategy, on at least the asked-for number of classes
    pruning = pd.read_csv(out / "pruning.csv")
    done = set(pruning["strategy"])
    assert done == set(cfg.prune.strategies), f"pruned with {done}, asked {cfg.prune.strategies}"
    for strategy, rows in pruning.groupby("strategy"):
        assert rows["concept"].nunique() >= cfg.prune.max_concepts, strategy
    # and no stage printed or logged that it skipped something
    allowed = [] if cfg.concepts.clap_model else [r"TAB (was )?skipped: no CLAP model"]
    notices = skip_notices(out, allowed)
    assert not notices, "work reported skipped:\n" + "\n".join(notices)


# Every stage end to end takes 5-7 min on two busy cores: the suite's 600 s leaves no margin.
@pytest.mark.slow
@pytest.mark.timeout(1800)
@requires_esc50
def test_reproduce_executes_every_notebook_on_the_smoke_config(tmp_path):
    overrides = [f"cache_dir={tmp_path / 'cache'}", f"figures_dir={tmp_path / 'figures'}"]
    out = reproduce("configs/smoke.yaml", overrides, out=str(tmp_path / "run"))
    cfg = load_config("configs/smoke.yaml", [*overrides, f"run_dir={out}"])
    executed = sorted(p.name for p in (out / "notebooks").glob("*.ipynb"))
    assert executed == [p.name for p in notebooks()]
    model = json.loads((out / "model.json").read_text())
    assert model["model_id"] == "trained:supervised" and "heldout_accuracy" in model
    neurons = pd.read_csv(out / "neurons.csv")
    topk = pd.read_csv(out / "neuron_topk.csv")
    assert len(neurons) == len(topk[["layer", "neuron"]].drop_duplicates())
    figures = {p.stem for p in (tmp_path / "figures").glob("*.png")}
    assert {
        "adjective_distribution",
        "adjectives_per_layer",
        "polysemantic_neurons",
        "last_layer_accuracy",
    } <= figures

    # The descriptions carry information: they predict held-out activations better than
    # another neuron's description does.
    sim = store.read_scores(RunDir(out), scorer="simulation", metric="pearson")
    assert sim is not None
    pearson = sim.groupby("variant")["value"].mean()
    assert pearson["own"] > pearson["random"], pearson.to_dict()
    assert (out / "score_sanity.csv").exists() and (out / "score_baselines.csv").exists()
    # Captions that name the source make the class neurons readable: metadata+acoustic (it
    # reads the label) beats acoustic (names no source) on the classifier layer.
    last = json.loads((out / "last_layer.json").read_text())
    named, unnamed = last["metadata+acoustic"]["db_soft_wpmi"], last["acoustic"]["db_soft_wpmi"]
    assert named["top1"] > unnamed["top1"], (named, unnamed)
    assert_nothing_asked_for_was_skipped(cfg, out)


def test_reproduce_names_the_failing_notebook_and_cell(tmp_path, monkeypatch):
    import andlib.pipeline as pipeline

    bad = tmp_path / "nb"
    bad.mkdir()
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata = {
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
    }
    params = nbformat.v4.new_code_cell("config_path = ''\noverrides = []")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell("raise ValueError('boom')")]
    nbformat.write(nb, str(bad / "00_fails.ipynb"))
    monkeypatch.setattr(pipeline, "NOTEBOOK_DIR", bad)
    with pytest.raises(NotebookFailed, match=r"00_fails\.ipynb failed in cell .*ValueError: boom"):
        reproduce("configs/smoke.yaml", [f"cache_dir={tmp_path / 'c'}"], out=str(tmp_path / "run"))


def test_a_captioner_on_any_dissected_model_is_refused_before_any_work():
    cfg = load_config("configs/whisper.yaml", ["captioner.tagger_features=whisper-base"])
    assert cfg.model.name == "whisper-tiny.en"  # whisper-base is the second strategy's model
    with pytest.raises(ConfigError, match="model.name: whisper-base"):
        check_models(cfg)
    acoustic = ["captioner.tagger_features=whisper-base", "captioner.name=acoustic"]
    with pytest.raises(ConfigError, match="captioner.tagger_features"):  # a control captioner
        check_models(load_config("configs/whisper.yaml", acoustic))
    check_models(load_config("configs/whisper.yaml"))  # the hand-feature tagger shares nothing
    allowed = ["captioner.tagger_features=whisper-base", "captioner.allow_same_model=true"]
    check_models(load_config("configs/whisper.yaml", allowed))
    check_models(load_config("configs/default.yaml", allowed[:1]))


def test_reproduce_refuses_a_shared_model_before_running_a_notebook(tmp_path, monkeypatch):
    import papermill

    def executed(*args, **kwargs):
        raise AssertionError("a notebook ran")

    monkeypatch.setattr(papermill, "execute_notebook", executed)
    with pytest.raises(ConfigError, match="whisper-base"):
        reproduce(
            "configs/whisper.yaml",
            ["captioner.tagger_features=whisper-base"],
            out=str(tmp_path / "run"),
        )


SAE_SMOKE = [
    "sae.layers=[layers.1.out]",
    "sae.k=4",
    "sae.expansion=2",
    "sae.token_budget=8192",
    "sae.batch_size=256",
    "sae.shard_rows=1024",
]
"""The smoke config with an SAE on its last block's output (64 latents, about 2 passes)."""


@pytest.mark.slow
@pytest.mark.timeout(1800)
@requires_esc50
def test_an_sae_layer_passes_through_every_stage_but_pruning(tmp_path):
    from andlib.pipeline import run_stage

    overrides = [f"run_dir={tmp_path / 'run'}", f"figures_dir={tmp_path / 'figures'}"]
    cfg = load_config("configs/smoke.yaml", [*overrides, *SAE_SMOKE])
    for stage in ("train", "record", "caption", "summarize", "evaluate", "prune", "analyze"):
        run_stage(stage, cfg)
    run_stage("atlas", cfg)
    run = RunDir(cfg.run_path)
    name = "sae.layers.1.out.k4"
    report = json.loads((run.path / "sae.json").read_text())[name]
    n_latents = 64 - report["n_dead"]
    assert report["architecture"] == "batchtopk" and 0 < report["eval_l0"] < 64
    for table in ("neuron_topk.csv", "summaries.csv", "neurons.csv"):
        rows = pd.read_csv(run.path / table)
        assert rows.loc[rows["layer"] == name, "neuron"].nunique() == n_latents, table
    scores = store.read_scores(run)
    assert scores is not None and name in set(scores["layer"])
    purity = pd.read_csv(run.path / "analysis" / "class_purity_per_layer.csv")
    assert name in set(purity["layer"])
    assert (run.path / "atlas" / "data").is_dir()
    assert name in (run.path / "atlas" / "data" / "index.js").read_text()
    assert len(store.read_pruning(run)) > 0  # pruning ran, on the neurons (prune_layers)
    comparison = pd.read_csv(run.path / "analysis" / "sae_comparison.csv")
    assert set(comparison["sae_layer"]) == {name}
    measures = {"simulation", "detection", "class_purity_over_chance", "names_source"}
    assert measures <= set(comparison["measure"])
    assert (tmp_path / "figures" / "sae_neurons_vs_latents.png").exists()


def _fake_stages(monkeypatch, calls):
    """``pipeline.run_stage`` replaced: each call is logged and marks its stages done with a
    seed-specific key; ``analyze`` plants the files the seed tables read."""
    import andlib.pipeline as pipeline
    from tests.report.test_seed_tables import planted_run

    def fake(stage, cfg):
        run = RunDir.from_config(cfg)
        calls.append((stage, cfg.model.name, cfg.train.seed, run.path))
        for s in pipeline.STAGES[stage]:
            run.mark_done(s, f"{s}-{cfg.train.seed}", outputs=[])
        if stage == "analyze":
            planted_run(run.path, 0.5 + 0.01 * cfg.train.seed, 0.01)
        return {"model_dir": "m"} if stage == "train" else {}

    monkeypatch.setattr(pipeline, "run_stage", fake)


def test_strategies_seed_trains_every_strategy_then_dissects_each_and_writes_its_tables(
    tmp_path, monkeypatch
):
    from andlib.layout import read_seed_tables
    from andlib.pipeline import RECIPE_STAGES, SEED_STAGES, strategies_seed

    calls: list = []
    _fake_stages(monkeypatch, calls)
    sets = [f"run_dir={tmp_path / 'run'}", f"cache_dir={tmp_path / 'cache'}"]
    tables = tmp_path / "tables"
    strategies = ["supervised", "ssl-frozen", "ssl-finetuned"]
    out = strategies_seed("configs/strategies.yaml", 1, sets, tables=tables, train_only=True)
    assert [c[0] for c in calls] == ["train"] * 3 and not tables.exists()
    assert set(out) == {f"{s}.model_dir" for s in strategies}

    calls.clear()
    out = strategies_seed("configs/strategies.yaml", 1, sets, tables=tables)
    assert [(c[0], c[1]) for c in calls[:3]] == [("train", f"trained:{s}") for s in strategies]
    assert [c[0] for c in calls[3:]] == list(SEED_STAGES) * 3
    assert {c[2] for c in calls} == {1}
    assert {c[3] for c in calls} == {tmp_path / "run" / s / "seed1" for s in strategies}
    found = read_seed_tables(tables)
    assert list(found) == [1]
    prov = found[1]["provenance"]
    assert prov["seed"] == 1 and prov["config"] == "configs/strategies.yaml"
    assert prov["command"] == (
        "python -m andlib strategies-seed --config configs/strategies.yaml --seed 1"
        f" --set run_dir={tmp_path / 'run'} --set cache_dir={tmp_path / 'cache'}"
    )
    assert prov["keys"]["ssl-frozen"]["record"] == "record-1"
    assert set(prov["recipe"]["supervised"]) == set(RECIPE_STAGES)
    assert set(found[1]["measures.csv"]["strategy"]) == set(strategies)
    assert found[1]["training.csv"]["device"].tolist() == ["cpu"] * 3
    assert out["seeds"] == "1"

    strategies_seed("configs/strategies.yaml", 2, sets, tables=tables)
    again = read_seed_tables(tables)
    # the training seed changes the stage keys, not the recipes
    assert again[2]["provenance"]["keys"] != prov["keys"]
    assert again[2]["provenance"]["recipe"] == prov["recipe"]


def test_strategies_seed_names_the_stale_seeds_when_a_stage_changed_since(tmp_path, monkeypatch):
    import dataclasses

    import andlib.report.analysis as analysis
    from andlib.pipeline import strategies_seed

    _fake_stages(monkeypatch, [])
    sets = [f"run_dir={tmp_path / 'run'}", f"cache_dir={tmp_path / 'cache'}"]
    tables = tmp_path / "tables"
    strategies_seed("configs/strategies.yaml", 0, sets, tables=tables)
    monkeypatch.setattr(analysis, "SPEC", dataclasses.replace(analysis.SPEC, version="changed"))
    out = strategies_seed("configs/strategies.yaml", 1, sets, tables=tables)
    assert out["comparison"].startswith("refused: seeds 0 were made from other stage keys")
    assert "(analysis)" in out["comparison"]
    assert out["comparison"].endswith(
        "`python -m andlib strategies-seed --config configs/strategies.yaml --seed 0"
        f" --set run_dir={tmp_path / 'run'} --set cache_dir={tmp_path / 'cache'}`"
    )
