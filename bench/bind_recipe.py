"""image-mini's recipe: what `uniembed bind` trains the shipped image model on, in one place.

bench/bind.py trains it (same seed: the same weights) at each of SIZES and keeps the better on the
validation part, and the README shows the same thing as one `uniembed bind` command
(`python -m bench.bind_recipe` prints it).
"""

from __future__ import annotations

from pathlib import Path

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

SOURCES = [
    (
        "fashion-mnist",
        [
            "a photo of a {label}.",
            "a {label}",
            "a black and white photo of a {label}, a piece of clothing.",
        ],
    ),
    ("mnist", ["a photo of the number {label}.", "the digit {label}", "a handwritten {label}."]),
    (
        "openclipart/clipart.parquet",
        ["{title}", "a drawing of {title}.", "{keywords}", "clip art of {label}"],
    ),
]
# encoder sizes bench/bind.py trains; it keeps the better on validation, which SETTINGS must name
SIZES = {"small": [16, 32, 64, 128], "base": [32, 64, 128, 256]}
SETTINGS = {
    "channels": [32, 64, 128, 256],
    "image_size": 32,
    "epochs": 10,
    "batch_size": 256,
    "learning_rate": 2e-3,
    "seed": 42,
}


def sources(data: Path = DATA, exclude: dict[str, list[str]] | None = None) -> list[dict]:
    """The image sources as BindConfig takes them; `exclude` leaves labels of a source out."""
    return [
        {
            "path": str(data / name),
            "captions": list(captions),
            **({"exclude_labels": exclude[name]} if exclude and name in exclude else {}),
        }
        for name, captions in SOURCES
    ]


def config(
    output: str, data: Path = DATA, *, exclude: dict[str, list[str]] | None = None, **overrides
):
    from uniembed.bind import BindConfig

    return BindConfig(output=output, images=sources(data, exclude), **{**SETTINGS, **overrides})


def command(output: str = "image-mini", data: str = "../shared/data") -> str:
    """The same recipe as one `uniembed bind` command."""
    parts = ["uniembed bind --anchor default"]
    for name, captions in SOURCES:
        parts.append(f"--images {data}/{name} " + " ".join(f"--captions '{c}'" for c in captions))
    settings = SETTINGS
    parts.append(
        f"--channels {','.join(map(str, settings['channels']))} --image-size {settings['image_size']} "
        f"--epochs {settings['epochs']} --batch-size {settings['batch_size']} --lr {settings['learning_rate']} "
        f"--seed {settings['seed']} -o {output}"
    )
    return " \\\n    ".join(parts)


if __name__ == "__main__":
    print(command())
