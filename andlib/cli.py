"""Command line: ``python -m andlib <stage> [--config FILE] [--out DIR] [--set key=value ...]``."""

from __future__ import annotations

import argparse
import logging
import sys

from andlib.config import ConfigError, load_config

STAGE_HELP = {
    "train": "train (or reuse) the offline target model: a small AST on ESC-50 folds 1-4",
    "record": "record activations of the chosen layers on the probing set; top-K clips",
    "caption": "caption every probing clip (or the given files: caption FILE_OR_DIR ...)",
    "summarize": "summarize each neuron's top/bottom clips; Modules A, B, C -> neurons.csv",
    "evaluate": "last-layer accuracy and simulation scores",
    "prune": "concept-specific pruning (ΔA vs ΔR) against a random baseline",
    "analyze": "analyses and paper figures",
    "reproduce": "run the numbered notebooks in order with papermill",
}


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config", default="configs/default.yaml", help="YAML config (default: %(default)s)"
    )
    p.add_argument("--out", default=None, help="run directory (default: runs/<config name>)")
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
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    overrides = list(args.overrides)
    if args.out:
        overrides.append(f"run_dir={args.out}")
    if args.command == "reproduce":
        from andlib.pipeline import main_reproduce

        try:
            return main_reproduce(args.config, args.overrides, args.out)
        except ConfigError as exc:
            print(f"config error: {exc}", file=sys.stderr)
            return 2
    try:
        if getattr(args, "captioner", None):
            overrides.append(f"captioner.name={args.captioner}")
        if getattr(args, "strategy", None):
            overrides.append(f"train.strategy={args.strategy}")
            overrides.append(f"model.name=trained:{args.strategy}")
        cfg = load_config(args.config, overrides)
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2
    if args.command == "caption" and args.paths:
        from andlib.captioning import caption_paths_cli

        return caption_paths_cli(cfg, args.paths)
    from andlib.pipeline import run_stage

    summary = run_stage(args.command, cfg)
    for k, v in summary.items():
        print(f"{k}: {v}")
    return 0
