"""Run the benchmarks and print them as tables: `python bench/run.py [--only scores|speed]`."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import encode_speed  # noqa: E402
import reference_scores  # noqa: E402

import uniembed  # noqa: E402


def markdown_table(rows: list[dict]) -> str:
    header = list(rows[0])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(row[key]) for key in header) + " |" for row in rows]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", choices=["scores", "speed"], default=None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    model = uniembed.load(device="cpu")
    tables = {}
    if args.only in (None, "scores"):
        tables["MTEB reference scores, all-MiniLM-L6-v2"] = reference_scores.run(model)
    if args.only in (None, "speed"):
        tables["Encoding speed vs sentence-transformers"] = encode_speed.run(model, repeats=args.repeats)
    if args.json:
        print(json.dumps(tables, indent=2))
    for title, rows in tables.items():
        print(f"\n### {title}\n\n{markdown_table(rows)}")
    failed = [row for rows in tables.values() for row in rows if row.get("ok") is False]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
