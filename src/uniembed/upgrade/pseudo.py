"""Pseudo-queries: query-like texts cut from a collection's own items, for the contrastive adapter.

A collection holds whole items (abstracts, tickets, pages); its users search with short texts. An
adapter fitted on whole items only learns the map where items sit, not where short queries do. The
sentences of an item are the nearest thing to its queries that the collection itself can offer, and
their target is known without the old model: the item's stored vector.
"""

from __future__ import annotations

import re

import numpy as np

from uniembed.errors import InputError

SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
MIN_CHARS = 20  # shorter pieces are mostly headings, numbers and abbreviations cut at their dot
PER_ITEM = 12  # SciFact's abstracts have 9.4 sentences on average: the cap bounds rare long items


def pseudo_queries(texts: list[str], per_item: int = PER_ITEM) -> tuple[list[str], np.ndarray]:
    """(queries, owners): up to `per_item` sentences of each text, the first ones, of at least
    MIN_CHARS characters and not the whole text (which is a query of its own already); owners[i]
    is the index in `texts` of the text queries[i] came from. One-sentence texts give none."""
    if isinstance(per_item, bool) or not isinstance(per_item, int) or per_item < 1:
        raise InputError(f"per_item must be a positive integer, got {per_item!r}")
    queries, owners = [], []
    for row, text in enumerate(texts):
        if not isinstance(text, str):
            raise InputError(f"texts[{row}] is not a string: {type(text).__name__}")
        whole = text.strip()
        pieces = [piece.strip() for piece in SENTENCE_END.split(whole)]
        kept = [piece for piece in pieces if len(piece) >= MIN_CHARS and piece != whole][:per_item]
        queries += kept
        owners += [row] * len(kept)
    return queries, np.asarray(owners, dtype=np.int64)


def pseudo_query_vectors(
    model, texts: list[str], *, prompt: str | None = "query", show_progress: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """(vectors, owners): `model`'s vectors of `pseudo_queries(texts)`, (0, dim) when there are none."""
    cut, owners = pseudo_queries(texts)
    if not cut:
        return np.zeros((0, model.dim), dtype=np.float32), owners
    return np.asarray(
        model.encode(cut, prompt=prompt, show_progress=show_progress), dtype=np.float32
    ), owners
