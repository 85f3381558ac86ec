"""`uniembed graph embed|eval`: FastRP node embeddings from an edge list, and their evaluation."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "graph", help="graph node embeddings (FastRP): embed an edge list, evaluate"
    )
    sub = parser.add_subparsers(dest="graph_command", required=True, metavar="COMMAND")
    embed = sub.add_parser(
        "embed",
        help="embed the nodes of an edge list",
        description="FastRP embeddings of every node of EDGES (csv/tsv/parquet with source, target "
        "and optionally a weight column), written with their node ids.",
    )
    embed.add_argument("edges", help="edge list file")
    embed.add_argument(
        "--out",
        default=None,
        help="nodes.parquet (id, vector) or .npy (vectors in id order, ids beside)",
    )
    embed.add_argument(
        "--collection",
        default=None,
        metavar="DIR",
        help="store the node vectors in a (new or existing vectors-only) collection instead",
    )
    _add_fastrp_options(embed)
    embed.add_argument("--source", default="source", help="(default: source)")
    embed.add_argument("--target", default="target", help="(default: target)")
    embed.add_argument("--weight", default=None, help="weight column (default: unweighted)")
    embed.add_argument(
        "--directed", action="store_true", help="keep edge directions (default: undirected)"
    )
    embed.add_argument(
        "--nodes",
        default=None,
        help="node file (csv/jsonl/parquet) with an id column and texts "
        "(default for --features: nodes.csv beside the edge list)",
    )
    embed.add_argument(
        "--id-column", default=None, help="id column of --nodes (default: id, else node)"
    )
    embed.add_argument(
        "--features",
        default=None,
        metavar="COLUMN",
        help="embed this text column of --nodes with --model and mix it in (property ratio); "
        "the texts are stored in --collection too, for text search",
    )
    embed.add_argument(
        "--model", default=None, help="text model for --features (default: all-MiniLM-L6-v2)"
    )
    embed.set_defaults(run=run_embed)

    evaluate = sub.add_parser(
        "eval",
        help="node classification or link prediction on a graph folder",
        description="Evaluate FastRP on FOLDER (edges.csv, nodes.csv, optional split.json and "
        "features.npz), e.g. ../shared/data/cora.",
    )
    evaluate.add_argument("task", choices=["node-classification", "link-prediction"])
    evaluate.add_argument("folder")
    add_graph_eval_options(evaluate)
    evaluate.set_defaults(run=run_eval)


def add_graph_eval_options(parser: argparse.ArgumentParser) -> None:
    """Options of `uniembed graph eval` and of the graph tasks of `uniembed eval`."""
    parser.add_argument(
        "--features", action="store_true", help="mix in features.npz (property ratio)"
    )
    parser.add_argument(
        "--decision",
        choices=["top-k", "threshold"],
        default="top-k",
        help="multi-label labels only: give each test node its k top-ranked labels, k its true "
        "count (DeepWalk's protocol, comparable with published tables; the default), or every "
        "label with probability > 0.5",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=10,
        help="random splits (shuffles per train fraction for multi-label) without split.json (default: 10)",
    )
    _add_fastrp_options(parser)


def _add_fastrp_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("FastRP (defaults: the paper's settings)")
    group.add_argument("--dim", type=int, default=512, help="(default: 512)")
    group.add_argument(
        "--iteration-weights", default="0,0,1,6.67", help="comma-separated (default: 0,0,1,6.67)"
    )
    group.add_argument(
        "--beta", type=float, default=-0.64, help="degree normalisation strength (default: -0.64)"
    )
    group.add_argument("--self-influence", type=float, default=0.0, help="(default: 0)")
    group.add_argument(
        "--sparsity",
        type=float,
        default=3.0,
        help="s of the random projection (default: 3, as GDS)",
    )
    group.add_argument(
        "--property-ratio",
        type=float,
        default=0.75,
        help="share of dims from features (default: 0.75)",
    )
    group.add_argument("--seed", type=int, default=42)


def config_from_args(args: argparse.Namespace, *, with_features: bool | None = None):
    from uniembed.errors import InputError
    from uniembed.graph.fastrp import FastRPConfig

    try:
        weights = [float(w) for w in args.iteration_weights.split(",")]
    except ValueError:
        raise InputError(
            f"--iteration-weights must be comma-separated numbers, got {args.iteration_weights!r}"
        ) from None
    return FastRPConfig(
        dim=args.dim,
        iteration_weights=weights,
        normalization_strength=args.beta,
        self_influence=args.self_influence,
        sparsity=args.sparsity,
        seed=args.seed,
        property_ratio=args.property_ratio
        if (with_features if with_features is not None else getattr(args, "features", False))
        else 0.0,
    )


def run_embed(args: argparse.Namespace) -> int:
    import time

    from uniembed.errors import InputError
    from uniembed.graph import embed_edges, write_node_vectors

    if (args.out is None) == (args.collection is None):
        raise InputError("give exactly one of --out FILE or --collection DIR")
    if args.features and not args.nodes:
        beside = Path(args.edges).with_name("nodes.csv")
        if not beside.is_file():
            raise InputError(
                f"--features needs --nodes (a file with the node ids and their texts); there is no {beside}"
            )
        args.nodes = str(beside)
    started = time.perf_counter()
    node_ids, texts = _node_texts(args) if args.features else (None, None)
    config = config_from_args(args, with_features=bool(args.features))
    ids, vectors = embed_edges(
        args.edges,
        config,
        source=args.source,
        target=args.target,
        weight=args.weight,
        directed=args.directed,
        node_texts=(node_ids, texts),
        model=args.model,
    )
    seconds = time.perf_counter() - started
    if args.out:
        write_node_vectors(args.out, ids, vectors)
        where = args.out
    else:
        from uniembed.graph import store_in_collection

        by_id = dict(zip(node_ids, texts)) if texts is not None else {}
        store_in_collection(
            args.collection,
            ids,
            vectors,
            texts=[by_id.get(str(i)) for i in ids.tolist()] if by_id else None,
        )
        where = f"collection {args.collection}"
    print(f"embedded {len(ids)} nodes ({vectors.shape[1]} dims) in {seconds:.2f} s -> {where}")
    return 0


def _node_texts(args) -> tuple[list[str], list[str]]:
    from uniembed.errors import InputError
    from uniembed.io.records import iter_records

    ids, texts = [], []
    for where, record in iter_records(args.nodes):
        id_column = args.id_column or next(
            (c for c in ("id", "node") if isinstance(record, dict) and c in record), "id"
        )
        if not isinstance(record, dict) or id_column not in record or args.features not in record:
            raise InputError(f"{where}: needs the columns {id_column!r} and {args.features!r}")
        ids.append(str(record[id_column]))
        texts.append(str(record[args.features] or ""))
    return ids, texts


def run_eval(args: argparse.Namespace) -> int:
    from uniembed.errors import InputError
    from uniembed.graph.evaluate import evaluate_folder

    task = getattr(args, "task", None)
    if args.repeats < 1:
        raise InputError(f"--repeats must be at least 1, got {args.repeats}")
    result = evaluate_folder(
        args.folder,
        task,
        config_from_args(args),
        use_features=args.features,
        decision=args.decision,
        repeats=args.repeats,
    )
    by_fraction = result.pop("by_fraction", None)
    for key, value in result.items():
        if value is not None:
            print(f"{key:>14}: {value:.4f}" if isinstance(value, float) else f"{key:>14}: {value}")
    if by_fraction:
        print("train fraction   micro F1 (std)     macro F1 (std)")
        for row in by_fraction:
            print(
                f"{row['train_fraction']:>14.0%}   {row['micro_f1']:.4f} ({row['micro_f1_std']:.4f})   "
                f"{row['macro_f1']:.4f} ({row['macro_f1_std']:.4f})"
            )
    return 0
