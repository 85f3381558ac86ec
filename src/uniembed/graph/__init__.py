"""Graph node embeddings (FastRP), from edge lists, scipy sparse matrices or networkx graphs.

from uniembed.graph import embed
ids, vectors = embed("edges.csv", dim=256)            # or a scipy matrix, or a networkx graph
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from uniembed._atomic import replace_file
from uniembed._extras import require
from uniembed.errors import InputError

require("graph")  # the one guard of this subpackage: scipy sparse matrices throughout
from uniembed.graph.edges import Graph, from_networkx, from_scipy, read_edges
from uniembed.graph.fastrp import FastRPConfig, fastrp


def embed(
    graph, config: FastRPConfig | None = None, *, features=None, **options
) -> tuple[np.ndarray, np.ndarray]:
    """(node ids, (n, dim) float32 vectors). `graph`: an edge list path, a Graph, a scipy sparse
    adjacency matrix or a networkx graph; `options` are FastRPConfig fields (dim=..., seed=...)."""
    config = config or FastRPConfig(**options)
    if isinstance(graph, (str, Path)):
        graph = read_edges(graph)
    elif not isinstance(graph, Graph):
        graph = (
            from_networkx(graph)
            if hasattr(graph, "nodes") and hasattr(graph, "edges")
            else from_scipy(graph)
        )
    return graph.ids, fastrp(graph.adjacency, config, features=features)


def embed_edges(
    path,
    config: FastRPConfig,
    *,
    source="source",
    target="target",
    weight=None,
    directed=False,
    node_texts=(None, None),
    model=None,
):
    """(ids, vectors) of an edge list; with node_texts = (ids, texts), the texts are embedded by
    `model` and mixed in as FastRP features (nodes without a text get a zero feature row)."""
    text_ids, texts = node_texts
    graph = read_edges(path, source=source, target=target, weight=weight, directed=directed)
    features = None
    if texts is not None:
        from uniembed.encoders.load import load

        encoder = load(model)
        text_vectors = encoder.encode(texts, prompt="document", show_progress=len(texts) > 1000)
        features = np.zeros((graph.n_nodes, encoder.dim), dtype=np.float32)
        rows = graph.rows_of([_same_type(graph.ids, i) for i in text_ids])
        known = rows >= 0
        features[rows[known]] = text_vectors[known]
    return graph.ids, fastrp(graph.adjacency, config, features=features)


def _same_type(ids: np.ndarray, value: str):
    """A node id read as text, converted to the graph's id type (integer ids from a csv edge list)."""
    return int(value) if ids.dtype.kind in "iu" and value.lstrip("-").isdigit() else value


def write_node_vectors(path: str | Path, ids: np.ndarray, vectors: np.ndarray) -> Path:
    """nodes.parquet (columns id, embedding) or vectors.npy with the ids in vectors.ids.npy;
    written to a temporary file and renamed, so a failure never leaves half a file."""
    import os

    from uniembed.io.writers import NpyWriter

    path = Path(path)
    names = [str(i) for i in ids.tolist()]
    if path.suffix == ".parquet":
        from uniembed._extras import require

        require("parquet")
        import pyarrow as pa
        import pyarrow.parquet as pq

        column = pa.FixedSizeListArray.from_arrays(
            pa.array(vectors.reshape(-1), type=pa.float32()), vectors.shape[1]
        )
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            pq.write_table(
                pa.table({"id": pa.array(names, type=pa.string()), "embedding": column}), tmp
            )
            replace_file(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    elif path.suffix == ".npy":
        with NpyWriter(path, vectors.shape[1]) as writer:
            writer.write(vectors)
        np.save(path.with_suffix(".ids.npy"), np.asarray(names))
    else:
        raise InputError(f"--out must end in .parquet or .npy, got {path.name}")
    return path


def store_in_collection(
    folder: str | Path, ids: np.ndarray, vectors: np.ndarray, *, texts=None, batch: int = 50_000
):
    """Upsert the node vectors into a vectors-only collection (created when missing), node ids as
    item ids; `texts` (optional, per node) are stored for text (BM25) and hybrid search."""
    from uniembed.store.collection import Collection

    folder = Path(folder)
    collection = (
        Collection.open(folder)
        if (folder / "collection.json").is_file()
        else Collection.create(folder, model=None, dim=vectors.shape[1], index="hnsw")
    )
    names = [str(i) for i in ids.tolist()]
    for start in range(0, len(names), batch):
        chunk = None if texts is None else texts[start : start + batch]
        collection.upsert(names[start : start + batch], vectors[start : start + batch], texts=chunk)
    return collection


__all__ = ["FastRPConfig", "Graph", "embed", "fastrp", "read_edges", "from_scipy", "from_networkx"]
