"""`uniembed bind`: train an image encoder (or a projector over vectors) into a frozen text model's
space (a thin shell over uniembed.train.bind)."""

from __future__ import annotations

import argparse


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "bind",
        help="train an image encoder (or a projector over vectors) into a text model's space",
        description="Keep ANCHOR frozen and train a small image encoder (--images with --captions) or a projector "
        "(--vectors with --texts) so its outputs land next to the anchor's vectors of the captions. The result, "
        "at OUTPUT, loads with uniembed.load(OUTPUT): texts by the anchor, images by the trained encoder, so "
        "collections the anchor made are searchable by image. Interrupted runs continue when run again.",
    )
    parser.add_argument(
        "--anchor", default="default", help="the frozen text model (default: all-MiniLM-L6-v2)"
    )
    parser.add_argument(
        "--images",
        action=_InOrder,
        dest="sources",
        metavar="PATH",
        help="labelled images: an IDX folder (MNIST, Fashion-MNIST), a folder per class, or a "
        "jsonl/csv/parquet with an image column (repeatable)",
    )
    parser.add_argument(
        "--captions",
        action=_InOrder,
        dest="sources",
        metavar="TEMPLATE",
        help="caption template over the fields, e.g. 'a photo of a {label}' or '{title}' "
        "(repeatable: each example gets every template its fields fill). Given after an --images, "
        "it captions that source only; before any --images, every source without its own",
    )
    parser.add_argument(
        "--vectors", default=None, help="precomputed vectors (.npy, or a file with a vector column)"
    )
    parser.add_argument(
        "--texts",
        default=None,
        help="their texts (a file with a text column; joined by 'id' if both have one)",
    )
    parser.add_argument(
        "--text-column", default=None, help="text column of --texts (default: text)"
    )
    parser.add_argument("-o", "--output", required=True, help="a new folder for the bound model")
    parser.add_argument(
        "--encoder",
        default=None,
        choices=("cnn", "linear", "mlp"),
        help="what is trained: cnn for images (default), linear or mlp (default) for vectors",
    )
    parser.add_argument(
        "--channels",
        default=None,
        metavar="C1,C2,...",
        help="cnn: channels per stage (default: 32,64,128,256)",
    )
    parser.add_argument(
        "--image-size", type=int, default=32, help="cnn: input side in pixels (default: 32)"
    )
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--lr", type=float, default=2e-3, help="peak learning rate (default: 2e-3)")
    parser.add_argument(
        "--validation",
        type=float,
        default=0.05,
        help="share of pairs held out to keep the best model (default: 0.05)",
    )
    parser.add_argument(
        "--eval-every",
        type=int,
        default=None,
        help="steps between validations (default: each epoch)",
    )
    parser.add_argument(
        "--no-augment", action="store_true", help="cnn: no random shifts of the training images"
    )
    parser.add_argument(
        "--max-steps", type=int, default=0, help="stop after this many steps (default: all epochs)"
    )
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--split", default="train", help="split of the image sources to train on (default: train)"
    )
    parser.add_argument("--device", default=None, help="torch device (default: cuda if available)")
    parser.set_defaults(run=run)


class _InOrder(argparse.Action):
    """Keeps --images and --captions in the order given, so captions can belong to a source."""

    def __call__(self, parser, namespace, values, option_string=None):
        given = list(getattr(namespace, self.dest, None) or [])
        given.append((self.option_strings[0].lstrip("-"), values))
        setattr(namespace, self.dest, given)


def sources_and_captions(given: list[tuple[str, str]]) -> tuple[list, list[str]]:
    """(image sources, shared templates) from the ordered --images / --captions."""
    sources, shared = [], []
    for option, value in given:
        if option == "images":
            sources.append({"path": value, "captions": []})
        elif sources:
            sources[-1]["captions"].append(value)
        else:
            shared.append(value)
    return sources, shared


def run(args: argparse.Namespace) -> int:
    from uniembed._extras import require
    from uniembed.errors import InputError

    require("torch")
    from uniembed.bind import BindConfig, bind

    channels = [32, 64, 128, 256]
    if args.channels is not None:
        try:
            channels = [int(c) for c in args.channels.split(",")]
        except ValueError:
            raise InputError(
                f"--channels must be comma-separated integers, got {args.channels!r}"
            ) from None
    images, captions = sources_and_captions(args.sources or [])
    encoder = args.encoder or ("cnn" if images else "mlp")
    config = BindConfig(
        output=args.output,
        anchor=args.anchor,
        images=images,
        captions=captions,
        vectors=args.vectors,
        texts=args.texts,
        text_column=args.text_column,
        encoder=encoder,
        channels=channels,
        image_size=args.image_size,
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        validation=args.validation,
        eval_every=args.eval_every,
        augment=not args.no_augment,
        max_steps=args.max_steps,
        seed=args.seed,
        split=args.split,
        device=args.device,
    )
    result = bind(config)
    print(f"wrote {result.output} after {result.steps} steps in {result.seconds:.0f} s")
    for row in result.history:
        print(
            f"  step {row['step']:>6}  validation top-1 {row['validation top-1']}  loss {row['loss']}"
        )
    return 0
