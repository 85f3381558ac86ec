"""`uniembed models`: what can be loaded, and from where."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "models",
        help="list the models that can be loaded, and from where",
        description="List catalogue models (offline where their package is installed) and models in the "
        "local Hugging Face cache. Any sentence-transformers or Hugging Face encoder directory, and any "
        "hub id (with a network), can be loaded too.",
    )
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from uniembed.encoders.registry import DEFAULT_MODEL, list_models

    models = list_models()
    if args.json:
        print(json.dumps([asdict(m) for m in models], indent=2))
        return 0
    for info in models:
        mark = (
            "offline"
            if info.available_offline
            else "online only"
            if info.location != "-"
            else "not available"
        )
        default = " (default)" if info.name == DEFAULT_MODEL else ""
        print(
            f"{info.name}{default}\n  {info.description}\n  from: {info.source} [{mark}]\n  at:   {info.location}"
        )
    print(
        "\nAlso loadable: any sentence-transformers or Hugging Face encoder directory (--model PATH), "
        "and any hub id 'org/name' when a network is available."
    )
    return 0
