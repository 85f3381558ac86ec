"""`uniembed embed`: a text file, an item file or a folder of images in, a vector file out."""
from __future__ import annotations

import argparse
import sys

from uniembed.cli.common import add_model_options, load_model


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "embed",
        help="embed every row of a text or item file, or every image of a folder, into .npy or .parquet",
        description="Embed every row of INPUT (.txt: one text per line; .jsonl, .csv, .tsv, .parquet: "
        "the --column) and write the vectors to OUTPUT (.npy or .parquet), row i -> vector i. "
        "With an image model, rows with an image column (--image-column, default 'image': a path relative to "
        "the file, a data URI or bytes) are embedded as images, or as image+text items when they also "
        "have text; INPUT may also be a folder of images (sorted order; a .parquet output gets their "
        "relative paths as ids). Streams in flat memory; the output appears only when complete.",
    )
    parser.add_argument("input", help="text or item file: .txt, .jsonl, .csv, .tsv or .parquet (optionally .gz); or a folder of images")
    parser.add_argument("-o", "--output", required=True, help="vector file: .npy or .parquet")
    parser.add_argument("--column", "-c", default=None, help="the text column for jsonl/csv/tsv/parquet (default: text)")
    parser.add_argument("--image-column", default=None,
                        help="the image column of an item file (default: 'image' when the model embeds images)")
    parser.add_argument("--image-weight", type=float, default=0.5,
                        help="weight of the image in an image+text row: w*image + (1-w)*text, renormalised (default: 0.5)")
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
        image_column=args.image_column,
        image_weight=args.image_weight,
        prompt=args.prompt,
        normalize=not args.no_normalize,
        dim=args.dim,
        long=args.long,
        batch_size=args.batch_size,
        show_progress=sys.stderr.isatty(),
    )
    print(f"wrote {report.rows} vectors of dim {report.dim} to {report.path}")
    return 0
