"""Encoders that run a transformer over token windows (torch or ONNX Runtime).

They tokenise all inputs once, batch the windows by a token budget over length-sorted order (no
wasted padding), pool each window, and combine windows per input. A backend implements one
method: `embed_windows(padded) -> (batch, dim)` pooled float32 vectors.
"""

from __future__ import annotations

from abc import abstractmethod

import numpy as np

from uniembed.encoders.base import (
    Encoder,
    LongPolicy,
    check_model_output,
    check_texts,
    progress_iter,
)
from uniembed.encoders.batching import padded_length, token_batches
from uniembed.encoders.late_interaction import TokenHead
from uniembed.encoders.tokens import Windows, WindowTokenizer
from uniembed.errors import InputError


class TokenEncoder(Encoder):
    gives_token_vectors = True

    def __init__(
        self,
        name: str,
        dim: int,
        windows: WindowTokenizer,
        *,
        pooling: str,
        token_budget: int = 16384,
        output_dim: int | None = None,
        **kwargs,
    ):
        # dim: the model's hidden size; output_dim: keep only the first coordinates (a Matryoshka /
        # Starbucks model run truncated), so `self.dim` is what callers get
        super().__init__(name, output_dim or dim, max_tokens=windows.max_tokens, **kwargs)
        self.hidden_size = dim
        self.windows = windows
        self.pooling = pooling
        self.token_budget = token_budget
        self.token_head: TokenHead | None = None  # set for ColBERT / PyLate models (load.py)

    @property
    def padding_side(self) -> str:
        return self.windows.padding_side

    @property
    def chunk_overlap(self) -> int:
        return self.windows.overlap

    @abstractmethod
    def embed_windows(self, padded: dict[str, np.ndarray]) -> np.ndarray:
        """(batch, dim) float32 pooled vectors of one padded batch of windows."""

    def hidden_windows(self, padded: dict[str, np.ndarray]) -> np.ndarray:
        """(batch, tokens, hidden) float32 last-layer token vectors of one padded batch."""
        raise NotImplementedError(f"{type(self).__name__} does not give token vectors")

    @property
    def token_dim(self) -> int:
        """Dimension of encode_tokens' vectors: the head's output, else the hidden size."""
        return self.token_head.dim if self.token_head is not None else self.hidden_size

    @property
    def token_fingerprint(self) -> str:
        """Identifies what makes this encoder's token vectors (weights, head, tokenisation rules)."""
        from uniembed.encoders.base import digest

        return digest(
            self.fingerprint,
            "tokens",
            self.token_head.digest if self.token_head is not None else None,
        )

    def encode_tokens(
        self,
        texts,
        *,
        normalize: bool = True,
        prompt: str | None = None,
        projection: np.ndarray | None = None,
        show_progress: bool | None = None,
    ) -> list[np.ndarray]:
        """Per-token vectors (late interaction): one (tokens, dim) float32 array per text, padding
        removed, special tokens kept, inputs cut at max_tokens. `projection`: an optional (hidden,
        dim) matrix applied first (a ColBERT head); `normalize`: L2-normalise every token vector.

        A ColBERT / PyLate model (self.token_head) tokenises by its own rules: prompt="query" makes
        query vectors (prefix token, [MASK] expansion), anything else document vectors.
        show_progress: a progress bar; None shows one for more than 1,024 texts."""
        items = check_texts(texts)
        head = self.token_head
        if head is not None:
            if projection is not None:
                raise InputError(
                    f"{self.name} has its own token head; projection= would replace it"
                )
            windows, attended_lengths = self._head_windows(items, query=prompt == "query")
        else:
            windows = self.windows.windows(
                [self.prompt_prefix(prompt) + t for t in items], chunk=False
            )
            attended_lengths = None
        self.note_truncated(windows.n_truncated)
        out: list[np.ndarray] = [None] * len(items)  # type: ignore[list-item]
        batches = token_batches(
            windows.lengths, self.token_budget, max_length=self.windows.max_tokens
        )
        shown = progress_iter(
            batches, len(items) > 1024 if show_progress is None else show_progress
        )
        for rows, padded in self._padded_batches(windows, shown):
            keep = padded["attention_mask"].astype(
                bool
            )  # every real token, expansion tokens included
            if attended_lengths is not None:  # expansion tokens get vectors but are not attended to
                attended = np.arange(keep.shape[1])[None, :] < attended_lengths[rows][:, None]
                padded["attention_mask"] = (keep & attended).astype(np.int64)
            if head is not None and prompt != "query" and head.skiplist_ids:
                keep &= ~np.isin(padded["input_ids"], list(head.skiplist_ids))
            hidden = self.hidden_windows(padded)
            if head is not None:
                hidden = head.project(hidden)
            elif projection is not None:
                hidden = hidden @ projection
            check_model_output(hidden[keep], self.name)
            for row, index in enumerate(rows):
                tokens = hidden[row][keep[row]]
                if normalize:
                    tokens = tokens / np.maximum(
                        np.linalg.norm(tokens, axis=1, keepdims=True), 1e-12
                    )
                out[index] = np.ascontiguousarray(tokens, dtype=np.float32)
        return out

    def _head_windows(self, texts: list[str], *, query: bool) -> tuple[Windows, np.ndarray | None]:
        """Windows by the token head's rules, and (queries with expansion, not attended) how many
        leading tokens of each window are attended to; None when all are."""
        head = self.token_head
        length = head.query_length if query else head.document_length
        prefix = head.query_prefix_id if query else head.document_prefix_id
        prefix_text = self.prompt_prefix(
            "query" if query else "document"
        )  # a model's own text prompts, if any
        base = self.windows.windows([prefix_text + t for t in texts], chunk=False)
        ids, type_ids, truncated = [], [], 0
        room = length - (prefix is not None)
        for window, kinds in zip(base.ids, base.type_ids):
            if len(window) > room:  # cut the text, keep the closing special token
                window, kinds = window[: room - 1] + window[-1:], kinds[: room - 1] + kinds[-1:]
                truncated += 1
            if prefix is not None:
                window, kinds = window[:1] + [prefix] + window[1:], kinds[:1] + [0] + kinds[1:]
            ids.append(window)
            type_ids.append(kinds)
        attended = None
        if query and head.query_expansion:
            attended = (
                np.array([len(w) for w in ids], dtype=np.int64)
                if not head.attend_to_expansion
                else None
            )
            for window, kinds in zip(ids, type_ids):
                window.extend([head.mask_id] * (length - len(window)))
                kinds.extend([0] * (length - len(kinds)))
        return Windows(ids, type_ids, base.owner, base.n_truncated + truncated), attended

    def encode_batch(self, texts: list[str], *, long: LongPolicy = "truncate") -> np.ndarray:
        return self._encode_windows(texts, long, len(texts), show_progress=False)

    def _encode_sorted(self, items, batch_size, long, show_progress):
        return self._encode_windows(items, long, batch_size, show_progress)

    def _refuse_single_vectors(self) -> None:
        if self.token_head is not None:
            raise InputError(
                f"{self.name} is a late-interaction (ColBERT) model: it makes token vectors, not one vector "
                "per text; use encode_tokens() or a multi-vector collection (--multivector muvera)"
            )

    def _encode_windows(
        self, texts: list[str], long: LongPolicy, max_batch: int, show_progress: bool | None
    ) -> np.ndarray:
        windows = self.windows.windows(texts, chunk=long == "chunk")
        self.note_truncated(windows.n_truncated)
        return self.embed_prepared(
            windows, len(texts), max_batch=max_batch, show_progress=show_progress
        )

    def embed_prepared(
        self,
        windows: Windows,
        n_inputs: int,
        *,
        max_batch: int = 1024,
        show_progress: bool | None = False,
    ) -> np.ndarray:
        """(n_inputs, dim) raw vectors of already tokenised windows, in input order."""
        self._refuse_single_vectors()
        lengths = windows.lengths
        pooled = np.empty((len(lengths), self.hidden_size), dtype=np.float32)
        batches = token_batches(
            lengths, self.token_budget, max_batch, max_length=self.windows.max_tokens
        )
        shown = progress_iter(
            batches, n_inputs > max_batch if show_progress is None else show_progress
        )
        self.embed_batches(self._padded_batches(windows, shown), len(batches), pooled)
        if len(lengths) != n_inputs:  # several windows for some inputs
            per_input = np.bincount(windows.owner, minlength=n_inputs)
            self.note_chunks(int(per_input[per_input > 1].sum()))
            pooled = _weighted_mean_by_owner(pooled, lengths, windows.owner, n_inputs)
        return (
            pooled if self.dim == self.hidden_size else np.ascontiguousarray(pooled[:, : self.dim])
        )

    def embed_batches(self, batches, n_batches: int, out: np.ndarray) -> None:
        """Write each (rows, padded) batch's pooled vectors into out[rows]: one batch after the
        other here; a backend that can run batches side by side overrides it (openvino.py)."""
        for rows, padded in batches:
            out[rows] = self.embed_windows(padded)

    def _padded_batches(self, windows: Windows, batches):
        """(rows, padded inputs) for each batch of window rows, padded to the batch's bucket length
        (see batching.py: what makes a text's vector independent of its batch)."""
        for rows in batches:
            ids = [windows.ids[i] for i in rows]
            length = padded_length(max(len(w) for w in ids), self.windows.max_tokens)
            yield rows, self.windows.pad(ids, [windows.type_ids[i] for i in rows], length=length)


def _weighted_mean_by_owner(
    vectors: np.ndarray, lengths: np.ndarray, owner: np.ndarray, n: int
) -> np.ndarray:
    """One vector per input: the token-count-weighted mean of its window vectors.

    For mean pooling this approximates the mean over all the input's tokens (overlaps count twice).
    """
    weights = lengths.astype(np.float64)
    out = np.zeros((n, vectors.shape[1]), dtype=np.float64)
    np.add.at(out, owner, vectors * weights[:, None])
    totals = np.bincount(owner, weights=weights, minlength=n)
    return (out / totals[:, None]).astype(np.float32)
