"""Run the benchmarks and print each as a markdown table.

    python -m bench.run                      # all but the 1M-vector scale run
    python -m bench.run --only collection    # one part (see BENCHES below); the default run is scores,
                                             # encode, collection, durability, ingest, serve, fairness
    python -m bench.run --only scores --json bench/tables   # also write bench/tables/scores.json

The README's result tables are rendered from bench/tables/*.json by `python -m bench.report`
(see its docstring); a test fails when they differ, so rerun the bench rather than edit a table.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import uniembed
from bench.report import markdown_table, write_results


def _scores(model, args):
    from bench import reference_scores

    return reference_scores.run(model)


def _collection(model, args):
    from bench import collection_quality

    return collection_quality.run(model)


def _scale(model, args):
    from bench import scale_speed

    return scale_speed.run(model, n=args.scale_n)


def _durability(model, args):
    from bench import durability

    return [
        durability.run(rounds=50, batch=20, max_wait=2.5, seed=0, kind=kind)
        for kind in durability.KINDS
    ]


def _ingest(model, args):
    from bench import ingest

    return ingest.run(rows=1_000_000, dim=384, batch=2048, rounds=3)


def _encode(model, args):
    from bench import encode

    return encode.run()  # several tables: one per workload


def _encode_peers(model, args):
    from bench import encode_peers

    return encode_peers.run()


def _encode_rerun(model, args):
    from bench import encode

    return encode.rerun()


def _encode_rerun_documents(model, args):
    from bench import encode

    return encode.rerun("SciFact documents")


def _query_latency(model, args):
    from bench import query_latency

    return query_latency.run()


def _serve(model, args):
    from bench import serve_load

    return serve_load.run(
        seconds=20, soak=0, server_args=[]
    )  # the 10-minute soak: serve_load.py --soak 600


def _fairness(model, args):
    from bench import serve_fairness

    return serve_fairness.run(rounds=2)


def _graph(model, args):
    from bench import graph

    return {
        **graph.cora_rows(),
        "Multi-label scoring speed (10,312 nodes, 39 labels, 128 dims)": graph.multilabel_rows(),
        "FastRP at scale": [graph.scale_row(1_000_000, 10_000_000, 256)],
    }


def _train(model, args):
    from bench import train

    tables = {}
    for name, demo in train.DEMOS.items():
        result = demo(1, 1) if name == "scifact" else demo(train.EPOCHS[name])
        tables.update(result if isinstance(result, dict) else {f"Fine-tuning: {name}": result})
    return tables


def _multivector(model, args):
    from bench import multivector

    return multivector.run()


def _bind(model, args):
    from bench import bind

    return bind.run(ship=args.ship)


def _scale_out(model, args):
    from bench import scale

    return scale.run(model)


def _upgrade(model, args):
    from bench import upgrade

    return upgrade.run(model)


def _upgrade_live(model, args):
    from bench import upgrade

    return upgrade.run_live(model)


def _page_map(model, args):
    from bench import page

    return page.run(model)


def _open_vocab_anchor(model, args):
    from bench import open_vocab_anchor

    return open_vocab_anchor.run()


def _encode_stages(model, args):
    from bench import encode_stages

    return encode_stages.run()


def _images(model, args):
    from bench import images

    return images.run()


def _image_requests(model, args):
    from bench import image_requests

    return image_requests.run()


def _select_static(model, args):
    from bench import select_static

    return select_static.run()


def _select_int8(model, args):
    from bench import select_int8

    return select_int8.run()


def _select_head_epochs(model, args):
    from bench import select_head_epochs

    return select_head_epochs.run()


BENCHES = {
    "scores": ("MTEB reference scores, all-MiniLM-L6-v2", _scores),
    "collection": ("SciFact quality vs memory, per collection configuration", _collection),
    "scale": ("Speed at scale vs raw FAISS", _scale),
    "durability": ("Durability under kill -9", _durability),
    "ingest": ("Ingest through a live, searched collection vs a bulk load", _ingest),
    "encode": ("Encoding backends vs sentence-transformers", _encode),
    "encode-peers": (
        "Encoding against sentence-transformers' own backends (about 30 minutes)",
        _encode_peers,
    ),
    "encode-rerun": ("Encoding: short texts rerun against the committed run", _encode_rerun),
    "encode-rerun-documents": (
        "Encoding: documents rerun against the committed run",
        _encode_rerun_documents,
    ),
    "query-latency": ("Text-query latency against its parts, per backend", _query_latency),
    "serve": ("HTTP service under load, batching on vs off", _serve),
    "fairness": ("HTTP service: a short request behind a long one", _fairness),
    "graph": ("Graph embeddings: FastRP vs node2vec on Cora, and at scale", _graph),
    "train": ("Fine-tuning demonstrations (about 25 minutes)", _train),
    "select-static": (
        "Static model: refinement and SIF smoothing chosen on dev splits",
        _select_static,
    ),
    "select-int8": ("ONNX int8 recipe chosen on dev text", _select_int8),
    "select-head-epochs": (
        "train-head: epochs chosen on SciFact validation claims",
        _select_head_epochs,
    ),
    "multivector": (
        "Multi-vector retrieval on SciFact: MaxSim, FDE, per-token heuristic",
        _multivector,
    ),
    "images": ("Image encoding vs transformers' own pipeline, and memory", _images),
    "image-requests": ("Peak memory of requests full of large images", _image_requests),
    "encode-stages": ("Where encoding time goes, per backend", _encode_stages),
    "bind": ("Binding: image-mini, open vocabulary, a projector", _bind),
    "open-vocab-anchor": (
        "Open vocabulary: what the frozen anchor says about the left-out prompts",
        _open_vocab_anchor,
    ),
    "scale-out": (
        "Scale-out: Ray encoding, PostgreSQL + pgvector and Milvus homes (about 25 minutes, root)",
        _scale_out,
    ),
    "upgrade": (
        "Model upgrades: compatibility matrix, relative representations (about 25 minutes)",
        _upgrade,
    ),
    "upgrade-live": (
        "Model upgrades: a live upgrade under SIGKILL (about 15 minutes)",
        _upgrade_live,
    ),
    "page-map": ("The web page's map of a 1,000,000-item collection (about 5 minutes)", _page_map),
}
DEFAULT = ("scores", "encode", "collection", "durability", "ingest", "serve", "fairness")


def print_tables(tables: dict[str, list[dict]]) -> None:
    """Each table as a markdown section, flushed as it comes (long benches print as they go)."""
    for title, rows in tables.items():
        print(f"\n### {title}\n\n{markdown_table(rows)}", flush=True)


def _nondefault_options(args, name: str) -> str:
    options = {"scale_n": ("scale", 1_000_000)}
    return "".join(
        f" --{key.replace('_', '-')} {getattr(args, key)}"
        for key, (bench, default) in options.items()
        if bench == name and getattr(args, key) != default
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", choices=sorted(BENCHES), action="append", default=None)
    parser.add_argument("--scale-n", type=int, default=1_000_000)
    parser.add_argument(
        "--ship", action="store_true", help="bind: copy this run's image-mini into the package"
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=None,
        metavar="FOLDER",
        help="also write each bench's tables to FOLDER/<bench>.json (the README renders bench/tables)",
    )
    args = parser.parse_args()
    model = uniembed.load(device="cpu")
    tables = {}
    for name in args.only or DEFAULT:
        title, bench = BENCHES[name]
        result = bench(model, args)
        produced = result if isinstance(result, dict) else {title: result}
        tables.update(produced)
        print_tables(produced)
        if args.json:
            command = f"python -m bench.run --only {name}" + _nondefault_options(args, name)
            print(f"(written to {write_results(args.json, name, command, produced)})", flush=True)
    failed = [row for rows in tables.values() for row in rows if row.get("ok") is False]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
