"""Multi-vector retrieval on SciFact with the default model's token vectors (issue 8, first stage):
exact MaxSim as the oracle; MUVERA FDE + MaxSim rerank and the per-token single-vector heuristic,
as Recall@100 relative to exact MaxSim against the number of candidates reranked.

    python bench/multivector.py       # ~10 minutes on 2 cores; prints markdown tables
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "scifact"


def recall_at(ranked: list[list[str]], qrels: dict, query_ids: list[str], k: int) -> float:
    values = []
    for qid, ranking in zip(query_ids, ranked):
        relevant = {d for d, g in qrels[qid].items() if g > 0}
        values.append(len(relevant & set(ranking[:k])) / len(relevant))
    return float(np.mean(values))


def run() -> dict[str, list[dict]]:
    import uniembed
    from uniembed.eval.loaders import load_beir
    from uniembed.eval.metrics import ndcg_at_k
    from uniembed.multivector import FDE, FDEConfig, maxsim

    data = load_beir(DATA, "test")
    model = uniembed.load()
    started = time.perf_counter()
    raw_docs = model.encode_tokens(data.corpus, normalize=False)
    encode_s = time.perf_counter() - started
    raw_queries = model.encode_tokens(data.queries, normalize=False)
    unit = lambda x: x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)  # noqa: E731
    doc_tokens = [unit(t) for t in raw_docs]
    query_tokens = [unit(t) for t in raw_queries]
    # the single-vector model is the mean of the raw token vectors (mean pooling), normalised
    single = unit(np.stack([t.mean(axis=0) for t in raw_docs]))
    single_q = unit(np.stack([t.mean(axis=0) for t in raw_queries]))
    del raw_docs
    ids = np.asarray(data.corpus_ids)

    def evaluate(rankings):
        return recall_at(rankings, data.qrels, data.query_ids, 100)

    def ndcg(rankings):
        return float(np.mean([ndcg_at_k(r, data.qrels[q], 10) for q, r in zip(data.query_ids, rankings)]))

    # exact MaxSim over the whole corpus: the oracle
    started = time.perf_counter()
    exact_rank = []
    for q in query_tokens:
        scores = maxsim(q, doc_tokens)
        exact_rank.append(list(ids[np.argsort(-scores)[:100]]))
    exact_s = (time.perf_counter() - started) / len(query_tokens)
    exact_recall = evaluate(exact_rank)
    single_rank = [list(ids[np.argsort(-(single @ q))[:100]]) for q in single_q]
    quality = [{"method": "single vector (mean pooling)", "nDCG@10": round(100 * ndcg(single_rank), 2),
                "Recall@100": round(100 * evaluate(single_rank), 2), "ms/query": "-"},
               {"method": "exact MaxSim (token vectors)", "nDCG@10": round(100 * ndcg(exact_rank), 2),
                "Recall@100": round(100 * exact_recall, 2), "ms/query": round(1000 * exact_s, 1)}]

    def rerank(q, candidates):
        scores = maxsim(q, [doc_tokens[i] for i in candidates])
        order = np.argsort(-scores)[:100]
        return list(ids[np.asarray(candidates)[order]])

    rows = []
    for config in (FDEConfig(repetitions=10, k_sim=4, d_proj=16), FDEConfig(repetitions=20, k_sim=5, d_proj=16)):
        fde = FDE(model.dim, config)
        docs = fde.documents(doc_tokens)
        queries = fde.queries(query_tokens)
        for candidates in (100, 200, 500, 1000):
            started = time.perf_counter()
            ranked = [rerank(q, np.argsort(-(docs @ fq))[:candidates]) for q, fq in zip(query_tokens, queries)]
            ms = 1000 * (time.perf_counter() - started) / len(ranked)
            rows.append({"first stage": f"FDE R={config.repetitions} k_sim={config.k_sim} d_proj={config.d_proj} ({fde.output_dim} dims)",
                         "candidates reranked": candidates, "Recall@100 / exact": round(evaluate(ranked) / exact_recall, 3),
                         "ms/query": round(ms, 1)})
    # the classical heuristic: each query token searches the token index, the union is reranked
    flat = np.concatenate(doc_tokens)
    owner = np.repeat(np.arange(len(doc_tokens)), [len(t) for t in doc_tokens])
    settings = (5, 20, 50)
    ranked = {k: [] for k in settings}
    sizes = {k: [] for k in settings}
    seconds = {k: 0.0 for k in settings}
    for q in query_tokens:
        started = time.perf_counter()
        similarity = -(q @ flat.T)  # each query token against every document token
        shared = time.perf_counter() - started
        for per_token in settings:
            started = time.perf_counter()
            hits = np.argpartition(similarity, per_token, axis=1)[:, :per_token]
            candidates = np.unique(owner[hits.ravel()])
            sizes[per_token].append(len(candidates))
            ranked[per_token].append(rerank(q, candidates))
            seconds[per_token] += shared + time.perf_counter() - started
    for per_token in settings:
        rows.append({"first stage": f"per-token heuristic, {per_token} token hits per query token",
                     "candidates reranked": int(np.mean(sizes[per_token])),
                     "Recall@100 / exact": round(evaluate(ranked[per_token]) / exact_recall, 3),
                     "ms/query": round(1000 * seconds[per_token] / len(query_tokens), 1)})
    bytes_per_doc = float(np.mean([t.nbytes for t in doc_tokens])) / 2  # stored as float16
    quality.append({"method": f"(token vectors: {bytes_per_doc / 1024:.0f} KiB per document as float16; encoding {encode_s:.0f} s)",
                    "nDCG@10": "", "Recall@100": "", "ms/query": ""})
    return {"SciFact: single vector vs exact MaxSim": quality, "First stages against exact MaxSim": rows}


def main() -> int:
    from run import print_tables  # bench/run.py: `python bench/multivector.py` puts bench/ on sys.path

    print_tables(run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
