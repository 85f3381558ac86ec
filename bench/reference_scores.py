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


def reference_score(task_name: str) -> float:
    result = json.loads((DATA / "reference" / f"{task_name}.json").read_text())
    return 100 * result["scores"]["test"][0]["main_score"]


def run(model) -> list[dict]:
    rows = []
    for task, path, name, tolerance in CASES:
        result = evaluate(model, task, path, name=name, show_progress=False)
        ours, reference = 100 * result.main_score, reference_score(name)
        rows.append({
            "task": name, "metric": result.main_metric, "uniembed": round(ours, 2), "MTEB reference": round(reference, 2),
            "diff": f"{ours - reference:+.2f}", "tolerance": tolerance, "ok": abs(ours - reference) <= tolerance,
            "seconds": round(result.evaluation_time, 1),
        })
    return rows
