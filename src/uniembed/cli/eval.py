"""`uniembed eval TASK PATH`: evaluate a model on a data set, MTEB-style."""

from __future__ import annotations

import argparse
import json
import sys

from uniembed.cli.common import add_model_options, load_model

_PATH_HELP = {
    "sts": "STS Benchmark file (tab-separated) or csv/jsonl with sentence1, sentence2, score",
    "retrieval": "BEIR folder: corpus.jsonl, queries.jsonl, qrels/<split>.tsv",
    "classification": "folder with train and test files (csv/jsonl) holding text and label columns",
    "clustering": "csv/jsonl file with text and label columns",
    "pairs": "csv/jsonl file with sentence1, sentence2, label (0/1)",
    "zero-shot": "labelled images: an IDX folder (MNIST, Fashion-MNIST), a folder per class, or a jsonl/csv/parquet "
    "with image and label columns (and optionally split)",
    "image-retrieval": "image-caption pairs: a jsonl/csv/parquet with image and caption columns (and optionally split)",
    "mmeb": "candidate lists: a jsonl (or a folder holding one) of {query, candidates} rows, the first candidate "
    "positive, or MMEB's qry_text/qry_img_path/tgt_text/tgt_img_path rows",
}


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "eval",
        help="evaluate: sts, retrieval, classification, clustering, pairs, "
        "zero-shot, image-retrieval, mmeb, node-classification, link-prediction",
    )
    tasks = parser.add_subparsers(dest="task", required=True, metavar="TASK")
    for task, path_help in _PATH_HELP.items():
        sub = tasks.add_parser(
            task, help=path_help.split(":")[0], description=f"Evaluate on {path_help}."
        )
        sub.add_argument("path", help=path_help)
        _add_task_options(sub, task)
        sub.add_argument(
            "--name", default=None, help="task name in the results (default: from the path)"
        )
        sub.add_argument(
            "--json",
            action="store_true",
            help="print the MTEB-shaped JSON result instead of a table",
        )
        sub.add_argument(
            "--output-dir",
            default="results",
            help="where results/<model>/<task>.json go (default: results)",
        )
        sub.add_argument("--no-save", action="store_true", help="do not write the JSON result file")
        add_model_options(sub)
        sub.set_defaults(run=run)
    _add_graph_tasks(tasks)
    _add_compatibility(tasks)


def _add_compatibility(tasks) -> None:
    sub = tasks.add_parser(
        "compatibility",
        help="the BCT compatibility matrix of an old and a new model",
        description="C[query model][gallery model] for an upgrade old -> new: old/old, new/new, new "
        "queries against old vectors raw (same dims) and through adapters fitted on N gallery "
        "texts. 'compatible' when C[query][old] > C[old][old].",
    )
    sub.add_argument(
        "path",
        help="a BEIR folder (retrieval, nDCG@10) or a folder with train and test files "
        "(kNN classification, accuracy)",
    )
    sub.add_argument(
        "--old", required=True, metavar="MODEL", help="the model that made the gallery"
    )
    sub.add_argument("--new", required=True, metavar="MODEL", help="the model to upgrade to")
    sub.add_argument(
        "--adapter",
        action="append",
        choices=["procrustes", "ridge", "mlp", "contrastive", "auto"],
        default=None,
        help="adapter(s) to fit (repeatable; default: procrustes and ridge)",
    )
    sub.add_argument(
        "--pairs",
        default="500,2000,5000",
        help="pair counts, comma-separated (default: 500,2000,5000)",
    )
    sub.add_argument("--seed", type=int, default=0)
    sub.add_argument("--json", action="store_true")
    sub.set_defaults(run=run_compatibility)


def run_compatibility(args: argparse.Namespace) -> int:
    from uniembed import load
    from uniembed.errors import InputError
    from uniembed.upgrade.compat import compatibility_matrix

    try:
        pairs = tuple(int(part) for part in args.pairs.split(",") if part.strip())
    except ValueError:
        raise InputError(
            f"--pairs takes integers separated by commas, got {args.pairs!r}"
        ) from None
    rows = compatibility_matrix(
        load(args.old),
        load(args.new),
        args.path,
        adapters=tuple(args.adapter or ("procrustes", "ridge")),
        pairs=pairs,
        seed=args.seed,
        show_progress=sys.stderr.isatty(),
    )
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    from uniembed.eval.report import markdown_rows

    print(markdown_rows(rows))
    return 0


def _add_graph_tasks(tasks) -> None:
    """The graph tasks evaluate FastRP embeddings of a graph folder (same as `uniembed graph eval`)."""
    from uniembed.cli.graph import add_graph_eval_options, run_eval

    for task, what in (
        ("node-classification", "logistic regression on FastRP embeddings"),
        ("link-prediction", "held-out edges against non-edges, ROC AUC"),
    ):
        sub = tasks.add_parser(
            task,
            help=f"graph: {what}",
            description=f"Graph {task} ({what}) on FOLDER: edges.csv, "
            "nodes.csv (node,label), optional split.json and features.npz, e.g. ../shared/data/cora.",
        )
        sub.add_argument("folder")
        add_graph_eval_options(sub)
        sub.set_defaults(run=run_eval)


def _add_task_options(parser: argparse.ArgumentParser, task: str) -> None:
    if task in ("retrieval", "classification", "zero-shot", "image-retrieval"):
        parser.add_argument("--split", default="test", help="split to evaluate (default: test)")
    if task in ("classification", "clustering"):
        parser.add_argument("--text-column", default="text", help="(default: text)")
        parser.add_argument(
            "--label-column", default=None, help="(default: label, category, intent or labels)"
        )
        parser.add_argument("--seed", type=int, default=42, help="(default: 42)")
    if task == "classification":
        parser.add_argument("--n-experiments", type=int, default=10, help="(default: 10, as MTEB)")
        parser.add_argument(
            "--samples-per-label", type=int, default=8, help="(default: 8, as MTEB)"
        )
    if task in ("zero-shot", "image-retrieval"):
        parser.add_argument(
            "--image-column",
            default=None,
            help="(default: image, png, jpg, img, image_path or path)",
        )
        parser.add_argument(
            "--limit", type=int, default=None, help="evaluate the first N images only"
        )
    if task == "zero-shot":
        parser.add_argument(
            "--label-column", default=None, help="(default: label, category, class or labels)"
        )
        parser.add_argument(
            "--template",
            action="append",
            dest="templates",
            default=None,
            help="a prompt template with {} for the class name (repeat; default: six of CLIP's)",
        )
        parser.add_argument(
            "--classes", default=None, help="class names, comma-separated, in label order"
        )
    if task == "image-retrieval":
        parser.add_argument(
            "--text-column", default=None, help="(default: caption, text, title or keywords)"
        )
    if task == "mmeb":
        parser.add_argument(
            "--image-weight",
            type=float,
            default=0.5,
            help="image share of image+text items (default: 0.5)",
        )
        parser.add_argument("--seed", type=int, default=42, help="tie-breaking seed (default: 42)")


_TASK_OPTIONS = (
    "split",
    "text_column",
    "label_column",
    "seed",
    "n_experiments",
    "samples_per_label",
    "image_column",
    "limit",
    "templates",
    "classes",
    "image_weight",
)


def run(args: argparse.Namespace) -> int:
    from uniembed.eval import evaluate, format_table, save_result

    model = load_model(args)
    options = {key: getattr(args, key) for key in _TASK_OPTIONS if hasattr(args, key)}
    if isinstance(options.get("classes"), str):
        options["classes"] = [name.strip() for name in options["classes"].split(",")]
    result = evaluate(
        model,
        args.task,
        args.path,
        name=args.name,
        batch_size=args.batch_size,
        show_progress=sys.stderr.isatty(),
        **options,
    )
    saved = None if args.no_save else save_result(result, args.output_dir)
    if args.json:
        print(json.dumps(result.to_mteb(), indent=2))
    else:
        print(format_table([result]))
        if saved:
            print(f"saved {saved}")
    return 0
