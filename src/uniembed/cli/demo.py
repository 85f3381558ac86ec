"""`uniembed demo`: the main job on the embedded default model, offline."""

from __future__ import annotations

import argparse
import sys


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "demo",
        help="run the main job offline: load the default model, embed, evaluate and search a shipped data set",
    )
    parser.add_argument(
        "--model", "-m", default=None, help="model to demo (default: all-MiniLM-L6-v2)"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from uniembed.demo import run_demo

    run_demo(args.model, show_progress=sys.stderr.isatty())
    return 0
