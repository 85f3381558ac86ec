"""Nearest-neighbour search over vectors. `exact` is the brute-force oracle."""
from uniembed.index.exact import TopK

__all__ = ["TopK"]
