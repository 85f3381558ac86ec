"""ColBERT / PyLate model directories: a transformer followed by a per-token linear head.

PyLate saves `modules.json` = [Transformer, pylate.models.Dense.Dense] and, in
config_sentence_transformers.json, how queries and documents are tokenised (read from PyLate 1.6's
`ColBERT.tokenize` / `encode`):
- a prefix token ("[Q] " / "[D] ", added to the vocabulary) goes right after the first token;
- inputs are cut at query_length / document_length tokens, prefix included;
- queries are padded to query_length with the [MASK] token ("query expansion"); those tokens get
  vectors too, and are attended to only when attend_to_expansion_tokens is set;
- document tokens in skiplist_words (punctuation by default) are dropped from the output;
- every token vector goes through the head (y = x W^T + b) and is L2-normalised.
"""

from __future__ import annotations

import hashlib
import string
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from uniembed._json import read_json
from uniembed.errors import ModelLoadError

IDENTITY = ("torch.nn.modules.linear.Identity", "torch.nn.Identity")


@dataclass(frozen=True)
class TokenHead:
    """How one late-interaction model turns text into token vectors."""

    weight: np.ndarray  # (out, hidden), as torch.nn.Linear stores it
    bias: np.ndarray | None
    query_prefix_id: int | None
    document_prefix_id: int | None
    query_length: int
    document_length: int
    query_expansion: bool
    attend_to_expansion: bool
    mask_id: int | None
    skiplist_ids: frozenset[int]

    @property
    def dim(self) -> int:
        return int(self.weight.shape[0])

    @property
    def digest(self) -> str:
        """Identifies the head and the tokenisation rules, for fingerprints."""
        h = hashlib.sha256(self.weight.tobytes())
        if self.bias is not None:
            h.update(self.bias.tobytes())
        h.update(
            repr(
                (
                    self.query_prefix_id,
                    self.document_prefix_id,
                    self.query_length,
                    self.document_length,
                    self.query_expansion,
                    self.attend_to_expansion,
                    self.mask_id,
                    sorted(self.skiplist_ids),
                )
            ).encode()
        )
        return h.hexdigest()

    def project(self, hidden: np.ndarray) -> np.ndarray:
        out = hidden @ self.weight.T
        return out + self.bias if self.bias is not None else out


def read_dense_dir(directory: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """(weight, bias) of a sentence-transformers / PyLate Dense module folder (safetensors only)."""
    config = read_json(directory / "config.json")
    if not isinstance(config, dict) or not {"in_features", "out_features"} <= set(config):
        raise ModelLoadError(f"{directory / 'config.json'} must give in_features and out_features")
    activation = config.get("activation_function", IDENTITY[0])
    if activation not in IDENTITY:
        raise ModelLoadError(
            f"{directory}: activation {activation!r} is not supported (only Identity, as PyLate uses)"
        )
    if config.get("use_residual"):
        raise ModelLoadError(f"{directory}: use_residual=true is not supported")
    weights_file = directory / "model.safetensors"
    if not weights_file.is_file():
        pickle = (directory / "pytorch_model.bin").is_file()
        raise ModelLoadError(
            f"{directory} has {'only pickle weights (pytorch_model.bin)' if pickle else 'no model.safetensors'}; "
            "uniembed loads safetensors only"
        )
    from safetensors.numpy import load_file

    try:
        tensors = load_file(str(weights_file))
    except Exception as exc:  # a truncated or foreign file raises several types
        raise ModelLoadError(f"cannot read {weights_file}: {exc}") from exc
    weight = tensors.get("linear.weight")
    expected = (int(config["out_features"]), int(config["in_features"]))
    if weight is None or weight.shape != expected:
        got = None if weight is None else weight.shape
        raise ModelLoadError(f"{weights_file}: linear.weight must have shape {expected}, got {got}")
    bias = tensors.get("linear.bias") if config.get("bias", True) else None
    return weight.astype(np.float32), None if bias is None else bias.astype(np.float32)


def read_token_head(model_dir: Path, dense_dir: Path, tokenizer) -> TokenHead:
    """The TokenHead of a PyLate directory; `tokenizer` is its tokenizers.Tokenizer."""
    weight, bias = read_dense_dir(dense_dir)
    settings = (
        read_json(model_dir / "config_sentence_transformers.json")
        if (model_dir / "config_sentence_transformers.json").is_file()
        else {}
    )
    if not isinstance(settings, dict):
        raise ModelLoadError(
            f"{model_dir / 'config_sentence_transformers.json'} must hold a JSON object"
        )

    def token_id(token: str, what: str) -> int | None:
        if not token:
            return None
        found = tokenizer.token_to_id(token)
        if found is None:
            raise ModelLoadError(
                f"{model_dir}: the {what} {token!r} is not in the tokenizer's vocabulary"
            )
        return int(found)

    vocabulary = tokenizer.get_vocab(with_added_tokens=True)
    skiplist = settings.get("skiplist_words")
    skiplist = list(string.punctuation) if skiplist is None else skiplist
    expansion = bool(settings.get("do_query_expansion", True))
    mask_id = next((vocabulary[t] for t in ("[MASK]", "<mask>") if t in vocabulary), None)
    if expansion and mask_id is None:
        raise ModelLoadError(
            f"{model_dir}: query expansion needs a [MASK] token, and the tokenizer has none"
        )
    return TokenHead(
        weight=weight,
        bias=bias,
        query_prefix_id=token_id(settings.get("query_prefix", "[Q] "), "query prefix"),
        document_prefix_id=token_id(settings.get("document_prefix", "[D] "), "document prefix"),
        query_length=int(settings.get("query_length") or 32),
        document_length=int(settings.get("document_length") or 180),
        query_expansion=expansion,
        attend_to_expansion=expansion and bool(settings.get("attend_to_expansion_tokens", False)),
        mask_id=mask_id,
        skiplist_ids=frozenset(vocabulary[w] for w in skiplist if w in vocabulary),
    )
