"""`uniembed train-head`: a late-interaction (ColBERT) head over a frozen model (uniembed.train.token_head)."""

from __future__ import annotations

import argparse


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "train-head",
        help="train a late-interaction (MaxSim) token head over a frozen model",
        description="Train a linear head (hidden -> --dim) over BASE's token vectors so that MaxSim ranks each "
        "query's relevant document first; save BASE + head as a ColBERT model in PyLate's layout, for "
        "encode_tokens and multi-vector collections.",
    )
    parser.add_argument(
        "--base",
        default="default",
        help="model whose token vectors the head maps (default: all-MiniLM-L6-v2)",
    )
    parser.add_argument(
        "--data",
        required=True,
        help="a BEIR folder (train qrels) or a pairs file (anchor, positive[, negatives])",
    )
    parser.add_argument("-o", "--output", required=True, help="folder for the model with its head")
    parser.add_argument(
        "--dim", type=int, default=128, help="token vector dimension (default: 128)"
    )
    parser.add_argument(
        "--hard-negatives",
        type=int,
        default=3,
        help="negatives mined per query with BASE (default: 3)",
    )
    parser.add_argument(
        "--epochs",
        type=int,
        default=_default("epochs"),
        help=f"(default: {_default('epochs')}, chosen on SciFact validation claims)",
    )
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=3e-3, help="learning rate (default: 3e-3)")
    parser.add_argument(
        "--temperature",
        type=float,
        default=0.1,
        help="InfoNCE temperature on mean MaxSim (default: 0.1)",
    )
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--split", default="train", help="qrels split of a BEIR folder (default: train)"
    )
    parser.add_argument("--device", default=None, help="torch device (default: cuda if available)")
    parser.set_defaults(run=run)


def _default(name: str):
    """A TokenHeadConfig default, read from the dataclass (one truth for the CLI and Python)."""
    from dataclasses import fields

    from uniembed.train.token_head import TokenHeadConfig

    return next(f.default for f in fields(TokenHeadConfig) if f.name == name)


def run(args: argparse.Namespace) -> int:
    from uniembed._extras import require

    require("torch")
    from uniembed.train.token_head import TokenHeadConfig, train_token_head

    config = TokenHeadConfig(
        data=args.data,
        output=args.output,
        base=args.base,
        dim=args.dim,
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        temperature=args.temperature,
        hard_negatives=args.hard_negatives,
        seed=args.seed,
        split=args.split,
        device=args.device,
    )
    result = train_token_head(config)
    losses = ", ".join(f"{loss:.3f}" for loss in result.losses)
    print(
        f"wrote {result.output} after {result.steps} steps in {result.seconds:.0f} s (loss per epoch: {losses})"
    )
    return 0
