"""Fine-tuning: contrastive losses, hard-negative mining, a resumable training loop, and saved
models that sentence-transformers loads too. Needs the torch extra."""
from __future__ import annotations

from uniembed.train.trainer import TrainConfig, TrainResult, train

__all__ = ["TrainConfig", "TrainResult", "train"]
