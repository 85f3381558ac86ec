"""Making vectors smaller: Matryoshka truncation (and, later, quantisation)."""
from uniembed.compress.truncate import l2_normalize, truncate

__all__ = ["l2_normalize", "truncate"]
