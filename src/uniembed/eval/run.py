"""`evaluate()`: run one task on one data set and return a TaskResult."""

from __future__ import annotations

import inspect
import time
from pathlib import Path

from uniembed.encoders.base import Encoder
from uniembed.errors import InputError
from uniembed.eval.tasks import TASKS
from uniembed.types import TaskResult


def evaluate(
    model: Encoder,
    task: str,
    path: str | Path,
    *,
    name: str | None = None,
    batch_size: int = 32,
    show_progress: bool = True,
    **options,
) -> TaskResult:
    """Evaluate `model` on the data at `path` with `task` ("sts", "retrieval", "classification",
    "clustering", "pairs"). Task options (split, seed, columns...) are passed through; unknown
    ones raise InputError naming them."""
    if task not in TASKS:
        raise InputError(f"unknown task {task!r}; known tasks: {sorted(TASKS)}")
    fn = TASKS[task]
    allowed = [p for p in inspect.signature(fn).parameters if p not in ("model", "encode")][1:]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise InputError(f"task {task!r} has no option(s) {unknown}; its options: {allowed}")
    path = Path(path)
    start = time.perf_counter()
    encode = {"batch_size": batch_size, "show_progress": show_progress}
    main_metric, scores = fn(model, path, encode=encode, **options)
    return TaskResult(
        task_name=name or _default_name(task, path, options.get("split")),
        task_type=task,
        split=options.get("split", "test"),
        main_metric=main_metric,
        scores=scores,
        model=model.name,
        evaluation_time=time.perf_counter() - start,
    )


def _default_name(task: str, path: Path, split: str | None) -> str:
    stem = path.name.split(".")[0] if path.is_file() else path.name
    return f"{stem}-{task}"
