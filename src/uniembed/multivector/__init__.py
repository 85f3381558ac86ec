"""Multi-vector (late interaction) retrieval: per-token vectors, MaxSim, and MUVERA FDEs that let a
single-vector index find the candidates for an exact MaxSim rerank."""

from __future__ import annotations

from uniembed.multivector.fde import FDE, FDEConfig
from uniembed.multivector.maxsim import maxsim, pad_token_sets

__all__ = ["FDE", "FDEConfig", "maxsim", "pad_token_sets"]
