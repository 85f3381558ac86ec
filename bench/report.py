"""Bench results as JSON, and the README's result tables rendered from that JSON.

`bench/run.py --json bench/tables` writes one file per bench, `bench/tables/<bench>.json`:

    {"bench": "scores", "command": "python -m bench.run --only scores", "date": "2026-11-30",
     "machine": {"cpu": "...", "cores": 2, "python": "3.12.3", "torch": "2.13.0", ...},
     "tables": {"<title>": [{"column": value, ...}, ...], ...}}

The README and the pages under docs/ hold each table between two markers,

    <!-- table: scores / MTEB reference scores, all-MiniLM-L6-v2 -->
    ...the rendered table and a line saying where and when it was measured...
    <!-- /table -->

and `python -m bench.report` fills every marked block of every page from the committed JSON
(`--check` only reports the blocks that differ). tests/test_readme_tables.py runs the check, so
a number edited into the README by hand fails the suite: change the bench and rerun it instead.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import sys
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TABLES = ROOT / "bench" / "tables"
README = ROOT / "README.md"


def documents() -> list[Path]:
    """Every page that may hold marked tables: the README and the docs (results, guides)."""
    return [README, *sorted((ROOT / "docs").rglob("*.md"))]


LIBRARIES = (
    "uniembed",
    "torch",
    "numpy",
    "onnxruntime",
    "openvino",
    "nncf",
    "sentence-transformers",
    "transformers",
    "faiss-cpu",
    "lancedb",
    "scikit-learn",
    "uvicorn",
)
MARKER = re.compile(
    r"<!-- table: (?P<bench>[\w-]+) / (?P<title>.+?) -->\n(?P<body>.*?)<!-- /table -->", re.S
)
HIDDEN_COLUMNS = {
    "ok"
}  # pass/fail flags drive bench/run.py's exit status; the README says it in words


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# the instruction sets that decide which encoding configuration is fastest (issue 32)
CPU_FEATURES = {
    "amx_bf16": "AMX",
    "avx512_bf16": "AVX-512 BF16",
    "avx512_vnni": "AVX-512 VNNI",
    "avx512f": "AVX-512",
    "avx2": "AVX2",
}


def cpu_features() -> str:
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return ""
    return ", ".join(
        (name if flag in flags else f"no {name}")
        for flag, name in CPU_FEATURES.items()
        if flag in flags or flag in ("amx_bf16", "avx512_bf16", "avx512_vnni")
    )


def machine_facts() -> dict:
    """What a reader needs to judge a number: the CPU, how many cores this process may use, the
    library versions that did the work."""
    facts = {
        "cpu": cpu_model(),
        "cpu_features": cpu_features(),
        "cores": len(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
        "python": platform.python_version(),
    }
    for name in LIBRARIES:
        try:
            facts[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return facts


def write_results(folder: Path, bench: str, command: str, tables: dict[str, list[dict]]) -> Path:
    """One bench's tables, with machine facts and the date, as folder/<bench>.json (written whole:
    a temporary file renamed into place)."""
    folder.mkdir(parents=True, exist_ok=True)
    record = {
        "bench": bench,
        "command": command,
        "date": datetime.date.today().isoformat(),
        "machine": machine_facts(),
        "tables": tables,
    }
    path = folder / f"{bench}.json"
    partial = path.with_suffix(".json.partial")
    partial.write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    partial.replace(path)
    return path


def markdown_table(rows: list[dict]) -> str:
    # every row's columns, in first-seen order: a skipped row may carry only its reason
    header = [
        key for key in dict.fromkeys(k for row in rows for k in row) if key not in HIDDEN_COLUMNS
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(row.get(key, "")) for key in header) + " |" for row in rows]
    return "\n".join(lines)


def _cell(value) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value is None:
        return "-"
    return str(value)


def provenance(record: dict) -> str:
    machine = record["machine"]
    versions = ", ".join(
        f"{name} {machine[name]}" for name in LIBRARIES if name in machine and name != "uniembed"
    )
    return (
        f"<sub>`{record['command']}`, {record['date']}: {machine['cpu']}"
        + (f" ({machine['cpu_features']})" if machine.get("cpu_features") else "")
        + f", {machine['cores']} cores; "
        f"Python {machine['python']}, {versions}.</sub>"
    )


def render_block(bench: str, title: str, folder: Path = TABLES) -> str:
    path = folder / f"{bench}.json"
    if not path.is_file():
        raise SystemExit(
            f"README marks a table from {bench!r}, but {path} does not exist: "
            f"run bench/run.py --only {bench} --json {folder}"
        )
    record = json.loads(path.read_text(encoding="utf-8"))
    if title not in record["tables"]:
        raise SystemExit(f"{path} has no table {title!r}; it has {sorted(record['tables'])}")
    return f"{markdown_table(record['tables'][title])}\n\n{provenance(record)}\n"


def render_readme(text: str, folder: Path = TABLES) -> str:
    def filled(match) -> str:
        head = match.group(0)[: match.start("body") - match.start(0)]
        return (
            head
            + render_block(match.group("bench"), match.group("title"), folder)
            + "<!-- /table -->"
        )

    return MARKER.sub(filled, text)


def stale_blocks(text: str, folder: Path = TABLES) -> list[str]:
    """The marked blocks whose text differs from what the JSON renders: '<bench> / <title>'."""
    return [
        f"{m.group('bench')} / {m.group('title')}"
        for m in MARKER.finditer(text)
        if m.group("body") != render_block(m.group("bench"), m.group("title"), folder)
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="report stale blocks, change nothing")
    parser.add_argument("--tables", type=Path, default=TABLES)
    args = parser.parse_args()
    all_stale, rewritten, current = [], 0, 0
    for page in documents():
        text = page.read_text(encoding="utf-8")
        stale = stale_blocks(text, args.tables)
        all_stale += [f"{page.relative_to(ROOT)}: {name}" for name in stale]
        if not args.check and stale:
            page.write_text(render_readme(text, args.tables), encoding="utf-8")
        rewritten, current = (
            rewritten + len(stale),
            current + len(MARKER.findall(text)) - len(stale),
        )
    if args.check:
        for name in all_stale:
            print(f"stale: {name}")
        return 1 if all_stale else 0
    print(f"{rewritten} table(s) rewritten, {current} already current")
    return 0


if __name__ == "__main__":
    sys.exit(main())
