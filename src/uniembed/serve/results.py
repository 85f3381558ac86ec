"""What the page's evaluation tab reads: MTEB-shaped results and bench tables found in folders.

    read_results([Path("results"), ...]) -> {"results": [...], "charts": [...], "skipped": [...]}

- results: every `<model>/<task>.json` that `uniembed eval` wrote (MTEB's shape: task_name,
  model_name, scores[split][0].main_score), one row per (model, task, split).
- charts: quality against cost, from bench JSON (`python -m bench.run --json DIR` writes
  {"bench", "tables": {title: [rows]}}): for each table, each quality column (nDCG, recall,
  accuracy, ...) against each cost column (bytes per vector, ms per query, texts/s, ...), with
  one point per row labelled by the row's first text column. Cells such as "0.17 (0.15-0.19)"
  (a median and its spread) count by their leading number.
- skipped: files that could not be read, with the reason (a bad file never hides the others):
  not JSON, too large, nested too deep, or holding NaN/Infinity/numbers beyond float range
  (strict JSON has none; a response holding them could not be sent).

Each file is named relative to its results folder (the server's own paths are none of the
client's business); a folder given twice (`--results results`, which is always read) is read once.

Folders are read on every call (they are small, and a new `uniembed eval` shows at once).
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

QUALITY = re.compile(
    r"ndcg|recall|accuracy|spearman|map@|mrr|precision|% of exact|main score", re.I
)
COST = re.compile(
    r"bytes|ms/|ms |ms$|latency|p50|p99|texts/s|docs/s|rows/s|items/s|/s\b|seconds|\bMB\b|GB", re.I
)
NOT_A_MEASURE = re.compile(
    r"spread|range|\(min-max\)", re.I
)  # how much a number varied, not a number
LEADING_NUMBER = re.compile(r"\s*(-?\d+(?:\.\d+)?(?:e-?\d+)?)")
MAX_FILES = 2000  # a folder with more is not a results folder; read the first ones, say so
MAX_FILE_BYTES = 8 << 20


def read_results(folders: list[Path]) -> dict:
    results, charts, skipped, seen = [], [], [], 0
    for folder in dict.fromkeys(Path(folder).resolve() for folder in folders):
        if not folder.is_dir():
            continue
        for path in sorted(folder.rglob("*.json")):
            shown = path.relative_to(folder).as_posix()
            if (
                not path.is_file()
            ):  # a fifo named x.json would block the read forever; a folder, a device
                continue
            seen += 1
            if seen > MAX_FILES:
                skipped.append(
                    {
                        "file": shown,
                        "reason": f"more than {MAX_FILES} JSON files: the rest not read",
                    }
                )
                break
            try:
                document = _read_strict_json(path)
            except (OSError, ValueError, RecursionError) as exc:
                skipped.append(
                    {"file": shown, "reason": f"unreadable: {str(exc) or type(exc).__name__}"[:300]}
                )
                continue
            if _is_mteb(document):
                results.extend(_mteb_rows(document, path, shown))
            elif _is_bench(document):
                charts.extend(bench_charts(document, path, shown))
    return {"results": results, "charts": charts, "skipped": skipped}


def _read_strict_json(path: Path):
    """The file's JSON, or ValueError for what strict JSON cannot hold (NaN, Infinity, 1e999);
    RecursionError for nesting deeper than Python's parser goes."""
    if path.stat().st_size > MAX_FILE_BYTES:
        raise ValueError(f"larger than {MAX_FILE_BYTES >> 20} MiB")

    def no_constant(name: str):
        raise ValueError(f"holds {name}, which is not JSON")

    def finite(text: str) -> float:
        value = float(text)
        if not math.isfinite(value):
            raise ValueError(f"holds the number {text[:40]}, beyond the float range")
        return value

    return json.loads(
        path.read_text(encoding="utf-8"), parse_constant=no_constant, parse_float=finite
    )


def _is_mteb(document) -> bool:
    return (
        isinstance(document, dict)
        and isinstance(document.get("scores"), dict)
        and "task_name" in document
    )


def _is_bench(document) -> bool:
    return isinstance(document, dict) and isinstance(document.get("tables"), dict)


def _mteb_rows(document: dict, path: Path, shown: str) -> list[dict]:
    rows = []
    seconds = number(document.get("evaluation_time"))
    for split, entries in document["scores"].items():
        for entry in entries if isinstance(entries, list) else []:
            score = number(entry.get("main_score") if isinstance(entry, dict) else None)
            if score is not None and math.isfinite(100 * score):
                rows.append(
                    {
                        "model": str(document.get("model_name") or path.parent.name),
                        "task": str(document["task_name"]),
                        "split": str(split),
                        "main_score": round(100 * score, 2),
                        "seconds": seconds,
                        "file": shown,
                    }
                )
    return rows


def number(value) -> float | None:
    """A cell as a number: int/float, or a string's leading number ("0.17 (0.15-0.19)" -> 0.17)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        result = float(value) if abs(value) < 1e300 else None  # 10**400 cannot even be a float
    elif isinstance(value, str):
        match = LEADING_NUMBER.match(value)
        result = float(match.group(1)) if match else None  # "1e999" is inf
    else:
        return None
    return (
        result if result is not None and math.isfinite(result) else None
    )  # NaN and inf are no point


def bench_charts(document: dict, path: Path, shown: str) -> list[dict]:
    """One chart per (table, quality column, cost column) with at least two points."""
    charts = []
    for title, rows in document["tables"].items():
        if not isinstance(rows, list) or not rows or not all(isinstance(r, dict) for r in rows):
            continue
        columns = list(dict.fromkeys(key for row in rows for key in row))
        label = next(
            (
                c
                for c in columns
                if all(
                    isinstance(r.get(c), str) and number(r.get(c)) is None for r in rows if c in r
                )
            ),
            None,
        )
        measures = [c for c in columns if not NOT_A_MEASURE.search(c)]
        for quality in (c for c in measures if QUALITY.search(c) and not COST.search(c)):
            for cost in (c for c in measures if COST.search(c) and not QUALITY.search(c)):
                points = [
                    {
                        "label": str(r.get(label, i)) if label else str(i),
                        "x": number(r.get(cost)),
                        "y": number(r.get(quality)),
                    }
                    for i, r in enumerate(rows)
                ]
                points = [p for p in points if p["x"] is not None and p["y"] is not None]
                if len(points) >= 2:
                    charts.append(
                        {
                            "bench": str(document.get("bench") or path.stem),
                            "table": str(title),
                            "x": cost,
                            "y": quality,
                            "points": points,
                            "file": shown,
                            "date": document.get("date"),
                        }
                    )
    return charts
