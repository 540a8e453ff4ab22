"""Command line: ``python -m andlib <stage> [--config FILE] [--out DIR] [--set key=value ...]``.

The project's own errors (a bad config, an unreadable clip, a model that cannot be loaded, an
LLM or captioning endpoint that failed for good, ...) end a command with one message on stderr,
``andlib: error: <message>``, and a non-zero exit status (2 for a config error, 1 otherwise);
``--debug`` or ``ANDLIB_DEBUG=1`` shows the traceback instead. Anything else is a bug and keeps
its traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from andlib.config import ConfigError, load_config

PROJECT_ERRORS = (
    ("andlib.config", "ConfigError"),
    ("andlib.data.audio", "AudioError"),
    ("andlib.text.llm", "LLMError"),
    ("andlib.describe.captioners", "CaptionError"),
    ("andlib.models.base", "ModelLoadError"),
    ("andlib.models.layers", "LayerError"),
    ("andlib.models.record_ray", "RayRecordError"),
    ("andlib.describe.tab", "TABUnavailable"),
    ("andlib.describe.tab", "ClapLoadError"),
    ("andlib.pipeline", "NotebookFailed"),
    ("andlib.store", "ArtifactError"),
)
"""``(module, class)`` of the errors reported as one message; modules are not imported for it
(an error of a module that was never imported cannot have been raised)."""

STAGE_HELP = {
    "train": "train (or reuse) the offline target model: a small AST on ESC-50 folds 1-4",
    "record": "record activations of the chosen layers on the probing set; top-K clips",
    "caption": "caption every probing clip (or the given files: caption FILE_OR_DIR ...)",
    "summarize": "summarize each neuron's top/bottom clips; Modules A, B, C -> neurons.csv",
    "evaluate": "last-layer accuracy and simulation scores",
    "prune": "concept-specific pruning (ΔA vs ΔR) against a random baseline",
    "analyze": "analyses and paper figures",
    "pitch": "pitch networks: descriptions scored against the known bins and tuning curves",
    "atlas": "write the run's static neuron atlas (runs/<name>/atlas/index.html): no server",
    "results": "write docs/results/<name>.md (and the README's results block) from the run's files",
    "reproduce": "run the numbered notebooks in order with papermill",
    "strategies-seed": "a strategies config, one training seed: train and dissect every "
    "strategy, keep its tables in results/<config name>/seed<k>/ and compare the seeds kept",
}


def _debug_flag(p: argparse.ArgumentParser, default: object) -> None:
    p.add_argument(
        "--debug",
        action="store_true",
        default=default,
        help="show the full traceback of an error (also: ANDLIB_DEBUG=1)",
    )


def _common(p: argparse.ArgumentParser) -> None:
    _debug_flag(p, argparse.SUPPRESS)  # SUPPRESS: ``andlib --debug STAGE`` is not undone
    p.add_argument(
        "--config", default="configs/default.yaml", help="YAML config (default: %(default)s)"
    )
    p.add_argument(
        "--out",
        default=None,
        help="run directory (default: runs/<config name>); its figures go to <out>/figures",
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, dotted keys (repeatable): --set data.limit=100 --set k=5",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="andlib", description="AND: Audio Network Dissection. Stages run on one run directory."
    )
    _debug_flag(parser, False)
    sub = parser.add_subparsers(dest="command", metavar="STAGE", required=True)
    for name, help_text in STAGE_HELP.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        _common(p)
        if name == "caption":
            p.add_argument(
                "paths", nargs="*", help="audio files or folders (default: the probing set)"
            )
            p.add_argument(
                "--captioner", default=None, help="captioner name (overrides captioner.name)"
            )
        if name == "train":
            p.add_argument(
                "--strategy", default=None, help="supervised, ssl-frozen or ssl-finetuned"
            )
        if name == "strategies-seed":
            p.add_argument("--seed", type=int, required=True, metavar="K", help="training seed")
            p.add_argument(
                "--train-only", action="store_true", help="train the seed's models, then stop"
            )
            p.add_argument(
                "--tables",
                default=None,
                metavar="DIR",
                help="folder of the per-seed tables (default: results/<config name>)",
            )
        if name in ("train", "analyze", "reproduce"):
            p.add_argument(
                "--seeds",
                type=int,
                nargs="+",
                default=None,
                metavar="K",
                help="a strategies config: train (and dissect) every strategy once per "
                "training seed and compare over the seeds (overrides seeds): --seeds 0 1 2",
            )
    return parser


def project_error(exc: BaseException) -> bool:
    """Whether ``exc`` is one of the project's own errors (or an ``OSError``: a missing file or
    model) that ends a command with a message rather than a traceback."""
    if isinstance(exc, OSError):
        return True
    for module, name in PROJECT_ERRORS:
        cls = getattr(sys.modules.get(module), name, None)
        if isinstance(cls, type) and isinstance(exc, cls):
            return True
    return False


def error_message(exc: BaseException) -> str:
    """The message for ``exc``: its text, or its type when it has none."""
    text = str(exc).strip()
    if isinstance(exc, OSError) and not isinstance(exc, FileNotFoundError):
        text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return text or type(exc).__name__


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns the exit status (0 on success)."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    debug = bool(args.debug) or os.environ.get("ANDLIB_DEBUG", "").strip() not in ("", "0")
    try:
        return _run(args)
    except KeyboardInterrupt:
        if debug:
            raise
        print("andlib: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if debug or not project_error(exc):
            raise
        print(f"andlib: error: {error_message(exc)}", file=sys.stderr)
        return 2 if isinstance(exc, ConfigError) else 1


def _run(args: argparse.Namespace) -> int:
    seeds = getattr(args, "seeds", None)
    given = [*args.overrides, *([f"seeds={list(seeds)}"] if seeds is not None else [])]
    if args.out and not any(o.startswith("figures_dir=") for o in given):
        # a run elsewhere draws its figures beside it, never over the config's own figures
        given.append(f"figures_dir={Path(args.out) / 'figures'}")
    overrides = list(given)
    if args.out:
        overrides.append(f"run_dir={args.out}")
    if args.command == "reproduce":
        from andlib.pipeline import main_reproduce

        return main_reproduce(args.config, given, args.out)
    if args.command == "strategies-seed":
        from andlib.pipeline import strategies_seed

        summary = strategies_seed(
            args.config, args.seed, overrides, tables=args.tables, train_only=args.train_only
        )
        for k, v in summary.items():
            print(f"{k}: {v}")
        return 0
    if getattr(args, "captioner", None):
        overrides.append(f"captioner.name={args.captioner}")
    if getattr(args, "strategy", None):
        overrides.append(f"train.strategy={args.strategy}")
        overrides.append(f"model.name=trained:{args.strategy}")
    cfg = load_config(args.config, overrides)
    if args.command == "caption" and args.paths:
        from andlib.describe.captioning import caption_paths_cli

        return caption_paths_cli(cfg, args.paths)
    from andlib.pipeline import run_stage

    summary = run_stage(args.command, cfg)
    for k, v in summary.items():
        print(f"{k}: {v}")
    return 0
