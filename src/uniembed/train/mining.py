"""Hard-negative mining: for each anchor, the corpus texts the current model ranks highest that
are not one of its known positives (and, with a guide model, that the guide does not rate above
the positive: those are likely unlabelled positives, the false negatives that hurt training)."""

from __future__ import annotations

import numpy as np

from uniembed.index.base import exact_search


def mine_hard_negatives(
    model,
    anchors: list[str],
    positives: list[str],
    corpus: list[str],
    k: int,
    *,
    guide=None,
    depth: int = 50,
    block: int = 1024,
) -> list[list[str]]:
    """k negatives per anchor (fewer only when the corpus is too small), best-ranked first."""
    known: dict[str, set[str]] = {}
    for anchor, positive in zip(anchors, positives):
        known.setdefault(anchor, set()).add(positive)
    corpus = list(dict.fromkeys(corpus))
    doc_vectors = model.encode(corpus, prompt="document", show_progress=len(corpus) > 5000)
    query_vectors = model.encode(anchors, prompt="query", show_progress=False)
    guide_docs = guide_queries = guide_positive = None
    if guide is not None:
        guide_docs = guide.encode(corpus, prompt="document", show_progress=len(corpus) > 5000)
        guide_queries = guide.encode(anchors, prompt="query", show_progress=False)
        guide_positive = (
            guide_queries * guide.encode(positives, prompt="document", show_progress=False)
        ).sum(1)
    depth = min(len(corpus), max(depth, k + 10))
    mined = []
    for start in range(0, len(anchors), block):
        _, rows = exact_search(query_vectors[start : start + block], doc_vectors, depth)
        for offset, candidates in enumerate(rows):
            i = start + offset
            chosen = []
            for row in candidates:
                if row < 0 or corpus[row] in known[anchors[i]]:
                    continue
                if (
                    guide is not None
                    and float(guide_queries[i] @ guide_docs[row]) > guide_positive[i]
                ):
                    continue  # the guide rates it above the positive: probably relevant, not a negative
                chosen.append(corpus[row])
                if len(chosen) == k:
                    break
            mined.append(chosen)
    return mined


def mining_corpus(data_path, split: str, data) -> list[str]:
    """Where negatives are mined from. A BEIR folder: its whole corpus; a pairs file: every
    positive and given negative of `data` (a PairSet)."""
    from pathlib import Path

    if Path(data_path).is_dir():
        from uniembed.eval.loaders import load_beir

        return load_beir(Path(data_path), split).corpus
    return list(dict.fromkeys([*data.positives, *(n for ns in data.negatives for n in ns)]))


def fill_to(negatives: list[list[str]], k: int, corpus: list[str], seed: int) -> list[list[str]]:
    """Every list padded to k with random corpus texts (batches need equal counts)."""
    rng = np.random.default_rng(seed)
    out = []
    for chosen in negatives:
        extra = list(chosen)
        while len(extra) < k:
            extra.append(corpus[int(rng.integers(len(corpus)))])
        out.append(extra)
    return out
