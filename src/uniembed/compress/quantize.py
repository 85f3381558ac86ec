"""Scalar int8 and binary quantisation of (n, dim) float32 vectors.

int8: per-dimension min/max from calibration vectors, 256 levels, out-of-range values clipped.
binary: one sign bit per dimension, packed 8 per byte (dim/8 bytes per vector).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from uniembed.errors import InputError


@dataclass(frozen=True)
class Int8Quantizer:
    """Maps each dimension's [low, high] range onto 256 levels (stored as uint8 codes)."""

    low: np.ndarray  # (dim,)
    scale: np.ndarray  # (dim,) width of one level

    @classmethod
    def calibrate(cls, vectors: np.ndarray) -> Int8Quantizer:
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or len(vectors) == 0:
            raise InputError(
                f"calibration needs a non-empty (n, dim) array, got shape {vectors.shape}"
            )
        low, high = vectors.min(axis=0), vectors.max(axis=0)
        scale = np.maximum(high - low, 1e-12) / 255.0
        return cls(low.astype(np.float32), scale.astype(np.float32))

    def encode(self, vectors: np.ndarray) -> np.ndarray:
        """(n, dim) uint8 codes; values outside the calibrated range are clipped to its ends."""
        levels = np.rint((np.asarray(vectors, dtype=np.float32) - self.low) / self.scale)
        return np.clip(levels, 0, 255).astype(np.uint8)

    def decode(self, codes: np.ndarray) -> np.ndarray:
        return (codes.astype(np.float32) * self.scale + self.low).astype(np.float32)

    def scores(self, queries: np.ndarray, codes: np.ndarray) -> np.ndarray:
        """Inner products of float queries with the decoded codes, without decoding them:
        q . (low + scale * c) = q . low + (q * scale) . c"""
        queries = np.asarray(queries, dtype=np.float32)
        return queries @ self.low[:, None] + (queries * self.scale) @ codes.T.astype(np.float32)


def binarize(vectors: np.ndarray) -> np.ndarray:
    """(n, ceil(dim/8)) uint8: bit i is 1 where coordinate i is positive."""
    return np.packbits(np.asarray(vectors) > 0, axis=1)


def hamming_distances(query_codes: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """(queries, n) number of differing bits between packed codes."""
    return np.bitwise_count(query_codes[:, None, :] ^ codes[None, :, :]).sum(axis=2, dtype=np.int32)
