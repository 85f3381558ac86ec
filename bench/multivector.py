"""Multi-vector retrieval on SciFact (issue 8): the default model's token vectors in multi-vector
collections (`Collection.create(..., multivector="muvera")`), searched three ways, each ending in
an exact MaxSim rerank: the FDE index's candidates, every document (exact MaxSim, the oracle) and
the per-token heuristic (each query token's nearest document tokens, union of their documents).

Reported: nDCG@10 and Recall@100 against the single-vector model; for each first stage, Recall@100
relative to exact MaxSim's against the documents it hands to the rerank, and ms per query through
`Collection.search`; then the candidates each needs for 90% of exact MaxSim's Recall@100.

    python bench/multivector.py       # ~15 minutes on 2 cores the first time (token vectors cached)
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "scifact"
CACHE = Path(__file__).resolve().parent / ".cache"
FDE_CONFIGS = ({"repetitions": 10, "k_sim": 4, "d_proj": 16}, {"repetitions": 20, "k_sim": 5, "d_proj": 16},
               {"repetitions": 20, "k_sim": 5, "d_proj": 16, "final_dim": 2560})
FDE_CANDIDATES = (10, 20, 30, 50, 100, 200)
TOKEN_HITS = (1, 2, 3, 5, 10)
TARGET = 0.90  # share of exact MaxSim's Recall@100


def recall_at(rankings: list[list[str]], qrels: dict, query_ids: list[str], k: int = 100) -> float:
    values = []
    for qid, ranking in zip(query_ids, rankings):
        relevant = {d for d, g in qrels[qid].items() if g > 0}
        values.append(len(relevant & set(ranking[:k])) / len(relevant))
    return float(np.mean(values))


def encoded(model, data) -> dict:
    """Token vectors (float16, flat + counts) and single vectors of SciFact, cached by fingerprint."""
    cache = CACHE / f"scifact-multivector-{model.token_fingerprint[:16]}.npz"
    if cache.is_file():
        return dict(np.load(cache))
    started = time.perf_counter()
    docs = model.encode_tokens(data.corpus, prompt="document")
    encode_s = time.perf_counter() - started
    queries = model.encode_tokens(data.queries, prompt="query")
    out = {"docs": np.concatenate(docs).astype(np.float16), "doc_counts": np.array([len(t) for t in docs]),
           "queries": np.concatenate(queries), "query_counts": np.array([len(t) for t in queries]),
           "single_docs": model.encode(data.corpus, prompt="document"), "single_queries": model.encode(data.queries, prompt="query"),
           "encode_s": np.array(encode_s)}
    CACHE.mkdir(exist_ok=True)
    np.savez(cache, **out)
    return out


def split(flat: np.ndarray, counts: np.ndarray) -> list[np.ndarray]:
    return np.split(flat.astype(np.float32), np.cumsum(counts)[:-1])


def needed(points: list[tuple[float, float]], target: float) -> float | None:
    """Candidates at which a (candidates, relative recall) curve reaches `target`, interpolated on
    log(candidates); None when it never does."""
    points = sorted(points)
    for (c0, r0), (c1, r1) in zip(points, points[1:]):
        if r0 >= target:
            return c0
        if r1 >= target:
            return float(np.exp(np.log(c0) + (target - r0) / (r1 - r0) * (np.log(c1) - np.log(c0))))
    return points[-1][0] if points and points[-1][1] >= target else None


def run() -> dict[str, list[dict]]:
    import uniembed
    from uniembed.eval.loaders import load_beir
    from uniembed.eval.metrics import ndcg_at_k
    from uniembed.store import Collection

    data = load_beir(DATA, "test")
    model = uniembed.load()
    cached = encoded(model, data)
    doc_tokens = split(cached["docs"], cached["doc_counts"])
    query_tokens = split(cached["queries"], cached["query_counts"])
    ids = list(data.corpus_ids)

    def quality(rankings):
        ndcg = np.mean([ndcg_at_k(r, data.qrels[q], 10) for q, r in zip(data.query_ids, rankings)])
        return round(100 * float(ndcg), 2), recall_at(rankings, data.qrels, data.query_ids)

    def searched(col, **options):
        started = time.perf_counter()
        rankings = [[h.id for h in col.search(q, k=100, **options)] for q in query_tokens]
        return rankings, 1000 * (time.perf_counter() - started) / len(query_tokens)

    single_scores = cached["single_queries"] @ cached["single_docs"].T
    single_rank = [[ids[i] for i in np.argsort(-row)[:100]] for row in single_scores]
    rows, curves, sizes = [], {}, []
    with tempfile.TemporaryDirectory() as tmp:
        exact = None
        for config in FDE_CONFIGS:
            name = f"R={config['repetitions']} k_sim={config['k_sim']} d_proj={config['d_proj']}"
            name += f" final={config['final_dim']}" if config.get("final_dim") else ""
            started = time.perf_counter()
            col = Collection.create(Path(tmp) / name.replace(" ", "_"), model=None, dim=model.token_dim,
                                    multivector="muvera", fde=config)
            col.add(ids, doc_tokens)
            col.search(query_tokens[0], k=1)  # builds the snapshot and the FDE index
            build_s = time.perf_counter() - started
            if exact is None:
                exact_rank, exact_ms = searched(col, first_stage="exact")
                exact = quality(exact_rank)
                info = col.info()
                sizes.append({"what": "token vectors, float16", "bytes per document": round(info.token_bytes_per_item)})
                token_col = col
            dims = col.meta.fields["default"]
            sizes.append({"what": f"FDE {name} ({dims} dims, float32)", "bytes per document": 4 * dims})
            for candidates in FDE_CANDIDATES:
                ranking, ms = searched(col, candidates=candidates)
                ndcg, recall = quality(ranking)
                curves.setdefault(f"FDE {name}", []).append((candidates, recall / exact[1]))
                rows.append({"first stage": f"FDE {name} ({dims} dims; built in {build_s:.0f} s)", "candidates": candidates,
                             "Recall@100 / exact": round(recall / exact[1], 3), "nDCG@10": ndcg, "ms/query": round(ms, 1)})
        # the per-token heuristic: one similarity pass per query serves every setting; the
        # collection's own heuristic search is timed separately at 10 hits per token
        flat = np.concatenate(doc_tokens)
        owner = np.repeat(np.arange(len(doc_tokens)), [len(t) for t in doc_tokens])
        from uniembed.multivector import maxsim

        found = {hits: [] for hits in TOKEN_HITS}
        for q in query_tokens:
            similarity = q @ flat.T
            top = np.argpartition(-similarity, max(TOKEN_HITS), axis=1)[:, : max(TOKEN_HITS)]
            order = np.take_along_axis(similarity, top, axis=1).argsort(axis=1)[:, ::-1]
            top = np.take_along_axis(top, order, axis=1)
            for hits in TOKEN_HITS:
                candidates = np.unique(owner[top[:, :hits].ravel()])
                scores = maxsim(q, [doc_tokens[i] for i in candidates])
                found[hits].append(([ids[i] for i in candidates[np.argsort(-scores)[:100]]], len(candidates)))
        _, heuristic_ms = searched(token_col, first_stage="tokens", token_hits=10)
        tokens_per_query = float(np.mean([len(q) for q in query_tokens]))
        for hits in TOKEN_HITS:
            ranking = [r for r, _ in found[hits]]
            mean_candidates = float(np.mean([n for _, n in found[hits]]))
            ndcg, recall = quality(ranking)
            curves.setdefault("per-token heuristic", []).append((mean_candidates, recall / exact[1]))
            rows.append({"first stage": f"per-token heuristic, {hits} hits per query token ({hits * tokens_per_query:.0f} token hits)",
                         "candidates": round(mean_candidates, 1), "Recall@100 / exact": round(recall / exact[1], 3),
                         "nDCG@10": ndcg, "ms/query": round(heuristic_ms, 1) if hits == 10 else "-"})
    single = quality(single_rank)
    quality_rows = [{"method": "single vector (the model's mean pooling)", "nDCG@10": single[0], "Recall@100": round(100 * single[1], 2), "ms/query": "-"},
                    {"method": "exact MaxSim (token vectors)", "nDCG@10": exact[0], "Recall@100": round(100 * exact[1], 2), "ms/query": round(exact_ms, 1)}]
    heuristic_needs = needed(curves.pop("per-token heuristic"), TARGET)
    goal = []
    for name, curve in curves.items():
        fde_needs = needed(curve, TARGET)
        goal.append({"first stage": name, f"candidates for {TARGET:.0%} of exact Recall@100": _rounded(fde_needs),
                     "per-token heuristic needs": _rounded(heuristic_needs),
                     "ratio": round(fde_needs / heuristic_needs, 2) if fde_needs and heuristic_needs else "-"})
    sizes.append({"what": f"(token vectors encoded in {float(cached['encode_s']):.0f} s, {tokens_per_query:.1f} tokens per query)",
                  "bytes per document": ""})
    return {"SciFact: single vector vs exact MaxSim": quality_rows, "First stages, each reranked by exact MaxSim": rows,
            "The issue's goal: candidates for 90% of exact MaxSim's Recall@100": goal, "Storage": sizes}


def _rounded(value: float | None):
    return "not reached" if value is None else round(value, 1)


def main() -> int:
    from run import print_tables  # bench/run.py: `python bench/multivector.py` puts bench/ on sys.path

    print_tables(run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
