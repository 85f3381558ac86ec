"""Encoders: anything in, float32 (n, dim) vectors out."""

from uniembed.encoders.base import Encoder, EncodeReport, TruncationWarning
from uniembed.encoders.load import load

__all__ = ["Encoder", "EncodeReport", "TruncationWarning", "load"]
