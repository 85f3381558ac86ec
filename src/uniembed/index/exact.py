"""Exact top-k by inner product, fed block by block so memory is bounded by one block."""

from __future__ import annotations

import numpy as np


class TopK:
    """Running top-k of `queries @ block.T` over blocks of database vectors.

    Keeps, per query, the k best (score, global row) pairs seen so far; memory is
    O(n_queries * (k + block rows)), independent of the database size.
    """

    def __init__(self, queries: np.ndarray, k: int):
        self.queries = np.ascontiguousarray(queries, dtype=np.float32)
        self.k = k
        n = len(self.queries)
        self.scores = np.full((n, 0), -np.inf, dtype=np.float32)
        self.rows = np.zeros((n, 0), dtype=np.int64)
        self.seen = 0

    def add(self, block: np.ndarray) -> None:
        """Score one block of database vectors (rows numbered after those already added)."""
        scores = self.queries @ np.asarray(block, dtype=np.float32).T  # (queries, block)
        rows = np.broadcast_to(np.arange(self.seen, self.seen + len(block)), scores.shape)
        self.seen += len(block)
        scores = np.concatenate([self.scores, scores], axis=1)
        rows = np.concatenate([self.rows, rows], axis=1)
        if scores.shape[1] > self.k:
            keep = np.argpartition(-scores, self.k - 1, axis=1)[:, : self.k]
            scores = np.take_along_axis(scores, keep, axis=1)
            rows = np.take_along_axis(rows, keep, axis=1)
        self.scores, self.rows = scores, rows

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """(scores, rows), each (n_queries, min(k, seen)), best first; ties broken by lower row."""
        order = np.lexsort((self.rows, -self.scores), axis=1)
        return np.take_along_axis(self.scores, order, axis=1), np.take_along_axis(
            self.rows, order, axis=1
        )
