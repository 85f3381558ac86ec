"""The CLI reference (docs/cli.md), generated from the parsers' own --help texts.

Regenerate with `python -m uniembed.cli.reference > docs/cli.md`; a test fails when it is stale.
"""

from __future__ import annotations

import argparse
import os

from uniembed.cli.main import build_parser


def _subcommands(parser: argparse.ArgumentParser) -> list[tuple[str, argparse.ArgumentParser]]:
    for action in parser._actions:  # argparse keeps subparsers only here
        if isinstance(action, argparse._SubParsersAction):
            return list(action.choices.items())
    return []


def _sections(parser: argparse.ArgumentParser, path: str) -> list[str]:
    out = [f"## `{path}`\n\n```\n{parser.format_help().rstrip()}\n```\n"]
    for name, sub in _subcommands(parser):
        out += _sections(sub, f"{path} {name}")
    return out


def render_reference() -> str:
    previous = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "100"  # argparse wraps to the terminal width: fix it for a stable file
    try:
        parser = build_parser()
        return (
            "# uniembed command reference\n\nGenerated from `--help`; do not edit by hand.\n\n"
            + "\n".join(_sections(parser, "uniembed"))
        )
    finally:
        if previous is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = previous


if __name__ == "__main__":
    print(render_reference(), end="")
