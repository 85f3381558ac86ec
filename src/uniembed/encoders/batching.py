"""Batching by a token budget over length buckets, so that a text's vector never depends on its batch.

Inputs are sorted by length and padded to their length rounded up to a bucket boundary; a batch
holds inputs of one bucket only, as many as the token budget allows. So every input is computed at
a padded length that is a function of its own length alone, and its vector is bit-for-bit the same
whatever it is batched with: one text alone, in a server micro-batch with others, in a Ray actor's
batch or in a local `encode` of the whole corpus (measured on the default model with torch on
CPU: padding the same text to another length changes its vector by ~1e-7; the batch's row count
at a fixed padded length can too, through BLAS, which reproducible.py settles).

Buckets widen with length (2 tokens wide up to 31 tokens, then 1/8 of the length's power of two:
4 up to 63, 8 up to 127, ...), so padding costs at most 1/8 of an input and about 4% on STSb
sentences (0.8% on SciFact documents), where a fixed width of 8 cost 27%. A small mixed set (one
micro-batch of a server) is never padded to its longest input: a long and a short text go in
separate batches.
"""

from __future__ import annotations

import numpy as np

MIN_WIDTH = 2  # bucket width of short inputs
WIDTH_FRACTION = 8  # longer inputs: buckets 1/8 of the length's power of two wide


def padded_length(length: int, max_length: int | None = None) -> int:
    """The length an input of `length` tokens is padded to: the end of its bucket, not beyond
    max_length (the model's window) unless the input itself is longer."""
    length = max(int(length), 1)
    width = max(MIN_WIDTH, (1 << (length.bit_length() - 1)) // WIDTH_FRACTION)
    bucket = -(-length // width) * width
    if max_length is not None:
        bucket = max(min(bucket, max_length), int(length))
    return bucket


def token_batches(
    lengths: np.ndarray, token_budget: int, max_batch: int = 1024, max_length: int | None = None
) -> list[np.ndarray]:
    """Index arrays, longest inputs first; each batch holds inputs of one padded length
    (`padded_length`), with len(batch) * padded_length <= token_budget (a single input longer than
    the budget gets a batch of its own) and len(batch) <= max_batch."""
    lengths = np.asarray(lengths)
    padded = np.array([padded_length(n, max_length) for n in lengths.tolist()], dtype=np.int64)
    order = np.argsort(-padded, kind="stable")
    # where each run of one padded length starts and ends in the sorted order
    edges = np.flatnonzero(np.diff(padded[order])) + 1
    batches = []
    for run in np.split(order, edges) if len(order) else []:
        size = max(1, min(max_batch, token_budget // int(padded[run[0]])))
        batches.extend(run[start : start + size] for start in range(0, len(run), size))
    return batches
