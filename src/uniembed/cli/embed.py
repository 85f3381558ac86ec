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
    parser.add_argument(
        "input",
        help="text or item file: .txt, .jsonl, .csv, .tsv or .parquet (optionally .gz); or a folder of images",
    )
    parser.add_argument(
        "-o",
        "--output",
        required=True,
        help="vector file: .npy or .parquet (--engine ray: a folder)",
    )
    parser.add_argument(
        "--column",
        "-c",
        default=None,
        help="the text column for jsonl/csv/tsv/parquet (default: text)",
    )
    parser.add_argument(
        "--image-column",
        default=None,
        help="the image column of an item file (default: 'image' when the model embeds images)",
    )
    parser.add_argument(
        "--image-weight",
        type=float,
        default=0.5,
        help="weight of the image in an image+text row: w*image + (1-w)*text, renormalised (default: 0.5)",
    )
    parser.add_argument("--prompt", default=None, help="prompt name, e.g. query or document")
    parser.add_argument(
        "--dim", type=int, default=None, help="keep the first DIM coordinates (Matryoshka)"
    )
    parser.add_argument(
        "--no-normalize", action="store_true", help="do not L2-normalise the vectors"
    )
    parser.add_argument(
        "--long",
        choices=["truncate", "chunk"],
        default="truncate",
        help="what to do with inputs over the max length",
    )
    add_model_options(parser)
    add_engine_options(
        parser, output_help="the output folder of Parquet shards (vectors/<shard>/*.parquet)"
    )
    parser.add_argument(
        "--id-column", default="id", help="--engine ray: the id column of each row (default: id)"
    )
    parser.set_defaults(run=run)


def add_engine_options(parser: argparse.ArgumentParser, *, output_help: str) -> None:
    group = parser.add_argument_group("engine (where the encoding runs)")
    group.add_argument(
        "--engine",
        choices=["local", "ray"],
        default="local",
        help=f"local: this process; ray: a Ray cluster's actors, {output_help}",
    )
    group.add_argument(
        "--address",
        default="auto",
        help="--engine ray: the cluster address (default: auto, the cluster "
        "this machine belongs to)",
    )
    group.add_argument(
        "--actors",
        type=int,
        default=2,
        help="--engine ray: encoding actors, each loads the model once (default: 2)",
    )
    group.add_argument(
        "--cpus-per-actor",
        type=float,
        default=0.5,
        help="--engine ray: CPUs each actor reserves (default: 0.5)",
    )
    group.add_argument(
        "--gpus-per-actor",
        type=float,
        default=0.0,
        help="--engine ray: GPUs each actor reserves (default: 0)",
    )
    group.add_argument(
        "--rows-per-batch",
        type=int,
        default=1024,
        help="--engine ray: rows per actor call (default: 1024)",
    )
    group.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="--engine ray: give up on a shard after this many seconds (default: no limit)",
    )


def run_on_ray(
    args: argparse.Namespace,
    source,
    output,
    *,
    column,
    id_column: str,
    prompt,
    dim,
    normalize: bool = True,
    model: str | None = None,
):
    from uniembed.errors import InputError
    from uniembed.scale.ray_embed import embed_with_ray

    given = {
        f"--{name.replace('_', '-')} {getattr(args, name)}"
        for name, default in (("backend", "torch"), ("precision", "fp32"), ("min_cosine", None))
        if getattr(args, name, default) != default
    }
    if given:  # Ray's actors load the model as the collection or the default says: torch fp32
        raise InputError(
            f"{', '.join(sorted(given))}: --engine ray encodes on torch fp32; drop the option or "
            "use --engine local"
        )
    return embed_with_ray(
        model if model is not None else args.model,
        source,
        output,
        address=args.address,
        actors=args.actors,
        column=column,
        id_column=id_column,
        prompt=prompt,
        dim=dim,
        normalize=normalize,
        batch_size=getattr(args, "batch_size", 32),
        rows_per_batch=args.rows_per_batch,
        cpus_per_actor=args.cpus_per_actor,
        gpus_per_actor=args.gpus_per_actor,
        timeout_s=args.timeout,
        show_progress=sys.stderr.isatty(),
    )


def run(args: argparse.Namespace) -> int:
    from uniembed.io import embed_file

    if args.engine == "ray":
        report = run_on_ray(
            args,
            args.input,
            args.output,
            column=args.column or "text",
            id_column=args.id_column,
            prompt=args.prompt,
            dim=args.dim,
            normalize=not args.no_normalize,
        )
        nodes = (
            ", ".join(f"{node}: {rows}" for node, rows in sorted(report.rows_per_node.items()))
            or "none"
        )
        print(
            f"encoded {len(report.shards_done)} shard(s), {report.rows} rows of dim {report.dim}, into {report.output} "
            f"in {report.seconds:.1f} s (rows per node: {nodes}); {len(report.shards_skipped)} shard(s) already done"
        )
        return 0
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
