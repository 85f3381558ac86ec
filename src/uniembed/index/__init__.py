"""Nearest-neighbour search over vectors, behind one interface (`VectorIndex`) and a registry.

exact (the oracle), hnsw and ivfpq (FAISS, imported on first use), binary and int8 (quantised first
stage + exact rescoring).
"""

from uniembed.index import faiss_indexes, flat, quantized  # noqa: F401  (register the built-in kinds)
from uniembed.index.base import INDEX_KINDS, VectorIndex, create_index, exact_search
from uniembed.index.exact import TopK

__all__ = ["INDEX_KINDS", "TopK", "VectorIndex", "create_index", "exact_search"]
