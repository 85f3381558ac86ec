"""Evaluation harness: STS, retrieval, classification, clustering and pair classification; for
image models, zero-shot classification, image-text retrieval and MMEB-style Precision@1."""

from uniembed.eval import image_tasks  # noqa: F401  (registers the image tasks)
from uniembed.eval.report import format_table, save_result
from uniembed.eval.run import evaluate
from uniembed.eval.tasks import TASKS

__all__ = ["TASKS", "evaluate", "format_table", "save_result"]
