"""Making vectors smaller: Matryoshka truncation, int8 and binary quantisation."""

from uniembed.compress.quantize import Int8Quantizer, binarize, hamming_distances
from uniembed.compress.truncate import l2_normalize, truncate

__all__ = ["Int8Quantizer", "binarize", "hamming_distances", "l2_normalize", "truncate"]
