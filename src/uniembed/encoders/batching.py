"""Batching by a token budget: length-sorted inputs, each batch as large as the budget allows.

Padding then costs almost nothing (neighbours in the order have about the same length), short
inputs go in large batches and long ones in small batches, and memory per batch is bounded by the
budget rather than by the longest input times a fixed batch size.
"""
from __future__ import annotations

import numpy as np


def token_batches(lengths: np.ndarray, token_budget: int, max_batch: int = 1024) -> list[np.ndarray]:
    """Index arrays, longest inputs first, with len(batch) * longest_in_batch <= token_budget
    (a single input longer than the budget gets a batch of its own)."""
    order = np.argsort(-np.asarray(lengths), kind="stable")
    batches, start = [], 0
    while start < len(order):
        longest = max(int(lengths[order[start]]), 1)
        size = max(1, min(max_batch, token_budget // longest))
        batches.append(order[start : start + size])
        start += size
    return batches
