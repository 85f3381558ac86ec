"""Pooling in numpy, for the torch-free backends (ONNX Runtime). Same arithmetic as pooling.py."""

from __future__ import annotations

import numpy as np

POOLING_MODES = ("mean", "cls", "lasttoken", "max")  # shared with the torch poolers (pooling.py)


def pool_numpy(
    hidden: np.ndarray, mask: np.ndarray, mode: str, padding_side: str = "right"
) -> np.ndarray:
    """(batch, dim) from hidden states (batch, tokens, dim) and the attention mask (batch, tokens)."""
    rows = np.arange(hidden.shape[0])
    if mode == "mean":
        weights = mask[..., None].astype(hidden.dtype)
        return (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
    if mode == "max":
        return np.where(mask[..., None] > 0, hidden, -1e9).max(axis=1)
    if mode == "cls":
        first = (
            mask.shape[1] - mask.sum(axis=1)
            if padding_side == "left"
            else np.zeros(len(rows), dtype=int)
        )
        return hidden[rows, first]
    if mode == "lasttoken":
        last = np.full(len(rows), -1) if padding_side == "left" else mask.sum(axis=1) - 1
        return hidden[rows, last]
    raise ValueError(f"unknown pooling mode {mode!r}")
