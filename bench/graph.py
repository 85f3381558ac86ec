"""Graph embeddings: FastRP on Cora against node2vec from PyPI, same run, same classifier; and a
1,000,000-node, 10,000,000-edge synthetic graph embedded on this machine.

    pip install gensim networkx && pip install --no-deps node2vec   # the competitor (its numpy<2 pin is stale)
    python bench/graph.py            # Cora table + scale table
    python bench/graph.py --skip-scale
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "cora"
PAPER = {"dim": 512, "iteration_weights": [0.0, 0.0, 1.0, 6.67], "normalization_strength": -0.64}
# best mean validation accuracy (Cora's 500 validation nodes, 3 seeds) over dims 512/1024, six weight
# lists, beta in {-1, -0.64, -0.3, 0} and s in {3, sqrt(n)}, chosen by validation accuracy alone
TUNED = {"dim": 1024, "iteration_weights": [0.0, 0.0, 1.0, 2.0, 4.0], "normalization_strength": -0.64}


def cora_rows(repeats: int = 5) -> list[dict]:
    from uniembed.graph import FastRPConfig, fastrp
    from uniembed.graph.evaluate import load_graph_folder, node_classification

    graph, labels, split, features = load_graph_folder(DATA)
    rows = []
    for name, config, extra in (("FastRP (structure, the paper's settings)", FastRPConfig(**PAPER), None),
                                ("FastRP (structure, tuned on the validation split)", FastRPConfig(**TUNED), None),
                                ("FastRP + bag-of-words features (tuned)", FastRPConfig(**TUNED, property_ratio=0.75), features)):
        seconds = []
        for _ in range(repeats):
            started = time.perf_counter()
            vectors = fastrp(graph.adjacency, config, features=extra)
            seconds.append(time.perf_counter() - started)
        accuracy = node_classification(vectors, labels, split)["accuracy"]
        rows.append({"method": name, "test accuracy": round(100 * accuracy, 1), "embed seconds": round(statistics.median(seconds), 3)})
    rows.append(node2vec_row(graph, labels, split))
    competitor = rows[-1]["embed seconds"]
    for row in rows:
        row["x faster than node2vec"] = round(competitor / row["embed seconds"]) if isinstance(competitor, float) else "-"
    return rows


def node2vec_row(graph, labels, split) -> dict:
    """node2vec (PyPI `node2vec`, gensim word2vec) with p = q = 1 (DeepWalk's walks): 128 dims,
    10 walks of 80 steps per node, window 10, 2 workers; the timed part is walks + training."""
    try:
        import networkx as nx
        from node2vec import Node2Vec
    except ImportError:
        return {"method": "node2vec (not installed: see the docstring)", "test accuracy": "-", "embed seconds": "-"}
    from uniembed.graph.evaluate import node_classification

    g = nx.from_scipy_sparse_array(graph.adjacency)
    started = time.perf_counter()
    model = Node2Vec(g, dimensions=128, walk_length=80, num_walks=10, p=1, q=1, workers=2, seed=42, quiet=True)
    fitted = model.fit(window=10, min_count=1, batch_words=4)
    seconds = time.perf_counter() - started
    vectors = np.stack([fitted.wv[str(i)] for i in range(graph.n_nodes)])
    accuracy = node_classification(vectors, labels, split)["accuracy"]
    return {"method": "node2vec, p=q=1 (PyPI node2vec + gensim)", "test accuracy": round(100 * accuracy, 1),
            "embed seconds": round(seconds, 1)}


def scale_worker(n: int, m: int, dim: int) -> None:
    """In its own process, so peak memory is the embedding's own."""
    import scipy.sparse as sparse

    from uniembed.graph import FastRPConfig, fastrp

    rng = np.random.default_rng(0)
    started = time.perf_counter()
    # Chung-Lu style power-law graph: endpoints drawn with probability ~ rank^-0.6 (a few hubs, a long
    # tail), self-loops and duplicates removed, drawn until exactly m distinct undirected edges remain
    p = np.arange(1, n + 1, dtype=np.float64) ** -0.6
    p /= p.sum()
    order = rng.permutation(n)
    keys = np.empty(0, dtype=np.int64)
    while len(keys) < m:
        a, b = order[rng.choice(n, size=m, p=p)], order[rng.choice(n, size=m, p=p)]
        fresh = np.minimum(a, b).astype(np.int64) * n + np.maximum(a, b)
        keys = np.unique(np.concatenate([keys, fresh[a != b]]))
    keys = rng.choice(keys, size=m, replace=False)
    src, dst = keys // n, keys % n
    adjacency = sparse.coo_matrix((np.ones(m, np.float32), (src, dst)), shape=(n, n)).tocsr()
    adjacency = (adjacency + adjacency.T).tocsr()
    build = time.perf_counter() - started
    started = time.perf_counter()
    vectors = fastrp(adjacency, FastRPConfig(dim=dim, iteration_weights=[0.0, 1.0, 1.0, 1.0]))
    embed = time.perf_counter() - started
    peak = [int(line.split()[1]) / 1024 for line in Path("/proc/self/status").read_text().splitlines() if line.startswith("VmHWM")][0]
    print(json.dumps({"nodes": n, "edges (undirected)": int(adjacency.nnz // 2), "dim": dim, "graph build s": round(build, 1),
                      "FastRP s": round(embed, 1), "peak RSS GB": round(peak / 1024, 2),
                      "finite": bool(np.isfinite(vectors).all())}))


def scale_row(n: int, m: int, dim: int) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--worker", str(n), str(m), str(dim)], capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-scale", action="store_true")
    parser.add_argument("--worker", nargs=3, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        scale_worker(*args.worker)
        return 0
    from run import print_tables  # bench/run.py: `python bench/graph.py` puts bench/ on sys.path

    print_tables({"Cora (Planetoid split), node classification": cora_rows()})
    if not args.skip_scale:
        print_tables({"FastRP at scale": [scale_row(1_000_000, 10_000_000, 256)]})
    return 0


if __name__ == "__main__":
    sys.exit(main())
