"""SciFact quality vs memory: nDCG@10 and first-stage bytes per vector for each index kind,
compression and search mode of a Collection, all on the same vectors. ms/query: the 300 test
queries one at a time, in ROUNDS rounds interleaved across the configurations; median (min-max)."""

from __future__ import annotations

import shutil
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from bench.scifact_vectors import scifact_vectors
from uniembed.compress import truncate
from uniembed.eval.metrics import ndcg_at_k
from uniembed.store import Collection

# (label, create options, search mode)
CONFIGS = [
    ("exact float32", dict(index="exact"), "dense"),
    ("HNSW float32", dict(index="hnsw"), "dense"),
    ("int8 + rescore x4", dict(index="exact", quantize="int8"), "dense"),
    *[
        (
            f"binary + rescore x{m}",
            dict(index="exact", quantize="binary", index_params={"rescore_multiplier": m}),
            "dense",
        )
        for m in (1, 2, 4, 10)
    ],
    ("binary HNSW + rescore x4", dict(index="hnsw", quantize="binary"), "dense"),
    ("Matryoshka 192 dims", dict(index="exact", dim=192), "dense"),
    ("Matryoshka 96 dims", dict(index="exact", dim=96), "dense"),
    ("IVF-PQ + rescore x4", dict(index="ivfpq"), "dense"),
    ("BM25 (text only)", dict(index="exact"), "text"),
    ("hybrid BM25 + dense (RRF)", dict(index="exact"), "hybrid"),
]
ROUNDS = 3


def run(model) -> list[dict]:
    data, corpus, queries = scifact_vectors(model)
    folder = Path(tempfile.mkdtemp(prefix="uniembed-bench-"))
    rows, exact_ndcg, searches = [], None, []
    try:
        for label, options, mode in CONFIGS:
            dim = options.get("dim")
            col = Collection.create(folder / label.replace(" ", "_"), model=model, **options)
            vectors = truncate(corpus, dim) if dim else corpus
            for start in range(0, len(vectors), 2048):
                stop = start + 2048
                col.add(
                    data.corpus_ids[start:stop], vectors[start:stop], texts=data.corpus[start:stop]
                )
            query_vectors = truncate(queries, dim) if dim else queries
            ndcg = _ndcg(col, data, query_vectors, mode)
            exact_ndcg = exact_ndcg or ndcg
            info = col.info()
            rows.append(
                {
                    "configuration": label,
                    "nDCG@10": round(100 * ndcg, 2),
                    "% of exact": round(100 * ndcg / exact_ndcg, 1),
                    "bytes/vector": "-" if mode == "text" else round(info.bytes_per_vector, 1),
                }
            )
            searches.append(
                (
                    col,
                    [v if mode == "dense" else t for t, v in zip(data.queries, query_vectors)],
                    mode,
                )
            )
        seconds = [[] for _ in searches]
        for _ in range(ROUNDS):  # interleaved: every configuration once per round
            for i, (col, inputs, mode) in enumerate(searches):
                seconds[i].append(_time_queries(col, inputs, mode))
        for row, times in zip(rows, seconds):
            ms = [1000 * t / len(data.queries) for t in times]
            row["ms/query"] = f"{statistics.median(ms):.2f} ({min(ms):.2f}-{max(ms):.2f})"
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return rows


def _ndcg(col: Collection, data, query_vectors: np.ndarray, mode: str) -> float:
    scores = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for qid, text, vector in zip(data.query_ids, data.queries, query_vectors):
            hits = col.search(vector if mode == "dense" else text, k=10, mode=mode)
            scores.append(ndcg_at_k([h.id for h in hits], data.qrels[qid], 10))
    return float(np.mean(scores))


def _time_queries(col: Collection, inputs: list, mode: str) -> float:
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for query in inputs:
            col.search(query, k=10, mode=mode)
    return time.perf_counter() - started
