"""Multi-vector collections: each item keeps its token vectors (compressed) beside its MUVERA FDE.

Search = the FDE index finds candidates, exact MaxSim over their token vectors ranks them. Two
other first stages serve as yardsticks: exact MaxSim over every item (the oracle) and the classical
single-vector heuristic (each query token searches all document tokens; the union is reranked).

Token storage, per document of t tokens of d dims: float16 2*d*t bytes; int8 (d + 4)*t bytes
(one float32 scale per token, symmetric: x ~ q * scale, |q| <= 127). The blobs sit in the same row
as the FDE, so a write commits both or neither.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from uniembed.errors import InputError
from uniembed.multivector import FDE, FDEConfig, maxsim
from uniembed.store.backend import TOKENS  # noqa: F401  (the column of packed token vectors)
from uniembed.store.rows import check_norms

STORAGES = ("float16", "int8")
FLOAT16_MAX = float(np.finfo(np.float16).max)
FIRST_STAGES = ("fde", "exact", "tokens")
RERANK_BLOCK = 1024  # documents unpacked at once when reranking
METHODS = ("muvera",)


@dataclass(frozen=True)
class MultiVectorSpec:
    """What collection.json says about a multi-vector collection."""

    token_dim: int
    storage: str = "float16"
    fde: dict | None = None  # FDEConfig fields
    method: str = "muvera"

    @classmethod
    def make(
        cls, method: str, token_dim: int, storage: str, fde: FDEConfig | dict | None
    ) -> MultiVectorSpec:
        if method not in METHODS:
            raise InputError(f"multivector must be one of {list(METHODS)}, got {method!r}")
        if storage not in STORAGES:
            raise InputError(f"token_storage must be one of {list(STORAGES)}, got {storage!r}")
        config = fde_config(fde)
        config.check_size(token_dim)
        return cls(token_dim=token_dim, storage=storage, fde=config.to_dict(), method=method)

    def to_dict(self) -> dict:
        return {
            "method": self.method,
            "token_dim": self.token_dim,
            "storage": self.storage,
            "fde": dict(self.fde),
        }

    def bytes_per_token(self) -> int:
        return 2 * self.token_dim if self.storage == "float16" else self.token_dim + 4


def fde_config(fde: FDEConfig | dict | None) -> FDEConfig:
    if fde is None:
        return FDEConfig()
    if isinstance(fde, FDEConfig):
        fde.check()
        return fde
    if not isinstance(fde, dict):
        raise InputError(
            f"fde must be an FDEConfig or a dict of its fields, got {type(fde).__name__}"
        )
    known = set(FDEConfig.__dataclass_fields__)
    unknown = sorted(set(fde) - known)
    if unknown:
        raise InputError(f"unknown FDE parameter(s) {unknown}; known: {sorted(known)}")
    config = FDEConfig(**fde)
    config.check()
    return config


# -- packing ------------------------------------------------------------------------------------
def pack_tokens(tokens: np.ndarray, storage: str) -> bytes:
    if storage == "float16":
        return tokens.astype(np.float16).tobytes()
    scale = np.abs(tokens).max(axis=1) / 127.0
    scale[scale == 0] = 1.0
    quantized = np.clip(np.rint(tokens / scale[:, None]), -127, 127).astype(np.int8)
    return scale.astype(np.float32).tobytes() + quantized.tobytes()


def unpack_tokens(blob: bytes, dim: int, storage: str) -> np.ndarray:
    """(tokens, dim) float32 from a packed blob."""
    if storage == "float16":
        return np.frombuffer(blob, dtype=np.float16).reshape(-1, dim).astype(np.float32)
    count = len(blob) // (dim + 4)
    scale = np.frombuffer(blob, dtype=np.float32, count=count)
    quantized = np.frombuffer(blob, dtype=np.int8, offset=4 * count).reshape(count, dim)
    return quantized.astype(np.float32) * scale[:, None]


def check_token_sets(sets: object, n: int, dim: int, storage: str = "float32") -> list[np.ndarray]:
    """A list of n (tokens, dim) float32 arrays, each non-empty, finite, with norms whose scores
    cannot overflow, and within float16's range for float16 storage; InputError naming the bad one."""
    if isinstance(sets, np.ndarray) and sets.ndim == 2:
        raise InputError(
            f"this collection is multi-vector: pass a list of (tokens, {dim}) arrays, one per item, "
            f"not one ({sets.shape[0]}, {sets.shape[1]}) array of single vectors"
        )
    if not isinstance(sets, (list, tuple)) or len(sets) != n:
        got = f"{len(sets)} items" if isinstance(sets, (list, tuple)) else type(sets).__name__
        raise InputError(f"expected a list of {n} token-vector arrays (one per id), got {got}")
    out = []
    for index, tokens in enumerate(sets):
        try:
            array = np.asarray(tokens, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise InputError(f"token set {index}: not an array of numbers: {exc}") from None
        if array.size == 0:
            raise InputError(f"token set {index} is empty: an item needs at least one token vector")
        if array.ndim != 2 or array.shape[1] != dim:
            raise InputError(
                f"token set {index} has shape {array.shape}; this collection's token vectors have {dim} dims"
            )
        if not np.isfinite(array).all():
            raise InputError(f"token set {index} contains NaN or inf")
        check_norms(array, f"token set {index}: token")
        if storage == "float16" and np.abs(array).max() > FLOAT16_MAX:
            raise InputError(
                f"token set {index} holds values beyond +-{FLOAT16_MAX:g}, which float16 token storage "
                "cannot keep (use token_storage='int8')"
            )
        out.append(np.ascontiguousarray(array))
    return out


def query_tokens(query: object, dim: int) -> np.ndarray:
    """A user's multi-vector query as a (tokens, dim) float32 array; InputError on single vectors."""
    try:
        array = np.asarray(query, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise InputError(
            f"a multi-vector query must be a text or a (tokens, {dim}) array: {exc}"
        ) from None
    if array.ndim == 1:
        raise InputError(
            f"this collection is multi-vector: a query is a text or a (tokens, {dim}) array of token "
            f"vectors, got a single vector of shape {array.shape}"
        )
    if array.ndim != 2 or array.shape[1] != dim or len(array) == 0:
        raise InputError(
            f"a multi-vector query must be a non-empty (tokens, {dim}) array, got shape {array.shape}"
        )
    if not np.isfinite(array).all():
        raise InputError("query token vectors contain NaN or inf")
    check_norms(array, "query token")
    return array


# -- search -------------------------------------------------------------------------------------
class TokenSets:
    """The packed token vectors of one snapshot's rows, unpacked on demand; the flat token matrix
    for the per-token heuristic is built on its first use."""

    def __init__(self, blobs: list[bytes | None], spec: MultiVectorSpec):
        self.blobs = blobs
        self.spec = spec
        self._flat: tuple[np.ndarray, np.ndarray] | None = None

    def append(self, blobs: list[bytes | None]) -> None:
        self.blobs.extend(blobs)
        self._flat = None

    def get(self, rows) -> list[np.ndarray]:
        return [unpack_tokens(self.blobs[r], self.spec.token_dim, self.spec.storage) for r in rows]

    def flat(self) -> tuple[np.ndarray, np.ndarray]:
        """(all token vectors as float16, the row each belongs to)."""
        if self._flat is None:
            sets = self.get(range(len(self.blobs)))
            owner = np.repeat(np.arange(len(sets)), [len(t) for t in sets])
            self._flat = (np.concatenate(sets).astype(np.float16), owner)
        return self._flat


def check_stage(first_stage, candidates, token_hits) -> str:
    """The multi-vector first stage to use; InputError on a bad stage or count."""
    stage = first_stage or "fde"
    if stage not in FIRST_STAGES:
        raise InputError(f"first_stage must be one of {list(FIRST_STAGES)}, got {first_stage!r}")
    for name, value in (("candidates", candidates), ("token_hits", token_hits)):
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1
        ):
            raise InputError(f"{name} must be a positive integer, got {value!r}")
    return stage


def rerank(
    query: np.ndarray, rows: np.ndarray, tokens: TokenSets, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """(scores, rows) of the k best of `rows` by exact MaxSim, best first."""
    rows = np.asarray(rows, dtype=np.int64)
    if len(rows) == 0:
        return np.empty(0, np.float32), rows
    # unpacked a block at a time: 100,000 candidates of 256 tokens would be 40 GB of float32 at once
    scores = np.concatenate(
        [
            maxsim(query, tokens.get(rows[start : start + RERANK_BLOCK]))
            for start in range(0, len(rows), RERANK_BLOCK)
        ]
    )
    order = np.argsort(-scores, kind="stable")[:k]
    return scores[order], rows[order]


def token_heuristic_rows(
    query: np.ndarray,
    tokens: TokenSets,
    hits_per_token: int,
    allowed: np.ndarray | None,
    block: int = 262_144,
) -> np.ndarray:
    """Rows holding any of each query token's `hits_per_token` nearest document tokens (exact,
    blockwise over the flat token matrix), restricted to `allowed` rows."""
    flat, owner = tokens.flat()
    if allowed is not None:
        keep = allowed[owner]
        flat, owner = flat[keep], owner[keep]
    if len(flat) == 0:
        return np.empty(0, np.int64)
    best_scores = np.empty((len(query), 0), np.float32)
    best_index = np.empty((len(query), 0), np.int64)
    for start in range(
        0, len(flat), block
    ):  # float16 -> float32 one block at a time: bounded memory
        scores = query @ flat[start : start + block].astype(np.float32).T
        local = np.argpartition(-scores, min(hits_per_token, scores.shape[1]) - 1, axis=1)[
            :, :hits_per_token
        ]
        best_scores = np.concatenate(
            [best_scores, np.take_along_axis(scores, local, axis=1)], axis=1
        )
        best_index = np.concatenate([best_index, local + start], axis=1)
        if best_scores.shape[1] > hits_per_token:  # keep each query token's best so far
            keep = np.argpartition(-best_scores, hits_per_token - 1, axis=1)[:, :hits_per_token]
            best_scores = np.take_along_axis(best_scores, keep, axis=1)
            best_index = np.take_along_axis(best_index, keep, axis=1)
    return np.unique(owner[best_index.ravel()])


def make_fde(spec: MultiVectorSpec) -> FDE:
    return FDE(spec.token_dim, FDEConfig(**spec.fde))
