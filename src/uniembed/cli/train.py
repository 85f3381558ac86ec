"""`uniembed train`: fine-tune a model (a thin shell over uniembed.train.train)."""

from __future__ import annotations

import argparse

LOSSES = ("mnrl", "cached-mnrl", "gist", "triplet", "cosent")


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "train",
        help="fine-tune a model on pairs, triplets, labelled texts, scored pairs or a BEIR folder",
        description="Fine-tune BASE on DATA and save the best model (by the first --eval task) as a "
        "sentence-transformers directory. Interrupted runs continue where they stopped when run again.",
    )
    parser.add_argument(
        "--base", default="default", help="model to start from (default: all-MiniLM-L6-v2)"
    )
    parser.add_argument(
        "--data",
        required=True,
        help="jsonl/csv/parquet examples, an STS file (cosent) or a BEIR folder",
    )
    parser.add_argument("-o", "--output", required=True, help="folder for the trained model")
    parser.add_argument("--loss", choices=LOSSES, default="mnrl", help="(default: mnrl)")
    parser.add_argument(
        "--hard-negatives",
        default=None,
        metavar="mine:K",
        help="mine K hard negatives per anchor from the corpus with the base model",
    )
    parser.add_argument(
        "--guide", default=None, help="guide model for --loss gist (also filters mined negatives)"
    )
    parser.add_argument(
        "--matryoshka",
        default=None,
        metavar="D1,D2,...",
        help="train every prefix of these sizes, largest first, e.g. 384,256,128,64,32",
    )
    parser.add_argument(
        "--eval",
        action="append",
        default=[],
        metavar="TASK:PATH",
        help="evaluate during training, e.g. sts:../shared/data/stsb/sts-dev.csv (repeatable)",
    )
    parser.add_argument(
        "--eval-every", type=int, default=0, help="steps between evaluations (default: each epoch)"
    )
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=2e-5, help="peak learning rate (default: 2e-5)")
    parser.add_argument(
        "--warmup", type=float, default=0.1, help="warm-up fraction of the steps (default: 0.1)"
    )
    parser.add_argument(
        "--mini-batch", type=int, default=8, help="cached-mnrl: texts per forward pass (default: 8)"
    )
    parser.add_argument(
        "--max-steps", type=int, default=0, help="stop after this many steps (default: all epochs)"
    )
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--split", default="train", help="qrels split of a BEIR folder (default: train)"
    )
    parser.add_argument("--device", default=None, help="torch device (default: cuda if available)")
    parser.set_defaults(run=run)


def config_from_args(args: argparse.Namespace):
    from uniembed.errors import InputError
    from uniembed.train import TrainConfig

    negatives = 0
    if args.hard_negatives:
        kind, _, count = args.hard_negatives.partition(":")
        if kind != "mine" or not count.isdigit() or int(count) < 1:
            raise InputError(
                f"--hard-negatives must look like mine:10, got {args.hard_negatives!r}"
            )
        negatives = int(count)
    dims = []
    if args.matryoshka:
        try:
            dims = [int(d) for d in args.matryoshka.split(",")]
        except ValueError:
            raise InputError(
                f"--matryoshka must be comma-separated integers, got {args.matryoshka!r}"
            ) from None
    return TrainConfig(
        data=args.data,
        output=args.output,
        base=args.base,
        loss=args.loss,
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        warmup=args.warmup,
        seed=args.seed,
        matryoshka=dims,
        hard_negatives=negatives,
        guide=args.guide,
        eval=list(args.eval),
        eval_every=args.eval_every,
        mini_batch=args.mini_batch,
        max_steps=args.max_steps,
        device=args.device,
        split=args.split,
    )


def run(args: argparse.Namespace) -> int:
    from uniembed._extras import require

    require("torch")
    from uniembed.train import train

    result = train(config_from_args(args))
    print(
        f"wrote {result.output} after {result.steps} steps ({result.seconds_per_step:.2f} s per step)"
    )
    for row in result.history:
        print(f"  step {row['step']:>6}  {row['task']}  {row['score']:.2f}")
    return 0
