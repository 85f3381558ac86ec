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
    parser.add_argument(
        "--auto",
        action="store_true",
        help="show what backend='auto', precision='auto' chooses for --model on this CPU, and why "
        "(a short calibration the first time, cached after)",
    )
    parser.add_argument(
        "--model", "-m", default=None, help="with --auto (default: the default model)"
    )
    parser.add_argument(
        "--min-cosine",
        type=float,
        default=None,
        help="with --auto: the worst cosine to the exact vectors a choice may give (default: 0.999)",
    )
    parser.set_defaults(run=run)


def run_auto(args: argparse.Namespace) -> int:
    from uniembed import load

    choice = load(
        args.model, backend="auto", precision="auto", min_cosine=args.min_cosine
    ).auto_choice
    if args.json:
        print(json.dumps(asdict(choice) | {"reason": choice.reason}, indent=2))
        return 0
    print(choice.reason.split("; others:")[0])
    print(f"\n{'configuration':<16} {'texts/s':>9} {'worst cos':>10}")
    for m in choice.measurements:
        mark = (
            " <- chosen" if (m.backend, m.precision) == (choice.backend, choice.precision) else ""
        )
        if m.skipped:
            print(f"{m.label:<16} skipped: {m.skipped}")
        else:
            print(f"{m.label:<16} {m.texts_per_s:>9,.0f} {m.worst_cosine:>10.5f}{mark}")
    print(
        f"\nmeasured on {choice.machine['cpu']} ({', '.join(choice.machine['features']) or 'no AVX2'})"
    )
    return 0


def run(args: argparse.Namespace) -> int:
    from uniembed.encoders.registry import DEFAULT_MODEL, list_models

    if args.auto:
        return run_auto(args)
    if args.model is not None or args.min_cosine is not None:
        from uniembed.errors import InputError

        raise InputError("--model and --min-cosine go with --auto")

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
