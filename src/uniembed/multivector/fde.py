"""MUVERA fixed dimensional encodings (Dhulipala et al. 2024): a set of token vectors becomes one
vector whose inner product with a query's approximates the late-interaction (Chamfer) score.

Per repetition r: k_sim Gaussian hyperplanes bucket each token by its sign pattern (2^k_sim
buckets); a query's block is the SUM of its (projected) tokens per bucket, a document's the MEAN;
an empty document bucket takes the token whose bucket bits are nearest in Hamming distance
(documents only); tokens are first projected to d_proj dims by a random +-1 matrix / sqrt(d_proj).
Blocks are concatenated: dim = R * 2^k_sim * d_proj, optionally reduced by a final random projection.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from uniembed.errors import InputError


@dataclass(frozen=True)
class FDEConfig:
    repetitions: int = 20
    k_sim: int = 5
    d_proj: int | None = 16  # None: no inner projection (blocks keep the token dim)
    final_dim: int | None = None  # None: no final projection
    seed: int = 42
    fill_empty: bool = True

    def check(self) -> None:
        for name in ("repetitions", "k_sim"):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, int)
                or value < (1 if name == "repetitions" else 0)
            ):
                raise InputError(
                    f"{name} must be an integer >= {1 if name == 'repetitions' else 0}, got {value!r}"
                )
        if self.k_sim > 12:
            raise InputError(f"k_sim must be at most 12 (2^k_sim buckets), got {self.k_sim}")
        for name in ("d_proj", "final_dim"):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value < 1
            ):
                raise InputError(f"{name} must be a positive integer or None, got {value!r}")

    def check_size(self, dim: int) -> None:
        """InputError when the encoding for `dim`-dim tokens, or its random matrices, would be too
        large to build (one request once asked for 4.3e9 dimensions per item)."""
        block = self.d_proj or dim
        raw = self.repetitions * 2**self.k_sim * block
        output = self.final_dim or raw
        sizes = {
            "the FDE dimension": (output, MAX_OUTPUT_DIM),
            "the FDE before its final projection": (raw, MAX_RAW_DIM),
            "the inner projection matrices": (self.repetitions * dim * block, MAX_MATRIX),
            "the final projection matrix": (raw * (self.final_dim or 0), MAX_MATRIX),
        }
        for what, (size, limit) in sizes.items():
            if size > limit:
                raise InputError(
                    f"FDE repetitions={self.repetitions}, k_sim={self.k_sim}, d_proj={self.d_proj}, "
                    f"final_dim={self.final_dim} over {dim}-dim tokens: {what} would be {size:,}, "
                    f"over the limit of {limit:,}"
                )

    def to_dict(self) -> dict:
        return asdict(self)


MAX_OUTPUT_DIM = 65_536  # as a collection's `dim`: one item's FDE is at most 256 KB
MAX_RAW_DIM = 262_144  # R * 2^k_sim * d_proj before a final projection
MAX_MATRIX = 1 << 26  # elements of one random matrix (256 MB of float32)


class FDE:
    """The random parameters of one FDE configuration for token vectors of `dim` dimensions."""

    def __init__(self, dim: int, config: FDEConfig | None = None):
        self.config = config = config or FDEConfig()
        config.check()
        config.check_size(dim)
        self.dim = dim
        self.buckets = 2**config.k_sim
        self.block_dim = config.d_proj or dim
        rng = np.random.default_rng(config.seed)
        self.hyperplanes = rng.standard_normal((config.repetitions, dim, config.k_sim)).astype(
            np.float32
        )
        if config.d_proj:
            signs = rng.integers(0, 2, size=(config.repetitions, dim, config.d_proj)) * 2 - 1
            self.projections = (signs / np.sqrt(config.d_proj)).astype(np.float32)
        else:
            self.projections = None
        self.raw_dim = config.repetitions * self.buckets * self.block_dim
        self.final = None
        if config.final_dim:
            signs = rng.integers(0, 2, size=(self.raw_dim, config.final_dim)) * 2 - 1
            self.final = (signs / np.sqrt(config.final_dim)).astype(np.float32)
        self.output_dim = config.final_dim or self.raw_dim
        # popcount of every bucket-id XOR, for the Hamming-nearest fill of empty document buckets
        xor = np.arange(self.buckets)[:, None] ^ np.arange(self.buckets)[None, :]
        self._hamming = np.array([bin(v).count("1") for v in range(self.buckets)])[xor]

    def queries(self, token_sets: list[np.ndarray]) -> np.ndarray:
        return self._encode(token_sets, query=True)

    def documents(self, token_sets: list[np.ndarray]) -> np.ndarray:
        return self._encode(token_sets, query=False)

    def _encode(self, token_sets: list[np.ndarray], *, query: bool) -> np.ndarray:
        sets = [np.asarray(t, dtype=np.float32) for t in token_sets]
        for index, tokens in enumerate(sets):
            if tokens.ndim != 2 or tokens.shape[1] != self.dim:
                raise InputError(
                    f"token set {index} has shape {tokens.shape}; expected (n, {self.dim})"
                )
            if len(tokens) == 0:
                raise InputError(f"token set {index} is empty: an FDE needs at least one token")
        counts = np.array([len(t) for t in sets])
        owner = np.repeat(np.arange(len(sets)), counts)
        tokens = np.concatenate(sets)
        n, b, width = len(sets), self.buckets, self.block_dim
        out = np.zeros((n, self.config.repetitions, b, width), dtype=np.float32)
        powers = 1 << np.arange(self.config.k_sim)
        for r in range(self.config.repetitions):
            bucket = (
                ((tokens @ self.hyperplanes[r]) > 0).astype(np.int64) @ powers
                if self.config.k_sim
                else np.zeros(len(tokens), np.int64)
            )
            projected = tokens @ self.projections[r] if self.projections is not None else tokens
            slot = owner * b + bucket
            block = np.zeros((n * b, width), dtype=np.float32)
            np.add.at(block, slot, projected)
            if not query:
                filled = np.bincount(slot, minlength=n * b)
                block[filled > 0] /= filled[filled > 0, None]
                if self.config.fill_empty and b > 1:
                    self._fill_empty(
                        block.reshape(n, b, width), filled.reshape(n, b), bucket, projected, counts
                    )
            out[:, r] = block.reshape(n, b, width)
        flat = out.reshape(n, self.raw_dim)
        return flat @ self.final if self.final is not None else flat

    def _fill_empty(self, block, filled, bucket, projected, counts) -> None:
        """An empty document bucket takes the projected token whose bucket is nearest in Hamming distance."""
        start = 0
        for doc, count in enumerate(counts):
            empty = np.flatnonzero(filled[doc] == 0)
            if len(empty):
                own = bucket[start : start + count]
                nearest = np.argmin(self._hamming[empty][:, own], axis=1)  # first token on ties
                block[doc, empty] = projected[start + nearest]
            start += count
