"""The served model: tokenise requests on the handler's thread, embed micro-batches on the worker.

Vectors are exactly what `encoder.encode(texts)` returns: the model's default prompt, truncation
at its max length, L2 normalisation, and `dimensions` as Matryoshka truncation + renormalisation.
Transformer models (torch, ONNX) also take token-id inputs in their own vocabulary; other
encoders (static, custom) take text only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from uniembed.compress.truncate import l2_normalize, truncate
from uniembed.encoders.base import Encoder, check_model_output
from uniembed.encoders.token_encoder import TokenEncoder
from uniembed.encoders.tokens import Windows


class InputRejected(ValueError):
    """An input the model cannot take; `param` names the request field."""

    def __init__(self, message: str, param: str = "input"):
        super().__init__(message)
        self.param = param


# What one image costs in a batch, in tokens: a ViT-B/32 at 224 px sees 50 patches, a /16 197;
# the batcher only needs a fair share, not the exact count.
IMAGE_TOKENS = 256


@dataclass
class Prepared:
    n_inputs: int
    n_tokens: int
    windows: Windows | None = None  # transformer models
    texts: list[str] | None = None  # other encoders
    items: list[dict] | None = (
        None  # image / image+text items (images decoded), encoded with `prompt`
    )
    prompt: str | None = None


class ServedModel:
    def __init__(
        self, encoder: Encoder, *, model_id: str | None = None, aliases: Sequence[str] = ()
    ):
        self.encoder = encoder
        self.id = model_id or encoder.name
        self.names = {self.id, encoder.name, *aliases}
        self.dim = encoder.dim
        self._prefix = encoder.prompt_prefix(None)  # the default prompt encode() would apply

    @property
    def takes_token_ids(self) -> bool:
        return isinstance(self.encoder, TokenEncoder)

    def prepare(self, inputs: list[str] | list[list[int]], prompt: str | None = None) -> Prepared:
        """Tokenise (texts, after the prompt's prefix: the model's default prompt for None) or wrap
        (token ids) one request's inputs. Thread-safe."""
        if self.encoder.token_head is not None:
            raise InputRejected(
                f"model {self.id} is a late-interaction (ColBERT) model: it makes token vectors, not one "
                "embedding per input; use it through multi-vector collections"
            )
        if inputs and isinstance(inputs[0], list):
            return self._prepare_ids(inputs)
        prefix = self._prefix if prompt is None else self.encoder.prompt_prefix(prompt)
        texts = [prefix + text for text in inputs] if prefix else list(inputs)
        if isinstance(self.encoder, TokenEncoder):
            windows = self.encoder.windows.windows(texts, chunk=False)
            return Prepared(len(texts), int(windows.lengths.sum()), windows=windows)
        return Prepared(len(texts), _count_tokens(self.encoder, texts), texts=texts)

    def prepare_items(self, items: list[dict], prompt: str | None = None) -> Prepared:
        """Wrap image / image+text items whose images are decoded already (serve.images)."""
        if "image" not in self.encoder.modalities:
            raise InputRejected(f"model {self.id} embeds text only; it cannot take images")
        tokens = sum(
            IMAGE_TOKENS * ("image" in item) + len(item.get("text", "")) // 4 + 1 for item in items
        )
        return Prepared(len(items), tokens, items=items, prompt=prompt)

    def _prepare_ids(self, token_ids: list[list[int]]) -> Prepared:
        if not self.takes_token_ids:
            raise InputRejected(f"model {self.id} takes text input only, not token ids")
        vocab = self.encoder.windows.vocab_size
        for index, tokens in enumerate(token_ids):
            bad = next((t for t in tokens if not 0 <= t < vocab), None)
            if bad is not None:
                raise InputRejected(
                    f"input[{index}] holds token id {bad}, outside the model's vocabulary [0, {vocab})"
                )
        windows = self.encoder.windows.windows_from_ids(token_ids)
        return Prepared(len(token_ids), int(windows.lengths.sum()), windows=windows)

    def split(self, prepared: Prepared, max_tokens: int) -> list:
        """Consecutive slices of one request's inputs, each of about `max_tokens` tokens (at least
        one input), so the batcher can interleave other requests between them."""
        from uniembed.serve.batcher import Part

        if prepared.windows is not None:
            lengths = prepared.windows.lengths
            # a slice ends where its running token count passes a multiple of max_tokens
            bounds = np.flatnonzero(np.diff(np.cumsum(lengths) // max_tokens)) + 1
        elif prepared.items is not None:
            per_part = max(1, max_tokens // IMAGE_TOKENS)
            bounds = np.arange(per_part, prepared.n_inputs, per_part)
        else:
            parts = -(-prepared.n_tokens // max_tokens)
            bounds = np.linspace(0, prepared.n_inputs, parts + 1).astype(int)[1:-1]
        slices = []
        for start, stop in zip([0, *bounds.tolist()], [*bounds.tolist(), prepared.n_inputs]):
            if stop <= start:
                continue
            if prepared.windows is not None:
                w = prepared.windows
                piece = Prepared(
                    stop - start,
                    int(lengths[start:stop].sum()),
                    windows=Windows(
                        w.ids[start:stop],
                        w.type_ids[start:stop],
                        np.arange(stop - start, dtype=np.int64),
                        0,
                    ),
                )
            elif prepared.items is not None:
                piece = self.prepare_items(prepared.items[start:stop], prepared.prompt)
            else:
                texts = prepared.texts[start:stop]
                piece = Prepared(
                    stop - start, prepared.n_tokens * len(texts) // prepared.n_inputs, texts=texts
                )
            slices.append(Part(piece, piece.n_inputs, piece.n_tokens))
        return slices

    def embed(self, batch: Sequence[Prepared]) -> list[np.ndarray]:
        """Raw vectors of several requests in one model call, split back per request. Worker thread.
        Item jobs (images) are encoded one job at a time, text jobs together."""
        if any(p.items is not None for p in batch):
            from uniembed.encoders.multimodal import encode_items

            texts = [p for p in batch if p.items is None]
            text_vectors = iter(self.embed(texts) if texts else [])
            return [
                check_model_output(
                    encode_items(self.encoder, p.items, prompt=p.prompt, show_progress=False),
                    self.id,
                )
                if p.items is not None
                else next(text_vectors)
                for p in batch
            ]
        sizes = [p.n_inputs for p in batch]
        if isinstance(self.encoder, TokenEncoder):
            merged = Windows(
                ids=[w for p in batch for w in p.windows.ids],
                type_ids=[t for p in batch for t in p.windows.type_ids],
                owner=np.arange(sum(sizes), dtype=np.int64),
                n_truncated=0,
            )
            vectors = self.encoder.embed_prepared(merged, sum(sizes))
        else:
            vectors = self.encoder.encode_batch([t for p in batch for t in p.texts])
        return np.split(check_model_output(vectors, self.id), np.cumsum(sizes)[:-1])

    def finish(self, vectors: np.ndarray, dimensions: int | None) -> np.ndarray:
        """Normalised float32 vectors as encode() returns them, truncated to `dimensions`."""
        if dimensions is not None and dimensions < self.dim:
            return truncate(vectors, dimensions, normalize=True)
        return l2_normalize(vectors)


def _count_tokens(encoder: Encoder, texts: list[str]) -> int:
    tokenizer = getattr(encoder, "tokenizer", None)
    if tokenizer is not None and hasattr(tokenizer, "encode_batch"):
        return sum(len(e.ids) for e in tokenizer.encode_batch(texts, add_special_tokens=False))
    return sum(len(text.split()) for text in texts)
