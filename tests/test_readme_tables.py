"""The README's result tables are rendered from the committed bench JSON (bench/tables/*.json) by
`python -m bench.report`: a number typed into a marked table by hand, or a bench rerun without
re-rendering, fails here."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def report():
    spec = importlib.util.spec_from_file_location("bench_report", ROOT / "bench" / "report.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_marked_readme_table_matches_the_committed_bench_json(report):
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert report.MARKER.search(text), "the README has no generated tables"
    assert report.stale_blocks(text) == [], (
        "run `python -m bench.report` (after rerunning the bench)"
    )


def test_every_marked_table_under_docs_matches_the_committed_bench_json(report):
    """The result pages moved from the README to docs/results/: the same check on every page."""
    pages = [
        page for page in report.documents() if page.name != "README.md" or "docs" in page.parts
    ]
    assert any(report.MARKER.search(page.read_text(encoding="utf-8")) for page in pages)
    stale = {str(page): report.stale_blocks(page.read_text(encoding="utf-8")) for page in pages}
    assert {page: names for page, names in stale.items() if names} == {}, (
        "run `python -m bench.report` (after rerunning the bench)"
    )


def test_an_edited_number_is_caught(report, tmp_path):
    record = {
        "bench": "demo",
        "command": "python bench/run.py --only demo",
        "date": "2026-01-01",
        "machine": {"cpu": "a CPU", "cores": 2, "python": "3.12", "torch": "2.13.0"},
        "tables": {
            "A table": [
                {"name": "x", "score": 1.5, "ok": True},
                {"name": "y", "score": None, "ok": True},
            ]
        },
    }
    (tmp_path / "demo.json").write_text(json.dumps(record))
    readme = "before\n<!-- table: demo / A table -->\n<!-- /table -->\nafter\n"
    rendered = report.render_readme(readme, tmp_path)
    assert (
        "| x | 1.5 |" in rendered
        and "| y | - |" in rendered
        and "ok" not in rendered.split("after")[0].split("A table")[1]
    )
    assert "2026-01-01" in rendered and "torch 2.13.0" in rendered
    assert report.stale_blocks(rendered, tmp_path) == []
    assert report.render_readme(rendered, tmp_path) == rendered  # rendering twice changes nothing
    edited = rendered.replace("| x | 1.5 |", "| x | 1.6 |")
    assert report.stale_blocks(edited, tmp_path) == ["demo / A table"]


def test_every_generated_table_records_machine_and_date(report):
    for path in sorted((ROOT / "bench" / "tables").glob("*.json")):
        record = json.loads(path.read_text(encoding="utf-8"))
        assert record["bench"] == path.stem
        assert {"cpu", "cores", "python"} <= set(record["machine"]), path
        # bench/ became a package (issue 31): runs since then record `python -m bench.run ...`
        assert record["date"] and record["command"].startswith(
            ("python bench/", "python -m bench.")
        ), path
        assert all(rows for rows in record["tables"].values()), path
