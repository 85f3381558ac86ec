"""`uniembed distill MODEL -o DIR`: make a static (token-table) model from a transformer."""

from __future__ import annotations

import argparse


def add_parser(commands) -> None:
    from uniembed.encoders.static import (
        SIF_SMOOTHING,
    )  # numpy only: the CLI's parsers load it anyway

    parser = commands.add_parser(
        "distill",
        help="make a static model (one vector per token, numpy-only encoding) from a transformer",
        description="Embed every vocabulary token with MODEL, weight by a Zipf prior, optionally refine on a corpus, "
        "reduce with PCA, and save a static model to OUTPUT, loadable with uniembed.load(OUTPUT) or --model OUTPUT.",
    )
    parser.add_argument("model", help="teacher: default, a catalogue name, a directory or a hub id")
    parser.add_argument("-o", "--output", required=True, help="a new folder for the static model")
    parser.add_argument(
        "--dim", type=int, default=None, help="dimensions kept by PCA (default: all the teacher's)"
    )
    parser.add_argument(
        "--corpus",
        default=None,
        help="texts (txt/jsonl/csv/parquet) to refine the token table on: "
        "the static model learns to match the teacher on them and weights tokens by "
        "their frequency there (much better quality)",
    )
    parser.add_argument(
        "--sif",
        type=float,
        default=SIF_SMOOTHING,
        help="smoothing a of the token weights a / (a + frequency "
        f"in --corpus) (default: {SIF_SMOOTHING:g}, chosen on dev splits by bench/select_static.py)",
    )
    parser.add_argument("--column", default=None, help="text column of --corpus (default: text)")
    parser.add_argument("--device", default=None, help="torch device for the teacher")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from uniembed import load
    from uniembed.encoders.static import distill
    from uniembed.io import read_texts

    teacher = load(None if args.model == "default" else args.model, device=args.device)
    corpus = list(dict.fromkeys(read_texts(args.corpus, args.column))) if args.corpus else None
    path = distill(teacher, args.output, dim=args.dim, corpus=corpus, sif=args.sif)
    print(f"wrote static model {path} ({args.dim or teacher.dim} dims, from {teacher.name})")
    return 0
