"""Tokenising into model windows with the Rust `tokenizers` library (no torch, no transformers).

Each text becomes one window (cut at max_tokens) or, when chunking, several overlapping windows;
`owner` maps every window back to its text.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Windows:
    ids: list[list[int]]
    type_ids: list[list[int]]
    owner: np.ndarray  # window -> index of its text
    n_truncated: int  # texts cut at max_tokens (truncate mode)

    @property
    def lengths(self) -> np.ndarray:
        return np.fromiter((len(w) for w in self.ids), dtype=np.int64, count=len(self.ids))


class WindowTokenizer:
    def __init__(self, tokenizer, *, max_tokens: int, overlap: int, pad_id: int, padding_side: str = "right", lowercase: bool = False):
        self.tokenizer = tokenizer  # a tokenizers.Tokenizer
        self.max_tokens = max_tokens
        self.overlap = overlap
        self.pad_id = pad_id
        self.padding_side = padding_side
        self.lowercase = lowercase
        tokenizer.no_padding()

    def windows(self, texts: list[str], chunk: bool) -> Windows:
        # sentence-transformers strips surrounding whitespace; so do we, for identical vectors
        texts = [t.strip().lower() if self.lowercase else t.strip() for t in texts]
        self.tokenizer.enable_truncation(self.max_tokens, stride=self.overlap if chunk else 0)
        ids, type_ids, owner, truncated = [], [], [], 0
        for index, encoding in enumerate(self.tokenizer.encode_batch(texts)):
            parts = [encoding, *encoding.overflowing] if chunk else [encoding]
            truncated += bool(encoding.overflowing)
            for part in parts:
                ids.append(part.ids)
                type_ids.append(part.type_ids)
                owner.append(index)
        return Windows(ids, type_ids, np.asarray(owner, dtype=np.int64), 0 if chunk else truncated)

    def pad(self, ids: list[list[int]], type_ids: list[list[int]]) -> dict[str, np.ndarray]:
        """int64 input_ids, attention_mask, token_type_ids, each (batch, longest)."""
        longest = max(len(w) for w in ids)
        input_ids = np.full((len(ids), longest), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(ids), longest), dtype=np.int64)
        types = np.zeros((len(ids), longest), dtype=np.int64)
        for row, (window, kinds) in enumerate(zip(ids, type_ids)):
            span = slice(longest - len(window), longest) if self.padding_side == "left" else slice(0, len(window))
            input_ids[row, span] = window
            mask[row, span] = 1
            types[row, span] = kinds
        return {"input_ids": input_ids, "attention_mask": mask, "token_type_ids": types}
