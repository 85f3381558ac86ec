"""Graphs in: edge lists (csv/tsv/parquet), scipy sparse matrices or networkx graphs, with node ids
of any string or integer type mapped to rows and back.

Defined behaviour: self-loops are dropped (a node's own vector is FastRP's self-influence);
duplicate edges collapse into one (weighted lists: their weights add up); undirected graphs are
symmetrised; nodes named in `extra_nodes` (e.g. labelled nodes) without edges are isolated nodes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from uniembed.errors import InputError


@dataclass
class Graph:
    ids: np.ndarray  # row -> original node id
    adjacency: object  # scipy CSR, n x n, float32
    _sorted: np.ndarray | None = field(
        default=None, repr=False
    )  # argsort of ids, made on first lookup

    @property
    def n_nodes(self) -> int:
        return len(self.ids)

    @property
    def n_edges(self) -> int:
        return int(self.adjacency.nnz)

    def rows_of(self, ids) -> np.ndarray:
        """Rows of node ids (-1 for an unknown id or one of another type), by binary search over
        the ids sorted once: no Python loop over the graph's nodes."""
        if self._sorted is None:
            self._sorted = np.argsort(self.ids, kind="stable")
        wanted = np.asarray(list(ids) if not isinstance(ids, np.ndarray) else ids)
        if len(wanted) == 0:
            return np.empty(0, dtype=np.int64)
        ordered = self.ids[self._sorted]
        try:
            at = np.minimum(np.searchsorted(ordered, wanted), len(ordered) - 1)
            found = ordered[at] == wanted
        except (TypeError, ValueError):  # e.g. string ids against integer ones (numpy: a TypeError)
            return np.full(len(wanted), -1, dtype=np.int64)
        return np.where(found, self._sorted[at], -1).astype(np.int64)


def read_edges(
    path: str | Path,
    *,
    source: str = "source",
    target: str = "target",
    weight: str | None = None,
    directed: bool = False,
    extra_nodes=None,
) -> Graph:
    """A graph from an edge list file: columns `source`, `target` and optionally `weight`."""
    table = _read_table(Path(path))
    missing = [c for c in (source, target, weight) if c is not None and c not in table.column_names]
    if missing:
        raise InputError(f"{path}: no column(s) {missing}; the file has {table.column_names}")
    src = table.column(source).to_numpy(zero_copy_only=False)
    dst = table.column(target).to_numpy(zero_copy_only=False)
    weights = None
    if weight is not None:
        try:
            weights = table.column(weight).to_numpy(zero_copy_only=False).astype(np.float64)
        except (ValueError, TypeError) as exc:
            raise InputError(f"{path}: weight column {weight!r} is not numeric ({exc})") from exc
    return from_edge_arrays(
        src, dst, weights, directed=directed, extra_nodes=extra_nodes, where=str(path)
    )


def _read_table(path: Path):
    from uniembed._extras import require

    require("parquet")
    if path.is_dir():
        hint = f"; did you mean {path / 'edges.csv'}?" if (path / "edges.csv").is_file() else ""
        raise InputError(
            f"edge list {path} is a folder, not a file (csv/tsv/parquet of edges){hint}"
        )
    if not path.is_file():
        raise InputError(f"edge list {path} does not exist")
    suffix = "".join(path.suffixes[-2:]) if path.suffix == ".gz" else path.suffix
    try:
        if suffix in (".parquet",):
            import pyarrow.parquet as pq

            return pq.read_table(path)
        if suffix in (".csv", ".tsv", ".csv.gz", ".tsv.gz", ".txt"):
            import pyarrow.csv as pacsv

            delimiter = "\t" if ".tsv" in suffix else ","
            return pacsv.read_csv(path, parse_options=pacsv.ParseOptions(delimiter=delimiter))
    except Exception as exc:  # pyarrow raises several types for unreadable files
        raise InputError(f"cannot read edge list {path}: {exc}") from exc
    raise InputError(
        f"{path}: unsupported edge list format {suffix!r} (use .csv, .tsv or .parquet)"
    )


def from_edge_arrays(
    src, dst, weights=None, *, directed: bool = False, extra_nodes=None, where: str = "edges"
) -> Graph:
    import scipy.sparse as sparse

    src, dst = np.asarray(src), np.asarray(dst)
    if len(src) != len(dst):
        raise InputError(f"{where}: {len(src)} sources for {len(dst)} targets")
    extra = np.asarray(
        list(extra_nodes) if extra_nodes is not None else [],
        dtype=src.dtype if len(src) else object,
    )
    if len(src) == 0 and len(extra) == 0:
        raise InputError(f"{where}: the graph is empty (no edges, no nodes)")
    if weights is not None:
        weights = np.asarray(weights, dtype=np.float64)
        if not np.isfinite(weights).all():
            raise InputError(f"{where}: weights must be finite numbers")
        if (weights < 0).any():
            raise InputError(f"{where}: weights must be >= 0, found {weights.min()}")
    try:
        ids, inverse = np.unique(np.concatenate([src, dst, extra]), return_inverse=True)
    except TypeError as exc:  # mixed ints and strings
        raise InputError(f"{where}: node ids must be all integers or all strings ({exc})") from exc
    rows, cols = inverse[: len(src)], inverse[len(src) : 2 * len(src)]
    keep = rows != cols  # self-loops dropped
    values = (
        np.ones(keep.sum(), dtype=np.float32)
        if weights is None
        else weights[keep].astype(np.float32)
    )
    n = len(ids)
    adjacency = sparse.coo_matrix(
        (values, (rows[keep], cols[keep])), shape=(n, n)
    ).tocsr()  # duplicates add up
    if not directed:
        adjacency = adjacency + adjacency.T
    if weights is None:
        adjacency.data[:] = 1.0  # unweighted: a duplicate or a reverse edge is the same edge
    adjacency.sum_duplicates()
    return Graph(ids, adjacency.astype(np.float32).tocsr())


def from_scipy(matrix, ids=None) -> Graph:
    import scipy.sparse as sparse

    matrix = sparse.csr_matrix(matrix, dtype=np.float32)
    if matrix.shape[0] != matrix.shape[1] or matrix.shape[0] == 0:
        raise InputError(f"adjacency must be a non-empty square matrix, got shape {matrix.shape}")
    matrix.setdiag(0)
    matrix.eliminate_zeros()
    return Graph(np.asarray(ids if ids is not None else np.arange(matrix.shape[0])), matrix)


def from_networkx(graph, weight: str | None = "weight") -> Graph:
    import networkx as nx

    nodes = list(graph.nodes())
    if not nodes:
        raise InputError("the graph is empty (no nodes)")
    matrix = nx.to_scipy_sparse_array(graph, nodelist=nodes, weight=weight, format="csr")
    return from_scipy(matrix, ids=np.asarray(nodes))
