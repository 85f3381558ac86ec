"""Late interaction (ColBERT MaxSim / Chamfer): score = sum over query tokens of the best dot product
with any document token. Documents are padded to a common length and padding is masked with -inf
(never by multiplying: a zero vector can beat negative similarities)."""

from __future__ import annotations

import numpy as np

from uniembed.errors import InputError


def pad_token_sets(token_sets: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(n, longest, dim) float32 and the (n, longest) bool mask of real tokens."""
    if not token_sets:
        raise InputError("no token sets")
    dim = token_sets[0].shape[1]
    longest = max(len(t) for t in token_sets)
    padded = np.zeros((len(token_sets), longest, dim), dtype=np.float32)
    mask = np.zeros((len(token_sets), longest), dtype=bool)
    for row, tokens in enumerate(token_sets):
        if tokens.ndim != 2 or tokens.shape[1] != dim:
            raise InputError(f"token set {row} has shape {tokens.shape}; expected (n, {dim})")
        if len(tokens) == 0:
            raise InputError(
                f"token set {row} is empty: MaxSim needs at least one token per document"
            )
        padded[row, : len(tokens)] = tokens
        mask[row, : len(tokens)] = True
    return padded, mask


def maxsim(query: np.ndarray, documents: list[np.ndarray], *, block: int = 256) -> np.ndarray:
    """MaxSim score of one query (q, dim) against each document (a list of (t_i, dim) arrays),
    vectorised over blocks of documents."""
    query = np.asarray(query, dtype=np.float32)
    if query.ndim != 2 or len(query) == 0:
        raise InputError(
            f"the query must be a non-empty (tokens, dim) array, got shape {query.shape}"
        )
    scores = np.empty(len(documents), dtype=np.float32)
    for start in range(0, len(documents), block):
        padded, mask = pad_token_sets(documents[start : start + block])
        if padded.shape[2] != query.shape[1]:
            raise InputError(
                f"query tokens have {query.shape[1]} dims, documents {padded.shape[2]}"
            )
        similarity = np.matmul(padded, query.T)  # (docs, tokens, query tokens), BLAS per document
        similarity[~mask] = -np.inf
        scores[start : start + block] = similarity.max(axis=1).sum(axis=1)
    return scores
