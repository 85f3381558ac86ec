"""Evaluation harness: STS, retrieval, classification, clustering and pair classification."""
from uniembed.eval.report import format_table, save_result
from uniembed.eval.run import evaluate
from uniembed.eval.tasks import TASKS

__all__ = ["TASKS", "evaluate", "format_table", "save_result"]
