"""Matryoshka truncation: keep the first `dim` coordinates, then re-normalise."""

from __future__ import annotations

import numpy as np

from uniembed.errors import InputError

# Smallest norm we divide by: an all-zero vector stays zero instead of turning into NaN.
_EPS = 1e-12


def l2_normalize(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm; all-zero rows stay zero (never NaN)."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.maximum(norms, _EPS)).astype(np.float32, copy=False)


def truncate(vectors: np.ndarray, dim: int, *, normalize: bool = True) -> np.ndarray:
    """The first `dim` columns of (n, d) `vectors`, L2-normalised again when `normalize`."""
    full = vectors.shape[1]
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or not 1 <= dim <= full:
        raise InputError(f"dim must be an integer in [1, {full}], got {dim!r}")
    head = np.ascontiguousarray(vectors[:, :dim], dtype=np.float32)
    return l2_normalize(head) if normalize else head
