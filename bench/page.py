"""The web page's map at scale (issue 19), one run:

    python -m bench.run --only page-map        # about 5 minutes, 3 GB of disk in a temporary folder

A folder collection of 1,000,000 x 384 SciFact-derived vectors (blends of real document vectors,
as bench/scale.py makes them) with a payload field of 20 values, served in-process, and
`GET /v1/collections/{name}/map` timed through the HTTP app: the first request (the collection's
vectors read into memory, 1M ids hashed for the stable sample, PCA of 20,000 x 384), the same map
again (cached), another colour field (cached projection, colours looked up), and the first request
after a write of 1,000 items (a new version: sample and PCA again, vectors already in memory).
Also the response's size. Timings are single requests on this shared 2-core machine; the cached
ones are medians of 5.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from bench.scale_speed import blended
from bench.scifact_vectors import scifact_vectors

N = 1_000_000
CHUNK = 100_000
VALUES = 20


def run(model) -> dict[str, list[dict]]:
    from fastapi.testclient import TestClient

    from uniembed.serve import ServeSettings, create_app
    from uniembed.store import Collection

    _, corpus, _ = scifact_vectors(model)
    rows = []
    with tempfile.TemporaryDirectory(prefix="uniembed-page-") as tmp:
        root = Path(tmp) / "collections"
        col = Collection.create(root / "big", model=None, dim=corpus.shape[1])
        started = time.perf_counter()
        for start in range(0, N, CHUNK):
            ids = [f"d{i}" for i in range(start, start + CHUNK)]
            col.add(
                ids,
                blended(corpus, CHUNK, seed=start),
                payloads=[
                    {"group": i % VALUES, "half": i % 2} for i in range(start, start + CHUNK)
                ],
            )
        ingest = time.perf_counter() - started
        settings = ServeSettings(collections=root)
        with TestClient(create_app(settings, encoder=model), base_url="http://localhost") as client:

            def timed(**params):
                t0 = time.perf_counter()
                response = client.get("/v1/collections/big/map", params=params)
                response.raise_for_status()
                return time.perf_counter() - t0, response

            first, response = timed(color_by="group")
            body = response.json()
            again = statistics.median(timed(color_by="group")[0] for _ in range(5))
            other = statistics.median(timed(color_by="half")[0] for _ in range(5))
            col.add(
                [f"new{i}" for i in range(1000)],
                blended(corpus, 1000, seed=N),
                payloads=[{"group": 0, "half": 0}] * 1000,
            )
            time.sleep(
                1.1
            )  # the served collection notices a new version within its refresh interval (1 s)
            after_write, response = timed(color_by="group")
            grown = response.json()
        rows.append(
            {
                "items": N,
                "ingest (s, not part of the page)": round(ingest, 1),
                "points drawn": len(body["points"]),
                "first map (s)": round(first, 2),
                "same map again (ms, median of 5)": round(again * 1000, 1),
                "another colour (ms, median of 5)": round(other * 1000, 1),
                "after a 1,000-item write (s)": round(after_write, 2),
                "items then": grown["total"],
                "response (MB)": round(len(response.content) / 1e6, 2),
                "sample kept after the write": f"{len(set(grown['ids']) & set(body['ids'])) / len(body['ids']):.1%}",
            }
        )
    return {
        "The web page's map of a 1,000,000-item collection (PCA, 20,000-point stable sample)": rows
    }


if __name__ == "__main__":
    import uniembed
    from bench.report import markdown_table

    for title, table in run(uniembed.load()).items():
        print(f"\n### {title}\n\n{markdown_table(table)}")
