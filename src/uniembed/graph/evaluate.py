"""Evaluating node embeddings: node classification and link prediction.

A graph folder holds `edges.csv` (source, target[, weight]) and `nodes.csv` (node, label), and
optionally `split.json` ({"train": [...], "test": [...]}, e.g. Cora's Planetoid split) and
`features.npz` (scipy sparse node features, rows in nodes.csv order).

- node classification: logistic regression on standardised embeddings; with split.json, accuracy
  on its test nodes; without, the mean micro/macro F1 over repeated random splits. A label like
  "a|b" makes the task multi-label: one-vs-rest, scored as DeepWalk and every later paper score
  it (each test node gets its k top-ranked labels, k its true count; train fractions 10%..90%;
  see uniembed.graph.multilabel), or with decision="threshold" (probability > 0.5).
- link prediction: a share of the edges is held out, the rest embedded; held-out edges must
  score (cosine) above as many random non-edges: ROC AUC.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from uniembed.errors import InputError
from uniembed.graph.edges import Graph, from_edge_arrays, read_edges
from uniembed.graph.fastrp import FastRPConfig, fastrp


def load_graph_folder(folder: str | Path, *, weight: str | None = None):
    """(graph, labels by row or None, split or None, features in graph row order or None)."""
    import pyarrow.csv as pacsv

    folder = Path(folder)
    if not (folder / "edges.csv").is_file():
        raise InputError(f"{folder}: no edges.csv (source,target[,weight])")
    nodes_file = folder / "nodes.csv"
    node_ids = labels = None
    if nodes_file.is_file():
        table = pacsv.read_csv(nodes_file)
        if not {"node", "label"} <= set(table.column_names):
            raise InputError(f"{nodes_file}: needs columns node,label; it has {table.column_names}")
        node_ids = table.column("node").to_numpy(zero_copy_only=False)
        labels = np.asarray([str(x) for x in table.column("label").to_pylist()], dtype=object)
    # labelled nodes without edges are isolated nodes of the graph, not errors
    graph = read_edges(folder / "edges.csv", weight=weight, extra_nodes=node_ids)
    by_row = node_rows = None
    if labels is not None:
        node_rows = graph.rows_of(node_ids)
        by_row = np.full(graph.n_nodes, None, dtype=object)
        by_row[node_rows] = labels
    split = None
    if (folder / "split.json").is_file():
        raw = json.loads((folder / "split.json").read_text())
        split = {name: graph.rows_of(raw[name]) for name in ("train", "test") if name in raw}
        unknown = [name for name, rows in split.items() if (rows < 0).any()]
        if unknown or set(split) != {"train", "test"}:
            raise InputError(
                f"{folder / 'split.json'}: needs train and test lists of known node ids"
            )
    features = None
    if (folder / "features.npz").is_file() and node_ids is not None:
        import scipy.sparse as sparse

        raw_features = sparse.load_npz(folder / "features.npz").tocsr()
        if raw_features.shape[0] != len(node_ids):
            raise InputError(
                f"{folder / 'features.npz'}: {raw_features.shape[0]} rows for {len(node_ids)} nodes"
            )
        order = np.empty(graph.n_nodes, dtype=np.int64)
        order[node_rows] = np.arange(len(node_ids))
        features = raw_features[order]
    return graph, by_row, split, features


def node_classification(
    embeddings: np.ndarray,
    labels: np.ndarray,
    split: dict | None = None,
    *,
    repeats: int = 10,
    train_fraction: float = 0.1,
    seed: int = 0,
    decision: str = "top-k",
    train_fractions=None,
) -> dict:
    """Single-label: accuracy and micro/macro F1 on `split` or over `repeats` random splits at
    `train_fraction`. Multi-label (a label "a|b"): see uniembed.graph.multilabel; without a split,
    every fraction of `train_fractions` (default 10%..90%) with `repeats` shuffles each, and the
    top-level micro/macro F1 are those of the first fraction."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score
    from sklearn.preprocessing import StandardScaler

    labelled = np.flatnonzero(np.array([label is not None for label in labels]))
    if len(labelled) < 2:
        raise InputError("node classification needs at least 2 labelled nodes")
    if any("|" in str(labels[i]) for i in labelled):
        return _multilabel(
            embeddings,
            labels,
            labelled,
            split,
            repeats=repeats,
            seed=seed,
            decision=decision,
            train_fractions=train_fractions,
        )
    x = StandardScaler().fit_transform(embeddings)
    y = labels

    def fit_score(train, test):
        model = LogisticRegression(max_iter=2000).fit(x[train], y[train].astype(str))
        predicted, truth = model.predict(x[test]), y[test].astype(str)
        return f1_score(truth, predicted, average="micro"), f1_score(
            truth, predicted, average="macro"
        )

    if split is not None:
        micro, macro = fit_score(split["train"], split["test"])
        return {
            "accuracy": float(micro),
            "micro_f1": float(micro),
            "macro_f1": float(macro),
            "splits": 1,
        }
    rng = np.random.default_rng(seed)
    scores = []
    for _ in range(repeats):
        order = rng.permutation(labelled)
        cut = max(1, int(train_fraction * len(order)))
        scores.append(fit_score(order[:cut], order[cut:]))
    micro, macro = np.mean(scores, axis=0)
    return {
        "accuracy": float(micro),
        "micro_f1": float(micro),
        "macro_f1": float(macro),
        "splits": repeats,
    }


def label_matrix(labels: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """(nodes, labels) 0/1 from "a|b" strings at `rows` (other rows all zero), and the label names."""
    names = sorted({part for i in rows for part in str(labels[i]).split("|")})
    column = {name: j for j, name in enumerate(names)}
    y = np.zeros((len(labels), len(names)), dtype=bool)
    for i in rows:
        y[i, [column[part] for part in str(labels[i]).split("|")]] = True
    return y, names


def _multilabel(
    embeddings, labels, labelled, split, *, repeats, seed, decision, train_fractions
) -> dict:
    from uniembed.graph import multilabel

    y, _ = label_matrix(labels, labelled)
    if split is None:
        result = multilabel.multilabel_classification(
            embeddings,
            y,
            train_fractions=train_fractions or multilabel.DEFAULT_FRACTIONS,
            shuffles=repeats,
            decision=decision,
            seed=seed,
        )
        first = result["by_fraction"][0]
        return {
            "accuracy": None,
            "micro_f1": first["micro_f1"],
            "macro_f1": first["macro_f1"],
            "splits": repeats,
            **result,
        }
    if decision not in multilabel.DECISIONS:
        raise InputError(
            f"decision must be one of {', '.join(multilabel.DECISIONS)}, got {decision!r}"
        )
    (micro, macro), _ = multilabel.score_split(
        np.asarray(embeddings, dtype=np.float64),
        y,
        split["train"],
        split["test"],
        decision=decision,
    )
    return {
        "accuracy": None,
        "micro_f1": micro,
        "macro_f1": macro,
        "splits": 1,
        "decision": decision,
    }


def link_prediction(
    graph: Graph, config: FastRPConfig, *, held_out: float = 0.1, seed: int = 0, features=None
) -> dict:
    """Hold out a share of the (undirected) edges, embed the rest, AUC of held-out edges against
    as many sampled non-edges, scored by cosine similarity."""
    import scipy.sparse as sparse
    from sklearn.metrics import roc_auc_score

    upper = sparse.triu(graph.adjacency, k=1).tocoo()
    if upper.nnz < 10:
        raise InputError("link prediction needs at least 10 edges")
    rng = np.random.default_rng(seed)
    order = rng.permutation(upper.nnz)
    cut = max(1, int(held_out * upper.nnz))
    test, train = order[:cut], order[cut:]
    kept = from_edge_arrays(
        upper.row[train], upper.col[train], extra_nodes=np.arange(graph.n_nodes)
    )
    vectors = fastrp(kept.adjacency, config, features=features)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit = np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)
    positives = (upper.row[test], upper.col[test])
    existing = set(zip(upper.row.tolist(), upper.col.tolist()))
    negatives_a, negatives_b = [], []
    while len(negatives_a) < cut:
        a, b = rng.integers(graph.n_nodes, size=2)
        if a != b and (min(a, b), max(a, b)) not in existing:
            negatives_a.append(a)
            negatives_b.append(b)
    score = lambda a, b: (unit[a] * unit[b]).sum(1)  # noqa: E731
    y = np.r_[np.ones(cut), np.zeros(cut)]
    s = np.r_[score(*positives), score(np.array(negatives_a), np.array(negatives_b))]
    return {"auc": float(roc_auc_score(y, s)), "held_out_edges": int(cut)}


def evaluate_folder(
    folder: str | Path,
    task: str,
    config: FastRPConfig,
    *,
    use_features: bool = False,
    decision: str = "top-k",
    repeats: int = 10,
) -> dict:
    graph, labels, split, features = load_graph_folder(folder)
    if use_features and features is None:
        raise InputError(f"{folder}: no features.npz for --features")
    started = time.perf_counter()
    if task == "node-classification":
        if labels is None:
            raise InputError(f"{folder}: node classification needs nodes.csv (node,label)")
        vectors = fastrp(graph.adjacency, config, features=features if use_features else None)
        seconds = time.perf_counter() - started
        scored = time.perf_counter()
        result = node_classification(vectors, labels, split, decision=decision, repeats=repeats)
        return {
            **result,
            "embed_seconds": seconds,
            "score_seconds": time.perf_counter() - scored,
            "nodes": graph.n_nodes,
            "edges": graph.n_edges // 2,
        }
    if task == "link-prediction":
        return {
            **link_prediction(graph, config, features=features if use_features else None),
            "seconds": time.perf_counter() - started,
            "nodes": graph.n_nodes,
        }
    raise InputError(f"task must be node-classification or link-prediction, got {task!r}")
