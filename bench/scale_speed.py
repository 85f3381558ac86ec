"""Speed at scale: n x 384 vectors with the structure of real embeddings (each a random blend of
two SciFact document vectors plus noise). Build time, single-thread QPS (median of interleaved
repeats) and recall@10 against exact search, for our Collection and for raw FAISS, same run.

Our build time is the whole path: ingest into LanceDB, read back, build the index. Our queries go
through Collection.search (a vector in, Hit objects with payloads out). Two FAISS baselines: an
HNSW built separately with the same parameters, and raw FAISS searching the very index our
Collection holds (equal recall by construction: the difference is our overhead alone).
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.scifact_vectors import scifact_vectors
from uniembed.compress import l2_normalize
from uniembed.index import exact_search
from uniembed.store import Collection

HNSW = {"m": 16, "ef_construction": 64, "ef_search": 128}
NOISE = 0.02
N_QUERIES = 200
REPEATS = 5


def blended(corpus: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.empty((n, corpus.shape[1]), dtype=np.float32)
    for start in range(0, n, 100_000):
        size = min(n, start + 100_000) - start
        first, second = rng.integers(0, len(corpus), size), rng.integers(0, len(corpus), size)
        weight = rng.uniform(0, 1, (size, 1)).astype(np.float32)
        noise = NOISE * rng.standard_normal((size, corpus.shape[1]), dtype=np.float32)
        out[start : start + size] = l2_normalize(corpus[first] + weight * corpus[second] + noise)
    return out


def _timed(search, queries: np.ndarray) -> tuple[float, list]:
    start = time.perf_counter()
    found = [search(query) for query in queries]
    return time.perf_counter() - start, found


def _measure(
    searches: dict, queries: np.ndarray, truth: np.ndarray
) -> dict[str, tuple[float, float]]:
    """name -> (median QPS over interleaved repeats, recall@10). Each entry is (search, to_rows):
    only `search` is timed; `to_rows` turns its result into row numbers for the recall."""
    seconds = {name: [] for name in searches}
    recall = {}
    for search, _ in searches.values():
        search(queries[0])  # warm
    for _ in range(REPEATS):
        for name, (
            search,
            to_rows,
        ) in searches.items():  # interleaved: machine noise hits all alike
            elapsed, found = _timed(search, queries)
            seconds[name].append(elapsed)
            recall[name] = float(
                np.mean([len(set(to_rows(f)) & set(t)) / len(t) for f, t in zip(found, truth)])
            )
    return {
        name: (len(queries) / statistics.median(seconds[name]), recall[name]) for name in searches
    }


def run(model, n: int = 1_000_000) -> list[dict]:
    import faiss

    _, corpus, queries = scifact_vectors(model)
    vectors = blended(corpus, n)
    queries = np.ascontiguousarray(queries[:N_QUERIES])
    _, truth = exact_search(queries, vectors, 10)  # the oracle, batched
    ids = [f"v{i}" for i in range(n)]
    row_of = {id_: i for i, id_ in enumerate(ids)}
    folder = Path(tempfile.mkdtemp(prefix="uniembed-scale-"))
    rows = []
    try:
        as_rows = lambda hits: [row_of[h.id] for h in hits]  # noqa: E731
        rows += _hnsw_rows(
            faiss, folder, ids, vectors, queries, truth, as_rows
        )  # its indexes are freed on return
        for label, options in [
            (
                "uniembed binary + rescore x50",
                dict(index="exact", quantize="binary", index_params={"rescore_multiplier": 50}),
            ),
            (
                "uniembed binary + rescore x100",
                dict(index="exact", quantize="binary", index_params={"rescore_multiplier": 100}),
            ),
            ("uniembed exact float32", dict(index="exact")),
        ]:
            faiss.omp_set_num_threads(2)
            col, build = _collection(folder / label.split()[-1], options, ids, vectors, queries[0])
            faiss.omp_set_num_threads(1)
            result = _measure(
                {label: (lambda q, col=col: col.search(q, k=10), as_rows)}, queries, truth
            )[label]
            rows.append(_row(label, build, *result))
            del col
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    exact_qps = rows[-1]["QPS (1 thread)"]
    same_index_qps = rows[1]["QPS (1 thread)"]
    for row in rows:
        row["x exact QPS"] = round(row["QPS (1 thread)"] / exact_qps, 1)
        row["x raw FAISS (same index)"] = round(row["QPS (1 thread)"] / same_index_qps, 2)
    return rows


def _hnsw_rows(faiss, folder, ids, vectors, queries, truth, as_rows) -> list[dict]:
    raw, raw_build = _raw_faiss_hnsw(faiss, vectors)
    hnsw, hnsw_build = _collection(
        folder / "hnsw", dict(index="hnsw", index_params=HNSW), ids, vectors, queries[0]
    )
    ours_index = hnsw.snapshot().index("default").index
    raw_params = faiss.SearchParametersHNSW(efSearch=HNSW["ef_search"])
    faiss.omp_set_num_threads(1)  # single-thread search
    first_rows = lambda result: result[1][0]  # noqa: E731
    measured = _measure(
        {
            "raw FAISS HNSW, built separately": (
                lambda q: raw.search(q[None, :], 10, params=raw_params),
                first_rows,
            ),
            "raw FAISS on uniembed's HNSW index": (
                lambda q: ours_index.search(q[None, :], 10, params=raw_params),
                first_rows,
            ),
            "uniembed HNSW (Collection.search)": (lambda q: hnsw.search(q, k=10), as_rows),
        },
        queries,
        truth,
    )
    builds = [raw_build, float("nan"), hnsw_build]
    return [_row(name, build, *result) for (name, result), build in zip(measured.items(), builds)]


def _row(label: str, build: float, qps: float, recall: float) -> dict:
    return {
        "method": label,
        "build s": "-" if build != build else round(build, 1),
        "QPS (1 thread)": round(qps, 1),
        "recall@10": round(recall, 3),
    }


def _raw_faiss_hnsw(faiss, vectors):
    faiss.omp_set_num_threads(2)
    start = time.perf_counter()
    index = faiss.IndexHNSWFlat(vectors.shape[1], HNSW["m"], faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = HNSW["ef_construction"]
    index.add(vectors)
    return index, time.perf_counter() - start


def _collection(path, options, ids, vectors, first_query):
    import faiss

    faiss.omp_set_num_threads(2)
    col = Collection.create(path, model=None, dim=vectors.shape[1], **options)
    start = time.perf_counter()
    for i in range(0, len(ids), 100_000):
        col.add(ids[i : i + 100_000], vectors[i : i + 100_000])
    col._snapshot = None  # build from the store, as a freshly opened collection would
    col.search(first_query, k=10)
    return col, time.perf_counter() - start
