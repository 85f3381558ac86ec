"""Pooling token states into one vector per sequence (torch).

Each pooler takes hidden states (batch, tokens, dim) and the attention mask (batch, tokens) and
returns (batch, dim). Mean and max follow sentence-transformers' arithmetic exactly, so pooled
vectors match it bit for bit on the same hidden states.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch

from uniembed.errors import InputError

PoolingMode = Literal[
    "mean", "cls", "lasttoken", "max"
]  # the same modes as pooling_numpy.POOLING_MODES
PaddingSide = Literal["right", "left"]


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor, padding_side: PaddingSide) -> torch.Tensor:
    weights = mask.unsqueeze(-1).to(hidden.dtype)  # (batch, tokens, 1)
    summed = (hidden * weights).sum(dim=1)
    counts = weights.sum(dim=1).clamp(min=1e-9)
    return summed / counts


def cls_pool(hidden: torch.Tensor, mask: torch.Tensor, padding_side: PaddingSide) -> torch.Tensor:
    # With left padding the first real token is not at index 0.
    if padding_side == "left":
        first = mask.shape[1] - mask.sum(dim=1)
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), first]
    return hidden[:, 0]


def last_token_pool(
    hidden: torch.Tensor, mask: torch.Tensor, padding_side: PaddingSide
) -> torch.Tensor:
    if padding_side == "left":
        return hidden[:, -1]
    last = mask.sum(dim=1) - 1  # index of the last real token with right padding
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]


def max_pool(hidden: torch.Tensor, mask: torch.Tensor, padding_side: PaddingSide) -> torch.Tensor:
    masked = hidden.masked_fill(mask.unsqueeze(-1) == 0, -1e9)
    return masked.max(dim=1).values


POOLERS: dict[str, Callable[[torch.Tensor, torch.Tensor, PaddingSide], torch.Tensor]] = {
    "mean": mean_pool,
    "cls": cls_pool,
    "lasttoken": last_token_pool,
    "max": max_pool,
}


def pool(
    hidden: torch.Tensor, mask: torch.Tensor, mode: PoolingMode, padding_side: PaddingSide = "right"
) -> torch.Tensor:
    """(batch, dim) pooled vectors of hidden states (batch, tokens, dim) under `mode`."""
    check_pooling(mode)
    if padding_side not in ("right", "left"):
        raise InputError(f"padding_side must be 'right' or 'left', got {padding_side!r}")
    return POOLERS[mode](hidden, mask, padding_side)


def check_pooling(mode: object) -> None:
    if mode not in POOLERS:
        raise InputError(f"pooling must be one of {list(POOLERS)}, got {mode!r}")
