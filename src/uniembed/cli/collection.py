"""`uniembed collection ...` and `uniembed search`: thin shells over uniembed.store."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict

from uniembed.cli.common import add_backend_options, backend_options, say_auto_choice
from uniembed.cli.embed import add_engine_options, run_on_ray


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "collection", help="create, fill, inspect and maintain a collection"
    )
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

    create = sub.add_parser("create", help="make a new, empty collection folder")
    create.add_argument("path")
    create.add_argument(
        "--model",
        default="default",
        help="model for texts: default, a name, a path, or 'none' for vectors only",
    )
    create.add_argument(
        "--dim",
        type=int,
        default=None,
        help="vector dimension (vectors-only), or Matryoshka truncation",
    )
    create.add_argument("--index", choices=["exact", "hnsw", "ivfpq"], default="exact")
    create.add_argument("--quantize", choices=["none", "int8", "binary"], default="none")
    create.add_argument(
        "--field", action="append", default=None, help="a named vector field (repeat for several)"
    )
    images = create.add_argument_group("images (with an image model: CLIP, SigLIP, a bound model)")
    images.add_argument(
        "--images",
        choices=["bytes", "path"],
        default=None,
        help="keep each item's image: its bytes in the collection, or its path under --image-root",
    )
    images.add_argument(
        "--image-root",
        default=None,
        help="--images path: the folder image paths live in (default: the collection)",
    )
    images.add_argument(
        "--max-image-bytes",
        type=int,
        default=None,
        help="--images bytes: largest image kept (default: 4 MiB)",
    )
    create.add_argument(
        "--relative-anchors",
        default=None,
        metavar="FILE",
        help="store each vector as its cosines to these anchor texts (one per line): any later model "
        "that embeds them searches the collection with no adapter (--model NEW on search)",
    )
    multi = create.add_argument_group("multi-vector (late interaction)")
    multi.add_argument(
        "--multivector",
        choices=["muvera"],
        default=None,
        help="keep each item's token vectors and their MUVERA FDE; search = FDE candidates + exact MaxSim",
    )
    multi.add_argument(
        "--token-storage",
        choices=["float16", "int8"],
        default="float16",
        help="token vector storage: float16 (2 bytes/dim) or int8 (1 byte/dim + 4 per token)",
    )
    multi.add_argument(
        "--fde-repetitions", type=int, default=20, help="FDE repetitions R (default: 20)"
    )
    multi.add_argument(
        "--fde-k-sim", type=int, default=5, help="SimHash hyperplanes per repetition (default: 5)"
    )
    multi.add_argument(
        "--fde-d-proj", type=int, default=16, help="inner projection dims, 0 for none (default: 16)"
    )
    multi.add_argument(
        "--fde-final-dim",
        type=int,
        default=None,
        help="final random projection dims (default: none)",
    )
    multi.add_argument("--fde-seed", type=int, default=42)
    create.set_defaults(run=run_create)

    add = sub.add_parser(
        "add", help="embed and add the records of a jsonl/csv/parquet file, or a folder of images"
    )
    add.add_argument("path")
    add.add_argument(
        "file",
        help="jsonl/csv/parquet records, or (image collections) a folder of images: ids are relative paths",
    )
    add.add_argument("--id-field", default="id", help="(default: id)")
    add.add_argument(
        "--text",
        default="text",
        help="text field(s), comma-separated, joined by a space (default: text)",
    )
    add.add_argument(
        "--payload-fields",
        default=None,
        help="comma-separated payload fields (default: all other fields)",
    )
    add.add_argument(
        "--image-field",
        default=None,
        help="image collections: the field holding each image: a path relative to the file, a data URI or bytes "
        "(default: image, when present); the text fields are then captions",
    )
    add.add_argument(
        "--upsert",
        action="store_true",
        help="replace items whose id exists instead of refusing them",
    )
    add.add_argument(
        "--batch-rows", type=int, default=2048, help="rows per atomic commit (default: 2048)"
    )
    add_engine_options(
        add, output_help="then the collection ingests its vectors (text and payloads from FILE)"
    )
    add.set_defaults(run=run_add)

    info = sub.add_parser(
        "info", help="count, model fingerprint, index, bytes per vector, disk use"
    )
    info.add_argument("path")
    info.add_argument("--json", action="store_true")
    info.set_defaults(run=run_info)

    delete = sub.add_parser("delete-items", help="delete items by id")
    delete.add_argument("path")
    delete.add_argument("ids", nargs="+")
    delete.set_defaults(run=run_delete)

    rebuild = sub.add_parser("rebuild", help="compact the store and rebuild the indexes")
    rebuild.add_argument("path")
    rebuild.set_defaults(run=run_rebuild)

    search = commands.add_parser("search", help="search a collection by text, image, or both")
    search.add_argument("path")
    search.add_argument(
        "query",
        nargs="?",
        default=None,
        help="the text query (with --image: the text part of the query)",
    )
    search.add_argument(
        "--image",
        default=None,
        help="an image file to search by (image collections or image models)",
    )
    search.add_argument(
        "--image-weight",
        type=float,
        default=0.5,
        help="with --image and a text: w*image + (1-w)*text, renormalised (default: 0.5)",
    )
    search.add_argument("-k", type=int, default=10, help="number of hits (default: 10)")
    search.add_argument(
        "--filter",
        default=None,
        help="e.g. 'lang=en and year>=2020', 'tag in (a,b)', 'exists(author)'",
    )
    search.add_argument("--mode", choices=["dense", "text", "hybrid"], default="dense")
    search.add_argument("--field", default=None, help="vector field to search (default: the first)")
    search.add_argument("--json", action="store_true")
    search.add_argument(
        "--first-stage",
        choices=["fde", "exact", "tokens"],
        default=None,
        help="multi-vector collections: what MaxSim reranks: FDE candidates (default), every item, "
        "or the per-token heuristic",
    )
    search.add_argument(
        "--candidates",
        type=int,
        default=None,
        help="FDE candidates to rerank (default: max(k, 100))",
    )
    search.add_argument(
        "--token-hits",
        type=int,
        default=None,
        help="per-token heuristic: hits per query token (default: 10)",
    )
    server = search.add_argument_group("collections on a server (postgresql://, milvus://)")
    server.add_argument(
        "--read-from",
        action="append",
        default=[],
        metavar="URL",
        help="PostgreSQL: search this read replica instead of the primary (repeatable: round robin)",
    )
    server.add_argument(
        "--search-param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="search-time setting, e.g. ef_search=200, nprobe=64, rescore=10 (repeatable)",
    )
    model = search.add_argument_group("model (default: the collection's own)")
    model.add_argument(
        "--model",
        "-m",
        default=None,
        help="encode the query with this model instead; it must make the collection's vectors (same "
        "fingerprint), e.g. the same model on another backend, or an image model bound to it; "
        "or be the target of an upgrade with a fitted adapter; any model for a collection "
        "created with --relative-anchors",
    )
    add_backend_options(model)
    model.add_argument("--device", default=None)
    search.set_defaults(run=run_search)


def _open_for_search(args, model):
    """The collection, opened with the server options the command line gives (checked here, so a
    folder or a Milvus collection refuses what it cannot use by name)."""
    from uniembed.errors import InputError
    from uniembed.store import Collection
    from uniembed.store.homes import home_of, is_server_location

    if not is_server_location(args.path):
        if args.read_from or args.search_param:
            raise InputError(
                "--read-from and --search-param apply to collections on a server (postgresql://, milvus://)"
            )
        return Collection.open(args.path, model=model)
    server = home_of(args.path)
    options = {}
    if args.read_from:
        if not server.supports("read_replicas"):
            raise InputError(
                f"--read-from: read replicas are a PostgreSQL feature, not {server.backend_name}'s"
            )
        options["read_from"] = args.read_from
    if args.search_param:
        options["search_params"] = dict(_search_param(value) for value in args.search_param)
    return server.open(args.path, model=model, **options)


def _search_param(value: str) -> tuple[str, int]:
    from uniembed.errors import InputError

    key, sep, number = value.partition("=")
    if not sep or not key or not number.strip().isdigit():
        raise InputError(f"--search-param takes KEY=INTEGER (e.g. ef_search=200), got {value!r}")
    return key.strip(), int(number)


def _split(value: str | None) -> list[str] | None:
    return [part.strip() for part in value.split(",") if part.strip()] if value else None


def run_create(args: argparse.Namespace) -> int:
    from uniembed.cli.common import read_lines
    from uniembed.store import Collection

    model = None if args.model == "none" else args.model
    multi = {}
    if args.multivector:
        fde = {
            "repetitions": args.fde_repetitions,
            "k_sim": args.fde_k_sim,
            "d_proj": args.fde_d_proj or None,
            "final_dim": args.fde_final_dim,
            "seed": args.fde_seed,
        }
        multi = {"multivector": args.multivector, "fde": fde, "token_storage": args.token_storage}
    anchors = (
        read_lines(args.relative_anchors, "--relative-anchors") if args.relative_anchors else None
    )
    col = Collection.create(
        args.path,
        model=model,
        dim=args.dim,
        fields=args.field,
        index=args.index,
        quantize=args.quantize,
        images=args.images,
        image_root=args.image_root,
        max_image_bytes=args.max_image_bytes,
        relative_anchors=anchors,
        **multi,
    )
    relative = f", relative to {len(anchors)} anchors" if anchors else ""
    print(
        f"created {col.path}: model {col.meta.model}, fields {col.meta.fields}, index {col.meta.index}{relative}"
    )
    return 0


def run_add(args: argparse.Namespace) -> int:
    from uniembed.store import Collection
    from uniembed.store.ingest import add_file

    col = Collection.open(args.path)
    options = dict(
        id_field=args.id_field,
        text_fields=_split(args.text),
        payload_fields=_split(args.payload_fields),
        image_field=args.image_field,
        upsert=args.upsert,
        batch_rows=args.batch_rows,
        show_progress=sys.stderr.isatty(),
    )
    if args.engine == "ray":
        report = _add_with_ray(args, col, options)
    else:
        report = add_file(col, args.file, **options)
    print(
        f"added {report.rows} items in {report.batches} commits; {len(col)} items now (version {report.version})"
    )
    return 0


def _add_with_ray(args: argparse.Namespace, col, options: dict):
    """Ray encodes FILE into a temporary folder (model and settings of the collection), then the
    collection ingests those vectors with FILE's texts and payloads."""
    import tempfile
    from pathlib import Path

    import numpy as np

    from uniembed.errors import InputError
    from uniembed.scale.ray_embed import read_vectors
    from uniembed.store.ingest import add_file

    if col.relative_anchors is not None:
        raise InputError(
            f"{col.path} stores relative vectors; --engine ray encodes the model's own: add with the "
            "local engine"
        )
    if col.meta.model is None:
        raise InputError(
            f"collection {col.path} holds vectors only (no model): there is nothing for Ray to encode with"
        )
    if col.images is not None or col.multivector is not None:
        raise InputError("--engine ray encodes texts into single-vector collections")
    with tempfile.TemporaryDirectory(prefix="uniembed-ray-add-") as tmp:
        report = run_on_ray(
            args,
            args.file,
            Path(tmp) / "vectors",
            column=options["text_fields"] or ["text"],
            id_column=options["id_field"],
            prompt="document",
            dim=col.meta.dim,
            model=col.meta.model,
        )
        col.model  # noqa: B018 - loads the collection's model here and checks its fingerprint, as Ray's actors did theirs
        table = read_vectors(Path(tmp) / "vectors")
        vectors = dict(
            zip(
                table.column("id").to_pylist(),
                np.stack(table.column("embedding").to_numpy(zero_copy_only=False)),
            )
        )
    print(f"Ray encoded {report.rows} rows in {report.seconds:.1f} s", file=sys.stderr)
    return add_file(col, args.file, vectors=vectors, **options)


def run_info(args: argparse.Namespace) -> int:
    from uniembed.store import Collection

    info = Collection.open(args.path).info()
    if args.json:
        print(json.dumps(asdict(info), indent=2))
        return 0
    rows = [
        ("items", info.count),
        ("model", info.model),
        ("fingerprint", info.fingerprint),
        ("fields", info.fields),
        ("index", f"{info.index} {info.index_params or ''}".strip()),
        ("quantize", info.quantize),
        ("bytes/vector", f"{info.bytes_per_vector:.1f} (first search stage)"),
        ("disk", f"{info.disk_bytes / 1e6:.2f} MB"),
        ("version", info.version),
        ("payload fields", info.payload_fields),
    ]
    if info.multivector:
        per_item = (
            f"{info.token_bytes_per_item / 1024:.1f} KiB/item"
            if info.token_bytes_per_item
            else "no items"
        )
        rows.append(("multivector", f"{info.multivector['method']} {info.multivector['fde']}"))
        rows.append(
            (
                "token vectors",
                f"{info.multivector['token_dim']} dims, {info.multivector['storage']}, {per_item}",
            )
        )
    images = info.images
    if images:
        kept = (
            f"bytes (up to {images['max_bytes']} each)"
            if images["storage"] == "bytes"
            else f"paths under {images['root'] or args.path}"
        )
        rows.append(("images", kept))
    for name, value in rows:
        print(f"{name:>14}: {value}")
    return 0


def run_delete(args: argparse.Namespace) -> int:
    from uniembed.store import Collection

    col = Collection.open(args.path)
    version = col.delete(args.ids)
    print(f"deleted up to {len(args.ids)} items; {len(col)} items now (version {version})")
    return 0


def run_rebuild(args: argparse.Namespace) -> int:
    from uniembed.store import Collection

    version = Collection.open(args.path).rebuild()
    print(f"compacted and rebuilt (version {version})")
    return 0


def run_search(args: argparse.Namespace) -> int:
    from uniembed.errors import InputError

    if args.query is None and args.image is None:
        raise InputError("give a text query, --image FILE, or both")
    model = None
    if args.model is not None:
        from uniembed import load

        model = load(args.model, device=args.device, **backend_options(args))
        say_auto_choice(model)
    col = _open_for_search(args, model)
    hits = col.search(
        args.query,
        k=args.k,
        filter=args.filter,
        field=args.field,
        mode=args.mode,
        first_stage=args.first_stage,
        candidates=args.candidates,
        token_hits=args.token_hits,
        image=args.image,
        image_weight=args.image_weight,
    )
    if args.json:
        print(json.dumps([asdict(hit) for hit in hits], indent=2))
        return 0
    texts = {item.id: item.text for item in col.get([h.id for h in hits]) if item} if hits else {}
    for rank, hit in enumerate(hits, start=1):
        snippet = (texts.get(hit.id) or "")[:100]
        print(f"{rank:>3}. {hit.score:.4f}  {hit.id}  {snippet}")
        if hit.payload:
            print(f"       {json.dumps(hit.payload, ensure_ascii=False)[:200]}")
    if not hits:
        print("no hits")
    return 0
