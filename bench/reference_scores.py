"""Reproduce the MTEB reference scores of the default model (STSBenchmark, SciFact, Banking77)."""

from __future__ import annotations

import json
from pathlib import Path

from uniembed.eval import evaluate

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

# (task type, data path, MTEB reference file, tolerance in points x100)
CASES = [
    ("sts", DATA / "stsb" / "sts-test.csv", "STSBenchmark", 0.5),
    ("retrieval", DATA / "scifact", "SciFact", 0.5),
    ("classification", DATA / "banking77", "Banking77Classification", 1.0),
]


OTHER_METRICS = (
    "map_at_100",
    "mrr_at_10",
    "recall_at_100",
)  # SciFact's secondary metrics, also in MTEB's file


def reference_score(task_name: str, metric: str = "main_score") -> float:
    result = json.loads((DATA / "reference" / f"{task_name}.json").read_text())
    return 100 * result["scores"]["test"][0][metric]


def run(model) -> dict[str, list[dict]]:
    rows, other = [], []
    for task, path, name, tolerance in CASES:
        result = evaluate(model, task, path, name=name, show_progress=False)
        ours, reference = 100 * result.main_score, reference_score(name)
        if task == "retrieval":
            other += [
                {
                    "task": name,
                    "metric": metric,
                    "uniembed": round(100 * result.scores[metric], 2),
                    "MTEB reference": round(reference_score(name, metric), 2),
                    "diff": f"{100 * result.scores[metric] - reference_score(name, metric):+.2f}",
                }
                for metric in OTHER_METRICS
            ]
        rows.append(
            {
                "task": name,
                "metric": result.main_metric,
                "uniembed": round(ours, 2),
                "MTEB reference": round(reference, 2),
                "diff": f"{ours - reference:+.2f}",
                "tolerance": tolerance,
                "ok": abs(ours - reference) <= tolerance,
                "seconds": round(result.evaluation_time, 1),
            }
        )
    return {"MTEB reference scores, all-MiniLM-L6-v2": rows, "SciFact, MTEB's other metrics": other}
