"""`uniembed embed`: a text file in, a vector file out."""
from __future__ import annotations

import argparse
import sys

from uniembed.cli.common import add_model_options, load_model


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "embed",
        help="embed every row of a text file into .npy or .parquet",
        description="Embed every row of INPUT (.txt: one text per line; .jsonl, .csv, .tsv, .parquet: "
        "the --column) and write the vectors to OUTPUT (.npy or .parquet), row i -> vector i. "
        "Streams in flat memory; the output appears only when complete.",
    )
    parser.add_argument("input", help="text file: .txt, .jsonl, .csv, .tsv or .parquet (optionally .gz)")
    parser.add_argument("-o", "--output", required=True, help="vector file: .npy or .parquet")
    parser.add_argument("--column", "-c", default=None, help="the text column for jsonl/csv/tsv/parquet (default: text)")
    parser.add_argument("--prompt", default=None, help="prompt name, e.g. query or document")
    parser.add_argument("--dim", type=int, default=None, help="keep the first DIM coordinates (Matryoshka)")
    parser.add_argument("--no-normalize", action="store_true", help="do not L2-normalise the vectors")
    parser.add_argument("--long", choices=["truncate", "chunk"], default="truncate", help="what to do with inputs over the max length")
    add_model_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from uniembed.io import embed_file

    model = load_model(args)
    report = embed_file(
        model,
        args.input,
        args.output,
        column=args.column,
        prompt=args.prompt,
        normalize=not args.no_normalize,
        dim=args.dim,
        long=args.long,
        batch_size=args.batch_size,
        show_progress=sys.stderr.isatty(),
    )
    print(f"wrote {report.rows} vectors of dim {report.dim} to {report.path}")
    return 0
