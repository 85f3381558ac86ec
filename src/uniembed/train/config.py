"""What a training run is: its settings (TrainConfig, checked before any compute) and its result."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from uniembed.errors import InputError
from uniembed.train.data import KIND_OF_LOSS

EVAL_TASKS = ("sts", "retrieval", "classification", "clustering", "pairs")


@dataclass
class TrainConfig:
    data: str
    output: str
    base: str = "default"
    loss: str = "mnrl"  # mnrl, cached-mnrl, gist, triplet, cosent
    epochs: int = 1
    batch_size: int = 32
    learning_rate: float = 2e-5
    warmup: float = 0.1  # fraction of the steps
    seed: int = 42
    matryoshka: list[int] = field(default_factory=list)  # e.g. [384, 256, 128, 64, 32]
    matryoshka_weights: list[float] = field(default_factory=list)  # per dim (default: all 1)
    starbucks: list[tuple[int, int]] = field(
        default_factory=list
    )  # (layers, dim) pairs, small to large
    kl_weight: float = 1.0  # Starbucks: weight of the KL term to the full model
    hard_negatives: int = 0  # mine this many per anchor with the base model
    guide: str | None = None  # GISTEmbed's guide model (also filters mined negatives)
    eval: list[str] = field(
        default_factory=list
    )  # "task:path", the first one picks the best checkpoint
    eval_every: int = 0  # steps between evaluations; 0: at the end of each epoch
    checkpoint_every: int = 50
    mini_batch: int = 8  # cached-mnrl: texts per forward pass
    scale: float = 20.0  # mnrl / cosent (1 / temperature)
    temperature: float = 0.01  # gist
    symmetric: bool = False
    margin: float = 0.2  # triplet
    max_steps: int = 0  # 0: all epochs
    device: str | None = None
    split: str = "train"  # BEIR qrels split

    def check(self) -> None:
        if self.loss not in KIND_OF_LOSS:
            raise InputError(f"loss must be one of {sorted(KIND_OF_LOSS)}, got {self.loss!r}")
        for name in ("epochs", "batch_size", "mini_batch", "checkpoint_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError(f"{name} must be a positive integer, got {value!r}")
        if self.batch_size < 2:
            raise InputError(
                f"batch_size must be at least 2 (in-batch negatives), got {self.batch_size}"
            )
        if not (0 < self.learning_rate < 1):
            raise InputError(f"learning_rate must be in (0, 1), got {self.learning_rate!r}")
        if not (0 <= self.warmup < 1):
            raise InputError(f"warmup must be a fraction in [0, 1), got {self.warmup!r}")
        if self.hard_negatives < 0 or self.max_steps < 0 or self.eval_every < 0:
            raise InputError("hard_negatives, max_steps and eval_every must be >= 0")
        if self.loss == "gist" and not self.guide:
            raise InputError("the gist loss needs a guide model (--guide)")
        if self.hard_negatives and KIND_OF_LOSS[self.loss] != "pairs":
            raise InputError(
                f"hard negatives are mined for pair losses (mnrl, cached-mnrl, gist), not {self.loss}"
            )
        if self.starbucks:
            if self.loss not in ("mnrl", "cosent") or self.matryoshka:
                raise InputError(
                    "starbucks pairs work with the mnrl or cosent loss, without --matryoshka"
                )
            pairs = [tuple(pair) for pair in self.starbucks]
            if any(len(pair) != 2 or min(pair) < 1 for pair in pairs) or pairs != sorted(
                set(pairs)
            ):
                raise InputError(
                    "starbucks must be distinct (layers, dim) pairs of positive integers, "
                    f"small to large, got {self.starbucks}"
                )
        if self.matryoshka_weights and (
            len(self.matryoshka_weights) != len(self.matryoshka) or min(self.matryoshka_weights) < 0
        ):
            raise InputError(
                f"matryoshka_weights must be one number >= 0 per matryoshka dim, got {self.matryoshka_weights}"
            )
        if sorted(set(self.matryoshka), reverse=True) != list(self.matryoshka) or any(
            d < 1 for d in self.matryoshka
        ):
            raise InputError(
                f"matryoshka dims must be distinct positive integers, largest first, got {self.matryoshka}"
            )
        for spec in self.eval:
            task, _, path = spec.partition(":")
            if task not in EVAL_TASKS or not path:
                raise InputError(
                    f"eval must be task:path with task one of {list(EVAL_TASKS)}, got {spec!r}"
                )
            if not Path(path).exists():
                raise InputError(f"eval data {path} does not exist")
        output = Path(self.output)
        if output.exists() and not (output / "modules.json").is_file() and any(output.iterdir()):
            raise InputError(f"{output} exists and is not a model folder; choose a new output")


@dataclass
class TrainResult:
    output: Path
    steps: int
    seconds_per_step: float
    history: list[dict]  # evaluations: step, task, score
    best_score: float | None
