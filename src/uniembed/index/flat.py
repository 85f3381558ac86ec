"""Exact search: brute-force inner products. The test oracle every other index is measured against."""

from __future__ import annotations

import numpy as np

from uniembed.index.base import VectorIndex, exact_search, register_index


@register_index("exact")
class ExactIndex(VectorIndex):
    PARAMS: dict = {}

    def __init__(self, vectors: np.ndarray):
        self.dim = vectors.shape[1]

    def add(self, vectors: np.ndarray) -> None:
        pass  # searches read the float vectors they are given

    def search(self, queries, k, vectors, allowed=None):
        rows = None if allowed is None else np.flatnonzero(allowed)
        return exact_search(queries, vectors, k, rows)

    @property
    def bytes_per_vector(self) -> float:
        return 4.0 * self.dim
