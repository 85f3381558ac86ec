"""`uniembed upgrade plan|fit|backfill|status|finish|cancel COLLECTION`: move a collection to a new
model without re-indexing first (see uniembed.upgrade)."""

from __future__ import annotations

import argparse
import json
import sys


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "upgrade",
        help="move a collection to a new model: adapter first, background re-embedding, then switch",
        description="A model upgrade without downtime: `fit` an adapter new->old (searches with --model NEW work at "
        "once), `backfill` re-embeds every item in the background (resumable), `finish` switches the collection.",
    )
    steps = parser.add_subparsers(dest="step", required=True, metavar="STEP")

    plan = steps.add_parser("plan", help="cost estimate and a sample-based compatibility report")
    _collection_and_target(plan)
    plan.add_argument("--sample", type=int, default=1000, help="items sampled (default: 1000)")
    plan.add_argument("--json", action="store_true")
    plan.set_defaults(run=run_plan)

    fit = steps.add_parser(
        "fit", help="fit an adapter new->old on the collection's own texts; stored with it"
    )
    _collection_and_target(fit)
    fit.add_argument(
        "--pairs", type=int, default=5000, help="items (texts) to fit on (default: 5000)"
    )
    fit.add_argument(
        "--adapter",
        choices=["procrustes", "ridge", "mlp", "contrastive", "auto"],
        default="procrustes",
        help="procrustes (orthogonal), ridge (least squares, fine with few pairs), mlp, contrastive "
        "(Procrustes trained to rank each item first for sentences cut from it: for search; slower to "
        "fit), or auto (fits every kind, keeps the one that ranks held-out items best; slowest) "
        "(default: procrustes)",
    )
    fit.add_argument(
        "--texts",
        default=None,
        metavar="FILE",
        help="fit on these texts (one per line) instead of the collection's, embedded by both models",
    )
    fit.add_argument("--seed", type=int, default=0)
    fit.set_defaults(run=run_fit)

    backfill = steps.add_parser(
        "backfill", help="re-embed every item with the new model (resumable; one at a time)"
    )
    _collection_and_target(backfill)
    backfill.add_argument(
        "--batch-rows", type=int, default=256, help="items per atomic commit (default: 256)"
    )
    backfill.set_defaults(run=run_backfill)

    for name, what, run in (
        ("status", "done / remaining / adapter in use", run_status),
        (
            "finish",
            "switch the collection to the new model (after a complete backfill)",
            run_finish,
        ),
        ("cancel", "drop the upgrade in progress; the collection is untouched", run_cancel),
    ):
        step = steps.add_parser(name, help=what)
        step.add_argument("collection", help="collection folder")
        if name == "status":
            step.add_argument("--json", action="store_true")
        step.set_defaults(run=run)


def _collection_and_target(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("collection", help="collection folder")
    parser.add_argument(
        "--to",
        required=True,
        metavar="MODEL",
        help="the new model: a catalogue name or a model folder",
    )
    parser.add_argument("--backend", choices=["torch", "onnx", "openvino"], default="torch")
    parser.add_argument("--device", default=None)


def _open(args):
    from uniembed.store import Collection

    return Collection.open(args.collection)


def _target(args):
    from uniembed import load

    return load(args.to, backend=args.backend, device=args.device)


def run_plan(args: argparse.Namespace) -> int:
    from uniembed.upgrade.fit import plan

    report = plan(_open(args), _target(args), sample=args.sample, show_progress=sys.stderr.isatty())
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    for key, value in report.items():
        if key != "compatibility":
            print(f"{key}: {value}")
    print(
        "compatibility on held-out sample items (their vectors and sentences, mapped, must find the item's "
        "stored vector among the sample's):"
    )
    for name, scores in report["compatibility"].items():
        print(
            f"  {name}: "
            + (
                ", ".join(f"{k} {v}" for k, v in scores.items())
                if isinstance(scores, dict)
                else str(scores)
            )
        )
    return 0


def run_fit(args: argparse.Namespace) -> int:
    from uniembed.cli.common import read_lines
    from uniembed.upgrade.fit import fit

    texts = read_lines(args.texts, "--texts") if args.texts is not None else None
    card = fit(
        _open(args),
        _target(args),
        pairs=args.pairs,
        adapter=args.adapter,
        texts=texts,
        target=args.to,
        seed=args.seed,
        show_progress=sys.stderr.isatty(),
    )
    print(
        f"fitted a {card.kind} adapter {card.new_dim} -> {card.old_dim} dims on {card.pairs} pairs "
        f"(held-out cosine {card.holdout_cosine}, held-out MRR {card.settings.get('held_out_mrr')}); "
        f"search now with --model {args.to}"
    )
    if isinstance(card.settings.get("auto"), dict):
        print(
            "chosen by held-out MRR: "
            + ", ".join(f"{kind} {score}" for kind, score in card.settings["auto"].items())
        )
    return 0


def run_backfill(args: argparse.Namespace) -> int:
    from uniembed.upgrade.backfill import backfill

    status = backfill(
        _open(args), _target(args), batch_rows=args.batch_rows, show_progress=sys.stderr.isatty()
    )
    print(f"backfill: {status.done} of {status.items} items done, {status.remaining} remaining")
    return 0


def run_status(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from uniembed.upgrade.backfill import upgrade_status

    status = upgrade_status(_open(args))
    if args.json:
        print(json.dumps({**asdict(status), "complete": status.complete}, indent=2))
    else:
        print(
            f"upgrade to {status.target} ({status.target_fingerprint[:12]}): {status.done} of {status.items} items "
            f"done, {status.remaining} remaining; adapter: {status.adapter or 'none yet'}"
        )
    return 0


def run_finish(args: argparse.Namespace) -> int:
    from uniembed.upgrade.finish import finish

    done = finish(_open(args))
    print(
        f"{args.collection} now holds {done['items']} vectors of {done['model']} ({done['dim']} dims)"
    )
    return 0


def run_cancel(args: argparse.Namespace) -> int:
    from uniembed.upgrade.fit import cancel

    cancel(_open(args))
    print(f"upgrade of {args.collection} cancelled; the collection is as it was")
    return 0
