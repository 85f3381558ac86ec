"""SciFact quality vs memory: nDCG@10 and first-stage bytes per vector for each index kind,
compression and search mode of a Collection, all on the same vectors."""
from __future__ import annotations

import shutil
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from scifact_vectors import scifact_vectors
from uniembed.compress import truncate
from uniembed.eval.metrics import ndcg_at_k
from uniembed.store import Collection

# (label, create options, search mode)
CONFIGS = [
    ("exact float32", dict(index="exact"), "dense"),
    ("HNSW float32", dict(index="hnsw"), "dense"),
    ("int8 + rescore x4", dict(index="exact", quantize="int8"), "dense"),
    *[(f"binary + rescore x{m}", dict(index="exact", quantize="binary", index_params={"rescore_multiplier": m}), "dense")
      for m in (1, 2, 4, 10)],
    ("binary HNSW + rescore x4", dict(index="hnsw", quantize="binary"), "dense"),
    ("Matryoshka 192 dims", dict(index="exact", dim=192), "dense"),
    ("Matryoshka 96 dims", dict(index="exact", dim=96), "dense"),
    ("IVF-PQ + rescore x4", dict(index="ivfpq"), "dense"),
    ("BM25 (text only)", dict(index="exact"), "text"),
    ("hybrid BM25 + dense (RRF)", dict(index="exact"), "hybrid"),
]


def run(model) -> list[dict]:
    data, corpus, queries = scifact_vectors(model)
    folder = Path(tempfile.mkdtemp(prefix="uniembed-bench-"))
    rows, exact_ndcg = [], None
    try:
        for label, options, mode in CONFIGS:
            dim = options.get("dim")
            col = Collection.create(folder / label.replace(" ", "_"), model=model, **options)
            vectors = truncate(corpus, dim) if dim else corpus
            for start in range(0, len(vectors), 2048):
                stop = start + 2048
                col.add(data.corpus_ids[start:stop], vectors[start:stop], texts=data.corpus[start:stop])
            query_vectors = truncate(queries, dim) if dim else queries
            ndcg, seconds = _ndcg(col, data, query_vectors, mode)
            exact_ndcg = exact_ndcg or ndcg
            info = col.info()
            rows.append({
                "configuration": label, "nDCG@10": round(100 * ndcg, 2), "% of exact": round(100 * ndcg / exact_ndcg, 1),
                "bytes/vector": "-" if mode == "text" else round(info.bytes_per_vector, 1),
                "ms/query": round(1000 * seconds / len(data.queries), 2),
            })
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return rows


def _ndcg(col: Collection, data, query_vectors: np.ndarray, mode: str) -> tuple[float, float]:
    col.search(query_vectors[0], k=10)  # build the snapshot and index before timing
    scores = []
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for qid, text, vector in zip(data.query_ids, data.queries, query_vectors):
            hits = col.search(vector if mode == "dense" else text, k=10, mode=mode)
            scores.append(ndcg_at_k([h.id for h in hits], data.qrels[qid], 10))
    return float(np.mean(scores)), time.perf_counter() - start
