"""Hugging Face transformer encoders run by torch: windows in, pooled vectors out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from uniembed.encoders.pooling import PaddingSide, PoolingMode, check_pooling, pool
from uniembed.encoders.token_encoder import TokenEncoder
from uniembed.encoders.tokens import WindowTokenizer


def window_tokenizer(
    hf_tokenizer, *, max_tokens: int, overlap: int, padding_side: str | None, lowercase: bool
) -> WindowTokenizer:
    """A WindowTokenizer over a private copy of a fast HF tokenizer's Rust tokenizer."""
    from tokenizers import Tokenizer

    if not getattr(hf_tokenizer, "is_fast", False):
        raise ValueError("the model has no fast tokenizer (tokenizer.json); uniembed needs one")
    backend = Tokenizer.from_str(hf_tokenizer.backend_tokenizer.to_str())
    return WindowTokenizer(
        backend,
        max_tokens=max_tokens,
        overlap=min(overlap, max_tokens // 2),
        pad_id=hf_tokenizer.pad_token_id or 0,
        padding_side=padding_side or hf_tokenizer.padding_side,
        lowercase=lowercase,
    )


class TransformerEncoder(TokenEncoder):
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
        token_budget: int = 16384,
        precision: str = "fp32",
        output_dim: int | None = None,
        layers: int | None = None,
    ):
        check_pooling(pooling)
        windows = window_tokenizer(
            tokenizer,
            max_tokens=max_tokens,
            overlap=chunk_overlap,
            padding_side=padding_side,
            lowercase=lowercase,
        )
        super().__init__(
            name,
            int(model.config.hidden_size),
            windows,
            pooling=pooling,
            token_budget=token_budget,
            prompts=prompts,
            default_prompt=default_prompt,
            output_dim=output_dim,
        )
        self.layers = layers  # None: all of the model's layers
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model = model.to(self.device).eval()
        self.tokenizer = tokenizer
        self.precision = precision
        self._input_names = [
            n
            for n in tokenizer.model_input_names
            if n in ("input_ids", "attention_mask", "token_type_ids")
        ]

    @property
    def fingerprint(self) -> str:
        """Weights (SHA-256 of every safetensors file), pooling, length limit and prompts."""
        if getattr(self, "_fingerprint", None) is None:
            from uniembed.encoders.base import digest
            from uniembed.encoders.registry import weights_digest

            weights = weights_digest(Path(self.source)) if self.source else self.name
            base = digest(
                weights, self.pooling, self.max_tokens, sorted(self.prompts.items()), self.dim
            )
            if self.layers is not None:  # a model cut to fewer layers makes other vectors
                base = digest(base, "layers", self.layers)
            # lower precisions make (slightly) different vectors: a different fingerprint
            self._fingerprint = base if self.precision == "fp32" else digest(base, self.precision)
        return self._fingerprint

    def hidden_windows(self, padded: dict[str, np.ndarray]) -> np.ndarray:
        inputs = {
            name: torch.from_numpy(padded[name]).to(self.device) for name in self._input_names
        }
        with torch.inference_mode():
            return self.model(**inputs).last_hidden_state.float().cpu().numpy()

    def embed_windows(self, padded: dict[str, np.ndarray]) -> np.ndarray:
        inputs = {
            name: torch.from_numpy(padded[name]).to(self.device) for name in self._input_names
        }
        with torch.inference_mode():
            hidden = self.model(**inputs).last_hidden_state  # (batch, tokens, dim)
            mask = inputs.get(
                "attention_mask", torch.from_numpy(padded["attention_mask"]).to(self.device)
            )
            pooled = pool(hidden, mask, self.pooling, self.padding_side)
        return pooled.float().cpu().numpy()
