"""Reciprocal rank fusion of several rankings (hybrid search: dense + BM25)."""

from __future__ import annotations

from uniembed.types import Hit

RRF_K = 60  # reciprocal rank fusion constant (Cormack et al.)


def fuse(rankings: list[list[Hit]], k: int) -> list[Hit]:
    """Reciprocal rank fusion: score = sum over rankings of 1 / (RRF_K + rank)."""
    scores: dict[str, float] = {}
    payloads: dict[str, dict] = {}
    for ranking in rankings:
        for rank, hit in enumerate(ranking, start=1):
            scores[hit.id] = scores.get(hit.id, 0.0) + 1.0 / (RRF_K + rank)
            payloads.setdefault(hit.id, hit.payload)
    best = sorted(scores, key=lambda id_: (-scores[id_], id_))[:k]
    return [Hit(id_, scores[id_], payloads[id_]) for id_ in best]
