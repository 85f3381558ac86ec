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
    group.add_argument(
        "--backend",
        choices=["torch", "onnx", "openvino"],
        default="torch",
        help="inference backend (default: torch; openvino: the fastest int8 on CPUs)",
    )
    group.add_argument(
        "--precision",
        choices=["fp32", "bf16", "fp16", "int8"],
        default="fp32",
        help="torch: fp32, bf16, fp16 (GPU); onnx: fp32, int8 (default: fp32)",
    )
    group.add_argument(
        "--threads",
        type=int,
        default=None,
        help="CPU threads for inference (default: the runtime's)",
    )


def load_model(args: argparse.Namespace):
    from uniembed import load

    return load(
        args.model,
        device=args.device,
        backend=args.backend,
        precision=args.precision,
        threads=args.threads,
    )


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
