"""Hugging Face transformer encoders (torch): tokenise, run, pool; truncate or chunk long inputs."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from uniembed.encoders.base import Encoder, LongPolicy
from uniembed.encoders.pooling import PaddingSide, PoolingMode, check_pooling, pool


class TransformerEncoder(Encoder):
    """A transformer body plus a pooling rule: mean, CLS, last-token or max."""

    def __init__(
        self,
        name: str,
        model: torch.nn.Module,
        tokenizer,
        *,
        pooling: PoolingMode = "mean",
        max_tokens: int = 512,
        prompts: dict[str, str] | None = None,
        default_prompt: str | None = None,
        padding_side: PaddingSide | None = None,
        chunk_overlap: int = 32,
        lowercase: bool = False,
        device: str | None = None,
    ):
        check_pooling(pooling)
        super().__init__(
            name, int(model.config.hidden_size), prompts=prompts, default_prompt=default_prompt, max_tokens=max_tokens
        )
        if not getattr(tokenizer, "is_fast", False):
            raise ValueError(f"model {name} has no fast tokenizer (tokenizer.json); uniembed needs one")
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model = model.to(self.device).eval()
        self.tokenizer = tokenizer
        if padding_side is not None:
            tokenizer.padding_side = padding_side
        self.pooling = pooling
        self.chunk_overlap = min(chunk_overlap, max_tokens // 2)
        self.lowercase = lowercase

    @property
    def fingerprint(self) -> str:
        """Weights (SHA-256 of every safetensors file), pooling, length limit and prompts."""
        if getattr(self, "_fingerprint", None) is None:
            from uniembed.encoders.base import _digest
            from uniembed.encoders.registry import weights_digest

            weights = weights_digest(Path(self.source)) if self.source else self.name
            self._fingerprint = _digest(weights, self.pooling, self.max_tokens, sorted(self.prompts.items()), self.dim)
        return self._fingerprint

    @property
    def padding_side(self) -> PaddingSide:
        return self.tokenizer.padding_side

    def encode_batch(self, texts: list[str], *, long: LongPolicy = "truncate") -> np.ndarray:
        # sentence-transformers strips surrounding whitespace; so do we, for identical vectors.
        texts = [t.strip().lower() if self.lowercase else t.strip() for t in texts]
        windows = self._tokenize_windows(texts, stride=self.chunk_overlap if long == "chunk" else 0)
        owner = np.asarray(windows.pop("overflow_to_sample_mapping"))  # window -> input index
        per_input = np.bincount(owner, minlength=len(texts))
        too_long = per_input > 1
        if long == "truncate":
            # The first window of each input is exactly the plain truncation of it.
            self.note_truncated(int(too_long.sum()))
            first = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]])
            windows = {k: [v[i] for i in first] for k, v in windows.items()}
            return self._embed(windows, step=len(texts))[0]
        self.note_chunks(int(per_input[too_long].sum()))
        vectors, lengths = self._embed(windows, step=len(texts))
        return _weighted_mean_by_owner(vectors, lengths, owner, len(texts))

    def _tokenize_windows(self, texts: list[str], stride: int) -> dict:
        return dict(
            self.tokenizer(
                texts,
                truncation=True,
                max_length=self.max_tokens,
                stride=stride,
                return_overflowing_tokens=True,
                padding=False,
            )
        )

    def _embed(self, features: dict, step: int) -> tuple[np.ndarray, np.ndarray]:
        """Pooled vectors and token counts of the tokenised windows, `step` windows per forward pass."""
        names = [n for n in self.tokenizer.model_input_names if n in features]
        n = len(features["input_ids"])
        vectors, lengths = [], []
        for start in range(0, n, step):
            part = {k: features[k][start : start + step] for k in names}
            padded = self.tokenizer.pad(part, padding=True, return_tensors="pt")
            padded = {k: v.to(self.device) for k, v in padded.items()}
            with torch.inference_mode():
                hidden = self.model(**padded).last_hidden_state  # (batch, tokens, dim)
                pooled = pool(hidden, padded["attention_mask"], self.pooling, self.padding_side)
            vectors.append(pooled.float().cpu().numpy())
            lengths.append(padded["attention_mask"].sum(dim=1).cpu().numpy())
        return np.concatenate(vectors).astype(np.float32, copy=False), np.concatenate(lengths)


def _weighted_mean_by_owner(vectors: np.ndarray, lengths: np.ndarray, owner: np.ndarray, n: int) -> np.ndarray:
    """One vector per input: the token-count-weighted mean of its window vectors.

    For mean pooling this approximates the mean over all the input's tokens (overlaps count twice).
    """
    weights = lengths.astype(np.float64)
    out = np.zeros((n, vectors.shape[1]), dtype=np.float64)
    np.add.at(out, owner, vectors * weights[:, None])
    totals = np.bincount(owner, weights=weights, minlength=n)
    return (out / totals[:, None]).astype(np.float32)
