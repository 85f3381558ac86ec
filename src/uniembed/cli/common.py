"""Options shared by several commands."""

from __future__ import annotations

import argparse


def add_model_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model")
    group.add_argument(
        "--model",
        "-m",
        default=None,
        help="catalogue name, model directory or hub id (default: all-MiniLM-L6-v2)",
    )
    group.add_argument(
        "--device", default=None, help="torch device, e.g. cpu or cuda (default: cuda if available)"
    )
    group.add_argument(
        "--batch-size",
        type=int,
        default=32,
        help="at most this many texts per forward pass (default: 32)",
    )
    add_backend_options(group)
    group.add_argument(
        "--threads",
        type=int,
        default=None,
        help="CPU threads for inference (default: the runtime's)",
    )


def add_backend_options(group) -> None:
    """--backend, --precision and --min-cosine, the same on every command that loads a model."""
    group.add_argument(
        "--backend",
        choices=["torch", "onnx", "openvino", "auto"],
        default="torch",
        help="inference backend (default: torch; auto: the fastest exact backend on this CPU, "
        "measured once and cached)",
    )
    group.add_argument(
        "--precision",
        choices=["fp32", "bf16", "fp16", "int8", "auto"],
        default="fp32",
        help="torch: fp32, bf16, fp16 (GPU); onnx: fp32, int8; openvino: fp32, bf16, int8; auto: "
        "the fastest whose vectors stay within --min-cosine of fp32's (default: fp32)",
    )
    group.add_argument(
        "--min-cosine",
        type=float,
        default=None,
        help="with an 'auto' backend or precision: the worst cosine to the exact vectors a "
        "choice may give (default: 0.999)",
    )


def backend_options(args: argparse.Namespace) -> dict:
    """load()'s backend keywords from add_backend_options' arguments."""
    return {"backend": args.backend, "precision": args.precision, "min_cosine": args.min_cosine}


def say_auto_choice(model) -> None:
    """What 'auto' chose and why, on stderr (stdout may be a file of vectors)."""
    import sys

    choice = getattr(model, "auto_choice", None)
    if choice is not None:
        print(choice.reason, file=sys.stderr)


def load_model(args: argparse.Namespace):
    from uniembed import load

    model = load(args.model, device=args.device, threads=args.threads, **backend_options(args))
    say_auto_choice(model)
    return model


def read_lines(path: str, option: str) -> list[str]:
    """The non-empty lines of a text file, stripped; InputError names the option and file when it
    cannot be read."""
    from pathlib import Path

    from uniembed.errors import InputError

    try:
        return [
            line.strip()
            for line in Path(path).read_text(encoding="utf-8").splitlines()
            if line.strip()
        ]
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {option} {path}: {type(exc).__name__}") from None
