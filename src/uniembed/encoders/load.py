"""`load()`: a name, a directory or a hub id in, a ready TransformerEncoder out."""
from __future__ import annotations

from pathlib import Path

from uniembed._extras import require
from uniembed.encoders.model_dir import ModelDirConfig, read_model_dir
from uniembed.encoders.registry import resolve
from uniembed.errors import InputError, ModelLoadError


def load(
    model: str | Path | None = None,
    *,
    device: str | None = None,
    pooling: str | None = None,
    max_tokens: int | None = None,
    padding_side: str | None = None,
    chunk_overlap: int = 32,
):
    """Load an encoder: the default model (offline), a catalogue name, a local directory or a hub id.

    pooling: "mean", "cls", "lasttoken" or "max"; default from the model's config, else "mean".
    max_tokens: maximum tokens per input; default from the model's config.
    padding_side: "right" or "left"; default from the tokenizer config.
    chunk_overlap: tokens shared by neighbouring windows when encoding with long="chunk".
    """
    require("torch")
    from uniembed.encoders.pooling import check_pooling
    from uniembed.encoders.transformer import TransformerEncoder

    if isinstance(chunk_overlap, bool) or not isinstance(chunk_overlap, int) or chunk_overlap < 0:
        raise InputError(f"chunk_overlap must be a non-negative integer, got {chunk_overlap!r}")
    if padding_side not in (None, "left", "right"):
        raise InputError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
    if pooling is not None:
        check_pooling(pooling)

    name, directory = resolve(model)
    config = read_model_dir(directory)
    tokenizer = _load_tokenizer(config.weights_dir)
    body = _load_body(config.weights_dir)
    limit = _max_tokens(max_tokens, config, tokenizer, body)
    try:
        encoder = TransformerEncoder(
            name,
            body,
            tokenizer,
            pooling=pooling or config.pooling or "mean",
            max_tokens=limit,
            prompts=config.prompts,
            default_prompt=config.default_prompt,
            padding_side=padding_side,
            chunk_overlap=chunk_overlap,
            lowercase=config.lowercase,
            device=device,
        )
    except ValueError as exc:
        raise ModelLoadError(f"cannot build an encoder from {directory}: {exc}") from exc
    encoder.source = str(directory)
    return encoder


def _load_tokenizer(directory: Path):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(directory), local_files_only=True)
    except Exception as exc:  # corrupt or partial tokenizer files raise many types
        raise ModelLoadError(f"cannot load the tokenizer in {directory}: {type(exc).__name__}: {str(exc)[:300]}") from exc


def _load_body(directory: Path):
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a per-tensor "Loading weights" bar is noise for users
    try:
        # use_safetensors=True: never fall back to pickle weights
        return AutoModel.from_pretrained(str(directory), local_files_only=True, use_safetensors=True)
    except Exception as exc:
        raise ModelLoadError(f"cannot load the weights in {directory}: {type(exc).__name__}: {str(exc)[:300]}") from exc
    finally:
        hf_logging.enable_progress_bar()


def _max_tokens(requested: int | None, config: ModelDirConfig, tokenizer, body) -> int:
    positions = getattr(body.config, "max_position_embeddings", None)
    if requested is not None:
        if isinstance(requested, bool) or not isinstance(requested, int) or requested < 2:
            raise InputError(f"max_tokens must be an integer >= 2, got {requested!r}")
        if isinstance(positions, int) and requested > positions:
            raise InputError(f"max_tokens={requested} exceeds the model's {positions} position embeddings")
        return requested
    if config.max_tokens:
        return int(config.max_tokens)
    limits = [positions, getattr(tokenizer, "model_max_length", None)]
    # tokenizers without a limit report a huge sentinel (1e30); position embeddings bound the rest
    usable = [int(x) for x in limits if isinstance(x, int) and 0 < x < 1_000_000]
    return min(usable) if usable else 512
