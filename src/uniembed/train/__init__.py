"""Fine-tuning: contrastive losses, hard-negative mining, a resumable training loop, and saved
models that sentence-transformers loads too. Needs the torch extra. (Binding a new modality into
a model's space is `uniembed.bind`, which builds on this.)"""

from __future__ import annotations

from uniembed.train.token_head import TokenHeadConfig, TokenHeadResult, train_token_head
from uniembed.train.trainer import TrainConfig, TrainResult, train

__all__ = [
    "TokenHeadConfig",
    "TokenHeadResult",
    "TrainConfig",
    "TrainResult",
    "train",
    "train_token_head",
]
