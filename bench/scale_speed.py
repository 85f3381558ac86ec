"""Speed at scale: n x 384 vectors (SciFact vectors replicated with noise, so neighbours have real
structure). Build time, single-thread QPS and recall@10 against exact search, for our Collection
(HNSW, binary + rescore, exact) and for raw FAISS HNSW with the same parameters, in the same run.

Our build time is the whole path: ingest into LanceDB, read back, build the index. Queries go
through Collection.search (vector in, Hit objects with payloads out)."""
from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from scifact_vectors import scifact_vectors
from uniembed.compress import l2_normalize
from uniembed.index import exact_search
from uniembed.store import Collection

HNSW = {"m": 16, "ef_construction": 64, "ef_search": 64}
NOISE = 0.02  # per coordinate: a noise vector of norm ~0.4 around each SciFact document
N_QUERIES = 200


def replicated(corpus: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.empty((n, corpus.shape[1]), dtype=np.float32)
    for start in range(0, n, 100_000):
        rows = np.arange(start, min(n, start + 100_000))
        noisy = corpus[rows % len(corpus)] + NOISE * rng.standard_normal((len(rows), corpus.shape[1]), dtype=np.float32)
        out[rows] = l2_normalize(noisy)
    return out


def _qps_and_recall(search, queries: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    search(queries[0])  # warm
    found = []
    start = time.perf_counter()
    for query in queries:
        found.append(search(query))
    elapsed = time.perf_counter() - start
    recall = np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth)])
    return len(queries) / elapsed, float(recall)


def run(model, n: int = 1_000_000) -> list[dict]:
    import faiss

    _, corpus, queries = scifact_vectors(model)
    vectors = replicated(corpus, n)
    queries = np.ascontiguousarray(queries[:N_QUERIES])
    faiss.omp_set_num_threads(1)  # single-thread search, as the issue asks
    _, truth = exact_search(queries, vectors, 10)  # the oracle, batched
    rows = [_raw_faiss_hnsw(faiss, vectors, queries, truth)]
    folder = Path(tempfile.mkdtemp(prefix="uniembed-scale-"))
    try:
        ids = [f"v{i}" for i in range(n)]
        for label, options in [
            ("uniembed HNSW", dict(index="hnsw", index_params=HNSW)),
            ("uniembed binary + rescore x10", dict(index="exact", quantize="binary", index_params={"rescore_multiplier": 10})),
            ("uniembed binary + rescore x50", dict(index="exact", quantize="binary", index_params={"rescore_multiplier": 50})),
            ("uniembed exact float32", dict(index="exact")),
        ]:
            rows.append(_collection_row(folder / label.split()[1], label, options, ids, vectors, queries, truth))
            shutil.rmtree(folder / label.split()[1], ignore_errors=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    exact_qps = rows[-1]["QPS (1 thread)"]
    raw_qps = rows[0]["QPS (1 thread)"]
    for row in rows:
        row["vs exact"] = round(row["QPS (1 thread)"] / exact_qps, 1)
        row["vs raw FAISS HNSW"] = round(row["QPS (1 thread)"] / raw_qps, 2)
    return rows


def _row(label: str, build: float, qps: float, recall: float) -> dict:
    return {"method": label, "build s": round(build, 1), "QPS (1 thread)": round(qps, 1), "recall@10": round(recall, 3)}


def _raw_faiss_hnsw(faiss, vectors, queries, truth) -> dict:
    faiss.omp_set_num_threads(2)
    start = time.perf_counter()
    index = faiss.IndexHNSWFlat(vectors.shape[1], HNSW["m"], faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = HNSW["ef_construction"]
    index.add(vectors)
    build = time.perf_counter() - start
    faiss.omp_set_num_threads(1)
    params = faiss.SearchParametersHNSW(efSearch=HNSW["ef_search"])
    qps, recall = _qps_and_recall(lambda q: index.search(q[None, :], 10, params=params)[1][0], queries, truth)
    return _row("raw FAISS HNSW (same parameters)", build, qps, recall)


def _collection_row(path, label, options, ids, vectors, queries, truth) -> dict:
    import faiss

    faiss.omp_set_num_threads(2)
    col = Collection.create(path, model=None, dim=vectors.shape[1], **options)
    start = time.perf_counter()
    for i in range(0, len(ids), 100_000):
        col.add(ids[i : i + 100_000], vectors[i : i + 100_000])
    col._snapshot = None  # measure the index build from the store, as a fresh process would
    col.search(queries[0], k=10)
    build = time.perf_counter() - start
    faiss.omp_set_num_threads(1)
    row_of = {id_: i for i, id_ in enumerate(ids)}
    qps, recall = _qps_and_recall(lambda q: [row_of[h.id] for h in col.search(q, k=10)], queries, truth)
    return _row(label, build, qps, recall)
