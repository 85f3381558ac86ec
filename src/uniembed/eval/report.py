"""Saving results as MTEB-shaped JSON and printing them as a table."""

from __future__ import annotations

import json
from pathlib import Path

from uniembed._atomic import replace_file
from uniembed.types import TaskResult


def save_result(result: TaskResult, folder: str | Path) -> Path:
    """Write `folder/<model>/<task_name>.json` (atomically) and return its path."""
    target = Path(folder) / result.model.replace("/", "__") / f"{result.task_name}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(json.dumps(result.to_mteb(), indent=2) + "\n", encoding="utf-8")
    replace_file(tmp, target)
    return target


def format_table(results: list[TaskResult]) -> str:
    """A plain-text table: task, split, main metric and score (x100, as MTEB reports), time."""
    header = ("task", "type", "split", "metric", "score", "seconds")
    rows = [
        (
            r.task_name,
            r.task_type,
            r.split,
            r.main_metric,
            f"{100 * r.main_score:.2f}",
            f"{r.evaluation_time:.1f}",
        )
        for r in results
    ]
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths))
        for row in [header, *rows]
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def markdown_rows(rows: list[dict]) -> str:
    """A markdown table of dict rows that may differ in keys (the union, in first-seen order; '-'
    where a row has none)."""
    header = list(dict.fromkeys(key for row in rows for key in row))

    def cell(value) -> str:
        if isinstance(value, bool):
            return "yes" if value else "no"
        return "-" if value is None or value == "" else str(value)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(row.get(key)) for key in header) + " |" for row in rows]
    return "\n".join(lines)
