"""Ingest through a live collection: does a write cost O(batch), however large the collection?

Adds ROWS random unit vectors in BATCH-row batches through one open Collection that is searched
between batches (so its in-memory snapshot and index stay current and must grow with each
write), and compares with a bulk load of the same rows (100,000-row batches, no searches). Rounds
alternate bulk, live, bulk, live on fresh collections; medians over rounds, spread as min-max.

Goals (issue 13): the last 10% of live batches cost within 1.5x the first 10% (median per batch),
and the live ingest's writes take within 2x the bulk load.

    python -m bench.ingest                                   # 1,000,000 x 384 in 2,048-row batches
    python -m bench.ingest --rows 200000 --index hnsw --quantize binary
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

BULK_BATCH = 100_000


def batches(rows: int, dim: int, size: int):
    """(ids, unit vectors) in batches; the same rows whatever the batch size (seeded per 10,000)."""
    block, block_start = None, -1
    for start in range(0, rows, size):
        stop = min(start + size, rows)
        out = []
        for chunk_start in range(start - start % 10_000, stop, 10_000):
            if chunk_start != block_start:
                block = (
                    np.random.default_rng(chunk_start).normal(size=(10_000, dim)).astype(np.float32)
                )
                block /= np.linalg.norm(block, axis=1, keepdims=True)
                block_start = chunk_start
            lo, hi = (
                max(start, chunk_start) - chunk_start,
                min(stop, chunk_start + 10_000) - chunk_start,
            )
            out.append(block[lo:hi])
        yield [f"r{i}" for i in range(start, stop)], np.concatenate(out)


def create(folder: Path, name: str, dim: int, index: str, quantize: str):
    from uniembed.store import Collection

    return Collection.create(folder / name, model=None, dim=dim, index=index, quantize=quantize)


def bulk(folder: Path, rows: int, dim: int, index: str, quantize: str) -> float:
    col = create(folder, "bulk", dim, index, quantize)
    started = time.perf_counter()
    for ids, vectors in batches(rows, dim, BULK_BATCH):
        col.add(ids, vectors)
    return time.perf_counter() - started


def live(
    folder: Path, rows: int, dim: int, batch: int, index: str, quantize: str
) -> tuple[list[float], float]:
    """(seconds per add, seconds of searching in between)."""
    col = create(folder, "live", dim, index, quantize)
    query = np.random.default_rng(12345).normal(size=dim).astype(np.float32)
    adds, searching = [], 0.0
    for ids, vectors in batches(rows, dim, batch):
        started = time.perf_counter()
        col.add(ids, vectors)
        adds.append(time.perf_counter() - started)
        started = time.perf_counter()
        hits = col.search(query, k=10)
        searching += time.perf_counter() - started
        assert len(hits) == min(10, len(col.snapshot().ids))
    return adds, searching


def run(
    rows: int = 1_000_000,
    dim: int = 384,
    batch: int = 2048,
    rounds: int = 2,
    index: str = "exact",
    quantize: str = "none",
) -> list[dict]:
    growth, ratio, bulk_s, live_s, search_s = [], [], [], [], []
    for round_ in range(rounds):
        with tempfile.TemporaryDirectory(prefix="uniembed-ingest-") as tmp:
            bulk_time = bulk(Path(tmp), rows, dim, index, quantize)
        with tempfile.TemporaryDirectory(prefix="uniembed-ingest-") as tmp:
            adds, searching = live(Path(tmp), rows, dim, batch, index, quantize)
        tenth = max(1, len(adds) // 10)
        growth.append(statistics.median(adds[-tenth:]) / statistics.median(adds[:tenth]))
        ratio.append(sum(adds) / bulk_time)
        bulk_s.append(bulk_time)
        live_s.append(sum(adds))
        search_s.append(searching)
        print(
            f"round {round_ + 1}: bulk {bulk_time:.1f} s, live writes {sum(adds):.1f} s (+ {searching:.1f} s of "
            f"searches), last/first tenth {growth[-1]:.2f}x",
            file=sys.stderr,
            flush=True,
        )

    def spread(values, digits=2):
        return f"{statistics.median(values):.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})"

    setting = f"{rows:,} x {dim}, {index}+{quantize}, {batch}-row batches, searched between batches"
    return [
        {
            "measure": "write cost, last 10% of batches / first 10% (median per batch)",
            "setting": setting,
            "median (min-max over rounds)": spread(growth),
            "goal": "<= 1.5x",
            "ok": max(growth) <= 1.5,
        },
        {
            "measure": "live ingest writes / bulk load of the same rows",
            "setting": setting,
            "median (min-max over rounds)": spread(ratio),
            "goal": "<= 2x",
            "ok": max(ratio) <= 2.0,
        },
        {
            "measure": "seconds: bulk load (100,000-row batches)",
            "setting": setting,
            "median (min-max over rounds)": spread(bulk_s, 1),
            "goal": "",
            "ok": "",
        },
        {
            "measure": "seconds: live ingest writes",
            "setting": setting,
            "median (min-max over rounds)": spread(live_s, 1),
            "goal": "",
            "ok": "",
        },
        {
            "measure": "seconds: searches between the live batches (not in the ratio)",
            "setting": setting,
            "median (min-max over rounds)": spread(search_s, 1),
            "goal": "",
            "ok": "",
        },
    ]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--batch", type=int, default=2048)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--index", default="exact", choices=["exact", "hnsw", "ivfpq"])
    parser.add_argument("--quantize", default="none", choices=["none", "int8", "binary"])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = run(args.rows, args.dim, args.batch, args.rounds, args.index, args.quantize)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        from bench.run import markdown_table

        print(markdown_table(rows))
    return 0 if all(row["ok"] is not False for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
