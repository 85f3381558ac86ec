"""The vector index interface and its registry.

An index is built over the (n, dim) float32 vectors of one field and answers top-k inner-product
queries. `allowed` (a boolean mask over rows, or None for all) restricts the search: it carries
metadata filters and tombstones of deleted rows, and is applied inside the search, not after it.
Indexes that rescore (binary, int8, IVF-PQ) read the float vectors passed to `search`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

import numpy as np

from uniembed.errors import InputError
from uniembed.index.params import Param, check_params

INDEX_KINDS: dict[str, type[VectorIndex]] = {}


def register_index(name: str) -> Callable[[type[VectorIndex]], type[VectorIndex]]:
    def add(cls: type[VectorIndex]) -> type[VectorIndex]:
        cls.kind = name
        INDEX_KINDS[name] = cls
        return cls

    return add


def check_index_params(kind: str, params: dict | None, dim: int | None = None) -> dict:
    """The full parameters of an index kind (defaults filled in), each checked for type and range
    (see uniembed.index.params), and against the vector dimension when it is given."""
    if kind not in INDEX_KINDS:
        raise InputError(f"unknown index kind {kind!r}; known: {sorted(INDEX_KINDS)}")
    cls = INDEX_KINDS[kind]
    full = check_params(kind, cls.PARAMS, params)
    if dim is not None:
        cls.check_dim(full, dim)
    return full


def create_index(kind: str, vectors: np.ndarray, params: dict | None = None) -> VectorIndex:
    """Build an index of `kind` over `vectors`; params are the kind's own (see each class)."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    full = check_index_params(kind, params, vectors.shape[1])
    return INDEX_KINDS[kind](vectors, **full)


class VectorIndex(ABC):
    kind: str = ""
    PARAMS: dict[str, Param] = {}  # parameter name -> its default and bounds
    # Indexes that learn from the vectors they are built on (codebooks, quantiser ranges) say so:
    # the snapshot rebuilds them when the collection has doubled since, so a long-lived process
    # searches as well as a freshly opened one.
    TRAINED = False

    @classmethod
    def check_dim(cls, params: dict, dim: int) -> None:
        """InputError when the (already range-checked) parameters cannot index `dim` dimensions.
        Most kinds index any dimension: this default accepts it."""
        return None

    @abstractmethod
    def __init__(self, vectors: np.ndarray, **params): ...

    @abstractmethod
    def add(self, vectors: np.ndarray) -> None:
        """Append rows (numbered after the existing ones)."""

    @abstractmethod
    def search(
        self, queries: np.ndarray, k: int, vectors: np.ndarray, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(scores, rows), each (n_queries, k), best first; missing results are (-inf, -1)."""

    @staticmethod
    def too_deep(depth: int, vectors: np.ndarray) -> bool:
        """Whether a first stage asked for `depth` candidates should give way to an exact search:
        at half the rows or more, exact is cheaper, and rescoring (queries, depth, dim) gathered
        vectors could otherwise take gigabytes for one request (k=10,000 x multiplier 100)."""
        return 2 * depth >= len(vectors)

    @property
    @abstractmethod
    def bytes_per_vector(self) -> float:
        """Memory of the first search stage per vector (what must sit in RAM to search)."""


def exact_search(
    queries: np.ndarray, vectors: np.ndarray, k: int, rows: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Brute-force top-k inner product over `vectors` (or only over `rows` of it: indices, or a
    boolean mask)."""
    if rows is not None and rows.dtype == bool:
        rows = np.flatnonzero(rows)
    if rows is not None and len(rows) == 0:
        return no_results(len(queries), k)
    candidates = vectors if rows is None else vectors[rows]
    scores = np.asarray(queries, dtype=np.float32) @ candidates.T
    top_scores, top = top_k(scores, k)
    if rows is not None:
        top = np.where(top >= 0, rows[np.maximum(top, 0)], -1)
    return top_scores, top


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Best k columns per row of a score matrix, padded with (-inf, -1) when there are fewer."""
    n_queries, n = scores.shape
    take = min(k, n)
    if take == 0:
        return no_results(n_queries, k)
    part = (
        np.argpartition(-scores, take - 1, axis=1)[:, :take]
        if take < n
        else np.tile(np.arange(n), (n_queries, 1))
    )
    part_scores = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-part_scores, axis=1, kind="stable")
    rows = np.take_along_axis(part, order, axis=1).astype(np.int64)
    best = np.take_along_axis(part_scores, order, axis=1).astype(np.float32)
    return _pad(best, rows, k)


def no_results(n_queries: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(scores, rows) of queries that found nothing: (-inf, -1) everywhere."""
    return np.full((n_queries, k), -np.inf, np.float32), np.full((n_queries, k), -1, np.int64)


def _pad(scores: np.ndarray, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    missing = k - scores.shape[1]
    if missing <= 0:
        return scores, rows
    n = scores.shape[0]
    return (
        np.hstack([scores, np.full((n, missing), -np.inf, np.float32)]),
        np.hstack([rows, np.full((n, missing), -1, np.int64)]),
    )


def rescore(
    queries: np.ndarray, candidates: np.ndarray, vectors: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Re-rank candidate rows (queries, m; -1 = none) by exact inner product with `vectors`."""
    safe = np.maximum(candidates, 0)
    scores = np.einsum("qd,qmd->qm", queries, vectors[safe])
    scores = np.where(candidates >= 0, scores, -np.inf).astype(np.float32)
    best, pos = top_k(scores, k)
    rows = np.where(pos >= 0, np.take_along_axis(candidates, np.maximum(pos, 0), axis=1), -1)
    return best, np.where(np.isfinite(best), rows, -1)
