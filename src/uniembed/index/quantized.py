"""Quantised first stages with exact rescoring: binary (Hamming) and int8 (scalar)."""

from __future__ import annotations

import numpy as np

from uniembed.compress.quantize import Int8Quantizer, binarize, hamming_distances
from uniembed.index.base import VectorIndex, exact_search, register_index, rescore, top_k
from uniembed.index.growing import GrowingArray
from uniembed.index.params import EF, GRAPH_DEGREE, RESCORE, Param


@register_index("binary")
class BinaryIndex(VectorIndex):
    """One sign bit per dimension; Hamming distance picks k * rescore_multiplier candidates, which
    are re-ranked by exact inner product with the float query (32x less first-stage memory).

    graph="flat" scans all codes (exact Hamming); graph="hnsw" walks a FAISS binary HNSW graph.
    """

    PARAMS = {
        "rescore_multiplier": RESCORE,
        "graph": Param("flat", choices=("flat", "hnsw")),
        "m": GRAPH_DEGREE,
        "ef_search": EF,
    }

    def __init__(
        self, vectors: np.ndarray, rescore_multiplier: int, graph: str, m: int, ef_search: int
    ):
        self.dim = vectors.shape[1]
        self.multiplier = rescore_multiplier
        self.graph, self.m, self.ef_search = graph, m, ef_search
        self._codes = GrowingArray(binarize(vectors))
        self._faiss_index = None

    @property
    def codes(self) -> np.ndarray:
        return self._codes.view

    def add(self, vectors: np.ndarray) -> None:
        new_codes = binarize(vectors)
        self._codes.append(new_codes)
        if self._faiss_index is not None:
            self._faiss_index.add(new_codes)

    def search(self, queries, k, vectors, allowed=None):
        depth = k * self.multiplier
        if self.too_deep(depth, vectors):
            return exact_search(queries, vectors, k, allowed)
        query_codes = binarize(queries)
        if allowed is None:
            candidates = self._hamming_top(query_codes, depth)
        else:
            rows = np.flatnonzero(allowed)
            distances = hamming_distances(query_codes, self.codes[rows]).astype(np.float32)
            _, pos = top_k(-distances, depth)
            candidates = np.where(pos >= 0, rows[np.maximum(pos, 0)], -1)
        return rescore(queries, candidates, vectors, k)

    def _hamming_top(self, query_codes: np.ndarray, depth: int) -> np.ndarray:
        try:
            import faiss
        except ImportError:  # numpy fallback: correct, slower
            _, rows = top_k(-hamming_distances(query_codes, self.codes).astype(np.float32), depth)
            return rows
        if self._faiss_index is None:
            bits = self.codes.shape[1] * 8
            if self.graph == "hnsw":
                self._faiss_index = faiss.IndexBinaryHNSW(bits, self.m)
                self._faiss_index.hnsw.efSearch = self.ef_search
            else:
                self._faiss_index = faiss.IndexBinaryFlat(bits)
            self._faiss_index.add(self.codes)
        if self.graph == "hnsw":
            self._faiss_index.hnsw.efSearch = max(self.ef_search, depth)
        _, rows = self._faiss_index.search(query_codes, depth)
        return rows.astype(np.int64)

    @property
    def bytes_per_vector(self) -> float:
        links = 8.0 * self.m if self.graph == "hnsw" else 0.0
        return float(self.codes.shape[1]) + links


@register_index("int8")
class Int8Index(VectorIndex):
    """uint8 codes per dimension, calibrated on the indexed vectors (min/max, clipped); the top
    k * rescore_multiplier by approximate score are re-ranked exactly (4x less first-stage memory)."""

    PARAMS = {"rescore_multiplier": RESCORE}
    TRAINED = True  # calibrated ranges; values beyond them are clipped

    def __init__(self, vectors: np.ndarray, rescore_multiplier: int):
        self.dim = vectors.shape[1]
        self.multiplier = rescore_multiplier
        self.quantizer = Int8Quantizer.calibrate(vectors)
        self._codes = GrowingArray(self.quantizer.encode(vectors))

    @property
    def codes(self) -> np.ndarray:
        return self._codes.view

    def add(self, vectors: np.ndarray) -> None:
        self._codes.append(
            self.quantizer.encode(vectors)
        )  # clipped to the calibration (see TRAINED)

    def search(self, queries, k, vectors, allowed=None):
        if self.too_deep(k * self.multiplier, vectors):
            return exact_search(queries, vectors, k, allowed)
        rows = None if allowed is None else np.flatnonzero(allowed)
        codes = self.codes if rows is None else self.codes[rows]
        _, pos = top_k(self.quantizer.scores(queries, codes), k * self.multiplier)
        candidates = pos if rows is None else np.where(pos >= 0, rows[np.maximum(pos, 0)], -1)
        return rescore(queries, candidates, vectors, k)

    @property
    def bytes_per_vector(self) -> float:
        return float(self.dim)
