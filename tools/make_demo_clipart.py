"""Make the clip-art sample that `uniembed demo` ships (src/uniembed/data/clipart/): 300 images of
Open Clip Art's test split (public domain), spread evenly over the split in id order, with their
title, category and keywords. Deterministic: rerunning writes the same rows.

    python tools/make_demo_clipart.py      # reads ../shared/data/openclipart/clipart.parquet
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT.parent / "shared" / "data" / "openclipart" / "clipart.parquet"
TARGET = ROOT / "src" / "uniembed" / "data" / "clipart" / "clipart-demo.parquet"
COUNT = 300


def main() -> None:
    table = pq.read_table(SOURCE, columns=["id", "png", "title", "category", "keywords", "split"])
    rows = sorted((r for r in table.to_pylist() if r["split"] == "test"), key=lambda r: r["id"])
    step = len(rows) / COUNT
    chosen = [rows[int(i * step)] for i in range(COUNT)]
    out = pa.table(
        {key: [r[key] for r in chosen] for key in ("id", "png", "title", "category", "keywords")}
    )
    TARGET.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(out, TARGET, compression="zstd")
    print(f"wrote {TARGET} ({len(chosen)} images, {TARGET.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
