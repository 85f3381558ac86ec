"""FastRP (Chen et al. 2019): node embeddings from very sparse random projections, propagated
along the edges. Sparse matrix products only, no Python loop over nodes.

    A = D^-1 S                      row-normalised adjacency (a node averages its neighbours)
    R = very sparse random          entries sqrt(s) * {+1: 1/(2s), 0: 1 - 1/s, -1: 1/(2s)}
    N_1 = A diag(d^beta) R,  N_i = A N_(i-1)   each N_i row-normalised (L2)
    embedding = self_influence * N_0 + sum_i weights[i] * N_i

Defaults follow Neo4j GDS (sparsity s = 3, iteration weights [0, 1, 1], beta 0, self-influence 0);
the paper's BlogCatalog settings are weights [0, 0, 1, 6.67], beta -0.64, s = sqrt(n). Node
features (text embeddings, bag of words) take `property_ratio` of the dimensions, as in GDS: they
are projected by their own random matrix and propagated like the rest.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from uniembed.errors import InputError


@dataclass
class FastRPConfig:
    dim: int = 256
    iteration_weights: list[float] = field(default_factory=lambda: [0.0, 1.0, 1.0])
    normalization_strength: float = 0.0  # beta: degree^beta scales the initial vectors
    self_influence: float = 0.0  # weight of N_0 (the node's own random vector)
    sparsity: float | None = 3.0  # s; None: sqrt(n) as in the paper
    property_ratio: float = 0.0  # share of the dims built from node features
    normalize_rows: bool = True  # L2-normalise every N_i
    seed: int = 42

    def check(self) -> None:
        if isinstance(self.dim, bool) or not isinstance(self.dim, int) or self.dim < 1:
            raise InputError(f"dim must be a positive integer, got {self.dim!r}")
        if not self.iteration_weights or not all(np.isfinite(w) for w in self.iteration_weights):
            raise InputError(
                f"iteration_weights must be a non-empty list of numbers, got {self.iteration_weights!r}"
            )
        if self.sparsity is not None and not self.sparsity >= 1:
            raise InputError(f"sparsity must be >= 1, got {self.sparsity!r}")
        if not 0 <= self.property_ratio <= 1:
            raise InputError(f"property_ratio must be in [0, 1], got {self.property_ratio!r}")


def fastrp(adjacency, config: FastRPConfig | None = None, *, features=None) -> np.ndarray:
    """(n, dim) float32 embeddings of the n nodes of `adjacency` (scipy sparse, n x n, weights >= 0;
    symmetric for an undirected graph). `features`: optional (n, f) dense or sparse node features."""
    import scipy.sparse as sparse

    config = config or FastRPConfig()
    config.check()
    a = sparse.csr_matrix(adjacency, dtype=np.float32)
    n = a.shape[0]
    if a.shape != (n, n) or n == 0:
        raise InputError(f"adjacency must be a non-empty square matrix, got shape {a.shape}")
    if a.nnz and a.data.min() < 0:
        raise InputError("edge weights must be >= 0")
    rng = np.random.default_rng(config.seed)
    degree = np.asarray(a.sum(axis=1)).ravel()
    # row-normalised: isolated nodes (degree 0) keep an all-zero row and so only their own vector
    inverse = np.divide(1.0, degree, out=np.zeros_like(degree), where=degree > 0)
    propagate = sparse.diags(inverse.astype(np.float32)) @ a

    feature_dims = int(round(config.dim * config.property_ratio)) if features is not None else 0
    initial = np.empty((n, config.dim), dtype=np.float32)
    s = config.sparsity or float(np.sqrt(n))
    initial[:, feature_dims:] = _very_sparse_random(n, config.dim - feature_dims, s, rng)
    if feature_dims:
        initial[:, :feature_dims] = _project_features(features, n, feature_dims, s, rng)
    scale = np.power(
        degree, config.normalization_strength, out=np.ones_like(degree), where=degree > 0
    )
    current = initial * scale[:, None].astype(np.float32)

    embedding = (
        config.self_influence * _row_normalised(initial)
        if config.self_influence
        else np.zeros_like(initial)
    )
    for weight in config.iteration_weights:
        current = np.asarray(propagate @ current, dtype=np.float32)
        if config.normalize_rows:
            current = _row_normalised(current)
        if weight:
            embedding += np.float32(weight) * current
    return embedding


def _very_sparse_random(n: int, dim: int, s: float, rng: np.random.Generator) -> np.ndarray:
    """sqrt(s) * {+1, 0, -1} with probabilities 1/(2s), 1 - 1/s, 1/(2s) (Achlioptas / Li et al.)."""
    draw = rng.random((n, dim), dtype=np.float32)
    value = np.float32(np.sqrt(s))
    out = np.zeros((n, dim), dtype=np.float32)
    out[draw < 1 / (2 * s)] = value
    out[draw > 1 - 1 / (2 * s)] = -value
    return out


def _project_features(features, n: int, dim: int, s: float, rng: np.random.Generator) -> np.ndarray:
    import scipy.sparse as sparse

    if features.shape[0] != n:
        raise InputError(f"features have {features.shape[0]} rows for {n} nodes")
    projection = _very_sparse_random(features.shape[1], dim, s, rng)
    projected = (
        features @ projection
        if sparse.issparse(features)
        else np.asarray(features, dtype=np.float32) @ projection
    )
    return np.asarray(projected, dtype=np.float32)


def _row_normalised(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)
