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
    """Thread-safe: the truncating and the chunking tokenizer are separate copies, configured once
    (the HTTP service tokenises on many threads at once)."""

    def __init__(
        self,
        tokenizer,
        *,
        max_tokens: int,
        overlap: int,
        pad_id: int,
        padding_side: str = "right",
        lowercase: bool = False,
    ):
        from tokenizers import Tokenizer

        self.tokenizer = tokenizer  # a tokenizers.Tokenizer, for callers that need the vocabulary
        self.max_tokens = max_tokens
        self.overlap = overlap
        self.pad_id = pad_id
        self.padding_side = padding_side
        self.lowercase = lowercase
        tokenizer.no_padding()
        self._by_mode = {}
        for chunk in (False, True):
            copy = Tokenizer.from_str(tokenizer.to_str())
            copy.no_padding()
            copy.enable_truncation(max_tokens, stride=overlap if chunk else 0)
            self._by_mode[chunk] = copy
        # the special tokens around a single text ([CLS] ... [SEP] for BERT), for token-id inputs
        marked = self._by_mode[False].encode("a")
        specials = marked.special_tokens_mask
        first_plain = specials.index(0) if 0 in specials else len(specials)
        last_plain = len(specials) - specials[::-1].index(0) if 0 in specials else len(specials)
        self._prefix, self._suffix = marked.ids[:first_plain], marked.ids[last_plain:]
        self.vocab_size = tokenizer.get_vocab_size(with_added_tokens=True)

    def windows(self, texts: list[str], chunk: bool) -> Windows:
        # sentence-transformers strips surrounding whitespace; so do we, for identical vectors
        texts = [t.strip().lower() if self.lowercase else t.strip() for t in texts]
        ids, type_ids, owner, truncated = [], [], [], 0
        for index, encoding in enumerate(self._by_mode[chunk].encode_batch(texts)):
            parts = [encoding, *encoding.overflowing] if chunk else [encoding]
            truncated += bool(encoding.overflowing)
            for part in parts:
                ids.append(part.ids)
                type_ids.append(part.type_ids)
                owner.append(index)
        return Windows(ids, type_ids, np.asarray(owner, dtype=np.int64), 0 if chunk else truncated)

    def windows_from_ids(self, token_ids: list[list[int]]) -> Windows:
        """One window per list of token ids (the model's vocabulary, no special tokens): wrapped in
        the model's special tokens and cut at max_tokens, as a text of those tokens would be."""
        room = self.max_tokens - len(self._prefix) - len(self._suffix)
        ids = [self._prefix + list(tokens[:room]) + self._suffix for tokens in token_ids]
        truncated = sum(len(tokens) > room for tokens in token_ids)
        return Windows(
            ids, [[0] * len(w) for w in ids], np.arange(len(ids), dtype=np.int64), truncated
        )

    def pad(
        self, ids: list[list[int]], type_ids: list[list[int]], length: int | None = None
    ) -> dict[str, np.ndarray]:
        """int64 input_ids, attention_mask, token_type_ids, each (batch, length), length defaulting
        to the longest window."""
        longest = max([len(w) for w in ids] + [length or 0])
        input_ids = np.full((len(ids), longest), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(ids), longest), dtype=np.int64)
        types = np.zeros((len(ids), longest), dtype=np.int64)
        for row, (window, kinds) in enumerate(zip(ids, type_ids)):
            span = (
                slice(longest - len(window), longest)
                if self.padding_side == "left"
                else slice(0, len(window))
            )
            input_ids[row, span] = window
            mask[row, span] = 1
            types[row, span] = kinds
        return {"input_ids": input_ids, "attention_mask": mask, "token_type_ids": types}
