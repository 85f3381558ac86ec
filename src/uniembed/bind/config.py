"""What a binding run is: its settings (BindConfig, checked before any compute) and its result."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from uniembed.errors import InputError


@dataclass
class BindConfig:
    output: str
    anchor: str = "default"
    # image sources: paths, or {"path": ..., "captions": [templates]} with their own captions (see uniembed.bind.pairs)
    images: list = field(default_factory=list)
    captions: list[str] = field(
        default_factory=list
    )  # templates for sources without their own, e.g. "a photo of a {label}"
    vectors: str | None = None  # or: precomputed vectors ...
    texts: str | None = None  # ... and their texts
    text_column: str | None = None
    encoder: str = "cnn"  # images: cnn; vectors: linear or mlp
    channels: list[int] = field(default_factory=lambda: [32, 64, 128, 256])
    image_size: int = 32
    hidden: int = 0  # mlp: hidden width (0: 4 x the anchor's dim)
    epochs: int = 10
    batch_size: int = 256
    learning_rate: float = 2e-3
    weight_decay: float = 0.05
    warmup: float = 0.05
    temperature: float = 0.07  # the starting temperature (learned)
    augment: bool = True  # images: random shifts of up to 1/8 of the side
    validation: float = (
        0.05  # share of the pairs held out to pick the best checkpoint; 0: keep the last
    )
    eval_every: int | None = None  # steps between validations; None: at the end of each epoch
    checkpoint_every: int = 200
    max_steps: int = 0
    seed: int = 42
    split: str = "train"
    device: str | None = None

    def check(self) -> None:
        if bool(self.images) == bool(self.vectors):
            raise InputError(
                "bind needs either images (with captions) or vectors (with texts), not both and not neither"
            )
        if self.vectors and not self.texts:
            raise InputError("binding vectors needs their texts (texts=...)")
        if self.images and self.encoder not in ("cnn",):
            raise InputError(f"images are bound with encoder 'cnn', got {self.encoder!r}")
        if self.vectors and self.encoder not in ("linear", "mlp"):
            raise InputError(
                f"vectors are bound with encoder 'linear' or 'mlp', got {self.encoder!r}"
            )
        for name in ("epochs", "batch_size", "checkpoint_every", "image_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError(f"{name} must be a positive integer, got {value!r}")
        if self.batch_size < 2:
            raise InputError(
                f"batch_size must be at least 2 (in-batch negatives), got {self.batch_size}"
            )
        for name, low, high in (("learning_rate", 0, 1), ("temperature", 0, 10)):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not low < value < high
            ):
                raise InputError(f"{name} must be in ({low}, {high}), got {value!r}")
        if (
            isinstance(self.validation, bool)
            or not isinstance(self.validation, (int, float))
            or not 0 <= self.validation < 0.5
        ):
            raise InputError(
                f"validation must be a share in [0, 0.5) (0: none, the last model is kept), got {self.validation!r}"
            )
        if (
            not 0 <= self.warmup < 1
            or self.weight_decay < 0
            or self.max_steps < 0
            or self.hidden < 0
        ):
            raise InputError(
                "warmup must be in [0, 1); weight_decay, max_steps and hidden must be >= 0"
            )
        if self.eval_every is not None and (
            isinstance(self.eval_every, bool)
            or not isinstance(self.eval_every, int)
            or self.eval_every < 1
        ):
            raise InputError(
                f"eval_every must be a positive number of steps, got {self.eval_every!r} "
                "(leave it out to validate at the end of each epoch)"
            )
        if self.images and (
            not isinstance(self.channels, (list, tuple))
            or not self.channels
            or not all(
                isinstance(c, int) and not isinstance(c, bool) and c >= 1 for c in self.channels
            )
        ):
            raise InputError(
                f"channels must be a non-empty list of positive integers (one per stage), got {self.channels!r}"
            )


@dataclass
class BindResult:
    output: Path
    steps: int
    seconds: float
    history: list[dict]  # step, validation accuracy, loss
    best_score: float | None
