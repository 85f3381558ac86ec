"""Fine-tuning: contrastive losses, hard-negative mining, a resumable training loop, and saved
models that sentence-transformers loads too. Needs the torch extra."""

from __future__ import annotations

from uniembed.bind.training import BindConfig, BindResult, bind
from uniembed.train.token_head import TokenHeadConfig, TokenHeadResult, train_token_head
from uniembed.train.trainer import TrainConfig, TrainResult, train

__all__ = [
    "BindConfig",
    "BindResult",
    "TokenHeadConfig",
    "TokenHeadResult",
    "TrainConfig",
    "TrainResult",
    "bind",
    "train",
    "train_token_head",
]
