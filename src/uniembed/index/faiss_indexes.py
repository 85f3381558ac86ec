"""FAISS-backed indexes: HNSW and IVF-PQ. In-memory accelerators, rebuilt from the store of record."""

from __future__ import annotations

import numpy as np

from uniembed._extras import require
from uniembed.errors import InputError
from uniembed.index.base import VectorIndex, exact_search, register_index, rescore
from uniembed.index.params import EF, GRAPH_DEGREE, RESCORE, Param

_FAISS = None


def _faiss():
    """The faiss module, checked and imported once (searches call this on their hot path)."""
    global _FAISS
    if _FAISS is None:
        require("faiss")
        import faiss

        _FAISS = faiss
    return _FAISS


def _selector(faiss, allowed: np.ndarray | None):
    """A FAISS id selector for a boolean mask (None: no restriction). Keep the returned bitmap alive."""
    if allowed is None:
        return None, None
    bitmap = np.packbits(allowed, bitorder="little")
    return faiss.IDSelectorBitmap(len(allowed), faiss.swig_ptr(bitmap)), bitmap


def _raw_search(faiss, index, queries: np.ndarray, k: int, params) -> tuple[np.ndarray, np.ndarray]:
    """index.search through the SWIG entry point: the Python wrapper's checks and conversions cost
    about as much as a small HNSW search. `queries` must be C-contiguous float32."""
    n = len(queries)
    scores = np.empty((n, k), dtype=np.float32)
    rows = np.empty((n, k), dtype=np.int64)
    index.search_c(
        n, faiss.swig_ptr(queries), k, faiss.swig_ptr(scores), faiss.swig_ptr(rows), params
    )
    return scores, rows


def _as_results(scores: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if rows[:, -1].min() >= 0:  # results are sorted, so missing ones (-1) can only be at the end
        return scores, rows
    return np.where(rows >= 0, scores, -np.inf).astype(np.float32), rows.astype(np.int64)


class _FaissIndex(VectorIndex):
    """Shared by the FAISS kinds: `self.index` is the FAISS index, rows are added in order."""

    index = None

    def add(self, vectors: np.ndarray) -> None:
        if len(vectors):
            self.index.add(np.ascontiguousarray(vectors, dtype=np.float32))


@register_index("hnsw")
class HNSWIndex(_FaissIndex):
    """HNSW graph (FAISS, inner product) over float vectors, or over int8 scalar codes
    (quantize="int8": 4x smaller, candidates rescored with the float vectors)."""

    PARAMS = {
        "m": GRAPH_DEGREE,
        "ef_construction": Param(200, 1, 10_000),
        "ef_search": EF,
        "quantize": Param("none", choices=("none", "int8")),
        "rescore_multiplier": RESCORE,
    }

    def __init__(
        self,
        vectors: np.ndarray,
        m: int,
        ef_construction: int,
        ef_search: int,
        quantize: str,
        rescore_multiplier: int,
    ):
        faiss = _faiss()
        self.dim = vectors.shape[1]
        self.m, self.ef_search, self.quantize, self.multiplier = (
            m,
            ef_search,
            quantize,
            rescore_multiplier,
        )
        self.TRAINED = quantize == "int8"  # the scalar quantiser's ranges come from the vectors
        if quantize == "int8":
            self.index = faiss.IndexHNSWSQ(
                self.dim, faiss.ScalarQuantizer.QT_8bit, m, faiss.METRIC_INNER_PRODUCT
            )
            self.index.train(_training_sample(vectors, 100_000))
        else:
            self.index = faiss.IndexHNSWFlat(self.dim, m, faiss.METRIC_INNER_PRODUCT)
        self.index.hnsw.efConstruction = ef_construction
        self._plain_params: dict[int, object] = {}
        self.add(vectors)

    def search(self, queries, k, vectors, allowed=None):
        faiss = _faiss()
        depth = k * self.multiplier if self.quantize == "int8" else k
        if self.too_deep(depth, vectors):
            return exact_search(queries, vectors, k, allowed)
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        bitmap = None  # must outlive the search: the selector points into it
        if allowed is None:
            params = self._plain_params.get(depth)
            if (
                params is None
            ):  # building SearchParameters costs more than a small search: reuse them
                params = self._plain_params[depth] = faiss.SearchParametersHNSW(
                    efSearch=max(self.ef_search, depth)
                )
        else:
            selector, bitmap = _selector(faiss, allowed)
            params = faiss.SearchParametersHNSW(efSearch=max(self.ef_search, depth), sel=selector)
        scores, rows = _raw_search(faiss, self.index, queries, depth, params)
        del bitmap
        if self.quantize == "int8":
            return rescore(queries, rows, vectors, k)
        return _as_results(scores, rows)

    @property
    def bytes_per_vector(self) -> float:
        code = self.dim if self.quantize == "int8" else 4.0 * self.dim
        return code + 8.0 * self.m  # codes plus about 2*m links of 4 bytes at level 0


@register_index("ivfpq")
class IVFPQIndex(_FaissIndex):
    """Inverted lists of product-quantised codes (FAISS IndexIVFPQ), rescored with float vectors.

    nlist 0 picks about 4*sqrt(n); m 0 picks about dim/8 sub-quantisers (a divisor of dim) of 8 bits
    (dim/8 bytes per vector; fewer bits below ~10,000 vectors, where 8-bit codebooks cannot be
    trained). Below MIN_TRAINING vectors nothing can be trained: the search is exact.
    """

    PARAMS = {
        "nlist": Param(0, 0, 65_536),
        "m": Param(0, 0, 4096),
        "nprobe": Param(16, 1, 65_536),
        "rescore": Param(4, 0, 100),
    }
    TRAINED = True
    MIN_TRAINING = 2 * 39  # two 1-bit centroids per sub-quantiser, ~39 points each

    @classmethod
    def check_dim(cls, params: dict, dim: int) -> None:
        m = params["m"]
        if m and (m > dim or dim % m):
            raise InputError(f"index 'ivfpq': m={m} sub-quantisers must divide the dimension {dim}")

    def __init__(self, vectors: np.ndarray, nlist: int, m: int, nprobe: int, rescore: int):
        faiss = _faiss()
        n, self.dim = vectors.shape
        self.m = m or _divisor_near(self.dim, self.dim // 8)
        # FAISS wants ~39 training points per list, and fails outright with fewer points than lists:
        # a set nlist is an upper bound until the collection is large enough (it is rebuilt as it doubles)
        most = max(1, n // 39)
        nlist = min(nlist, most) if nlist else max(1, min(int(4 * np.sqrt(n)), most))
        self.nprobe, self.rescore = nprobe, rescore
        # 8-bit codebooks want 256 * 39 training points; small collections get smaller codebooks
        self.nbits = int(np.clip(np.floor(np.log2(max(n, 1) / 39)), 1, 8))
        quantizer = faiss.IndexFlatIP(self.dim)
        self.index = faiss.IndexIVFPQ(
            quantizer, self.dim, nlist, self.m, self.nbits, faiss.METRIC_INNER_PRODUCT
        )
        self.exact = n < self.MIN_TRAINING
        if not self.exact:
            self.index.train(_training_sample(vectors, 39 * max(nlist, 2**self.nbits)))
            self.add(vectors)

    def add(self, vectors: np.ndarray) -> None:
        if not self.exact:  # an exact (too small to train) index reads the vectors given to search
            super().add(vectors)

    def search(self, queries, k, vectors, allowed=None):
        if self.exact or self.too_deep(k * max(1, self.rescore), vectors):
            return exact_search(queries, vectors, k, allowed)
        faiss = _faiss()
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        selector, bitmap = _selector(faiss, allowed)
        params = faiss.SearchParametersIVF(nprobe=self.nprobe, sel=selector)
        scores, rows = _raw_search(faiss, self.index, queries, k * max(1, self.rescore), params)
        del bitmap
        if self.rescore:
            return rescore(queries, rows, vectors, k)
        return _as_results(scores, rows)

    @property
    def bytes_per_vector(self) -> float:
        return self.m * self.nbits / 8 + 8.0  # PQ codes plus the 8-byte id in the inverted list


def _divisor_near(dim: int, target: int) -> int:
    """The divisor of `dim` closest to `target` (at least 1): FAISS's PQ needs m to divide dim."""
    return min(
        (m for m in range(1, dim + 1) if dim % m == 0), key=lambda m: (abs(m - max(target, 1)), m)
    )


def _training_sample(vectors: np.ndarray, size: int) -> np.ndarray:
    if len(vectors) <= size:
        return vectors
    rows = np.random.default_rng(0).choice(len(vectors), size, replace=False)
    return vectors[np.sort(rows)]
