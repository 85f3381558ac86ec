"""The compatibility matrix (BCT protocol): C[query model][gallery model].

For an upgrade old -> new, the cells that matter:

    C[old][old]              today's quality
    C[new][new]              after a full re-index; the update gain is C[new][new] - C[old][old]
    C[new][old]              new queries against the old gallery, raw (only when the dims agree)
    C[new->old adapter][old] new queries through an adapter, against the old gallery

"Compatible" (BCT): C[query][old] > C[old][old]. Two tasks: retrieval (a BEIR folder, nDCG@10,
exact search) and classification by kNN (a folder with train and test files: the train texts
are the gallery, each test text takes the majority label of its 10 nearest, accuracy).

Adapters are fitted on pairs drawn from the *gallery's* texts (as an upgrade fits them on the
collection's own texts), never on the queries or the test texts.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from uniembed.encoders.base import Encoder
from uniembed.errors import InputError
from uniembed.eval import metrics
from uniembed.eval.loaders import load_beir, load_labelled, split_file
from uniembed.upgrade.adapters import KINDS, fit_adapter

KNN = 10


@dataclass
class TaskVectors:
    """Both models' vectors of one task: queries and gallery, and how to score a (query, gallery) pair."""
    name: str
    metric: str
    gallery_texts: list[str]
    vectors: dict[str, dict[str, np.ndarray]]  # model role ("old"/"new") -> {"queries", "gallery"}
    score: callable  # (query vectors, gallery vectors) -> the metric


def compatibility_matrix(old: Encoder, new: Encoder, data: str | Path, *, task: str | None = None,
                         adapters: tuple[str, ...] = ("procrustes",), pairs: tuple[int, ...] = (500, 2000, 5000),
                         seed: int = 0, show_progress: bool = False) -> list[dict]:
    """One row per cell: {task, query model, gallery model, metric, score, compatible, ...}."""
    task = task or _guess_task(Path(data))
    for kind in adapters:
        if kind not in KINDS:
            raise InputError(f"adapter must be one of {list(KINDS)}, got {kind!r}")
    if not pairs or any(isinstance(n, bool) or not isinstance(n, int) or n < 2 for n in pairs):
        raise InputError(f"pairs must be integers >= 2, got {pairs!r}")
    if old.fingerprint == new.fingerprint:
        raise InputError(f"the old and new models have the same fingerprint ({old.fingerprint[:12]}): "
                         "nothing to compare")
    loaded = (_retrieval if task == "retrieval" else _classification)(old, new, Path(data), show_progress)
    v = loaded.vectors
    base = loaded.score(v["old"]["queries"], v["old"]["gallery"])
    rows = [_cell(loaded, "old", "old", base, base)]
    rows.append(_cell(loaded, "new", "new", loaded.score(v["new"]["queries"], v["new"]["gallery"]), base))
    if v["new"]["queries"].shape[1] == v["old"]["gallery"].shape[1]:
        rows.append(_cell(loaded, "new (raw)", "old", loaded.score(v["new"]["queries"], v["old"]["gallery"]), base))
    rng = np.random.default_rng(seed)
    n_gallery = len(loaded.gallery_texts)
    for n in pairs:
        drawn = rng.permutation(n_gallery)[: min(n, n_gallery)]
        for kind in adapters:
            try:
                adapter = fit_adapter(v["new"]["gallery"][drawn], v["old"]["gallery"][drawn], kind,
                                      new_fingerprint=new.fingerprint, old_fingerprint=old.fingerprint, seed=seed)
            except InputError as exc:  # e.g. Procrustes with fewer pairs than dims: said in the table
                rows.append({**_cell(loaded, f"new->old {kind}", "old", float("nan"), base), "pairs": len(drawn),
                             "note": str(exc).split(":")[0]})
                continue
            score = loaded.score(adapter(v["new"]["queries"]), v["old"]["gallery"])
            rows.append({**_cell(loaded, f"new->old {kind}", "old", score, base), "pairs": len(drawn),
                         "held-out cosine": adapter.card.holdout_cosine})
    return rows


def _cell(loaded: TaskVectors, query: str, gallery: str, score: float, base: float) -> dict:
    row = {"task": loaded.name, "query model": query, "gallery model": gallery, "metric": loaded.metric,
           "score": round(100 * score, 2) if np.isfinite(score) else float("nan")}
    if gallery == "old" and query != "old":
        row["compatible"] = bool(np.isfinite(score) and score > base)
    if query == "new" and gallery == "new":
        row["update gain"] = round(100 * (score - base), 2)
    return row


def _guess_task(folder: Path) -> str:
    if (folder / "corpus.jsonl").is_file() and (folder / "queries.jsonl").is_file():
        return "retrieval"
    try:
        split_file(folder, "train")
        split_file(folder, "test")
    except InputError:
        raise InputError(f"{folder}: neither a BEIR folder (corpus.jsonl, queries.jsonl, qrels/) nor a folder "
                         "with train and test files") from None
    return "classification"


def _encode(model: Encoder, texts: list[str], prompt: str | None, show_progress: bool) -> np.ndarray:
    import warnings

    from uniembed.encoders.base import TruncationWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TruncationWarning)  # long documents are cut, as MTEB does
        return np.asarray(model.encode(texts, prompt=prompt, show_progress=show_progress), dtype=np.float32)


def _retrieval(old: Encoder, new: Encoder, folder: Path, show_progress: bool) -> TaskVectors:
    data = load_beir(folder, "test")

    def score(queries: np.ndarray, gallery: np.ndarray) -> float:
        top = np.argsort(-(queries @ gallery.T), axis=1)[:, :100]
        rankings = {qid: [data.corpus_ids[r] for r in top[i]] for i, qid in enumerate(data.query_ids)}
        return metrics.retrieval_scores(rankings, data.qrels, ks=(10,))["ndcg_at_10"]

    vectors = {role: {"queries": _encode(model, data.queries, "query", show_progress),
                      "gallery": _encode(model, data.corpus, "document", show_progress)}
               for role, model in (("old", old), ("new", new))}
    return TaskVectors(f"{folder.name} retrieval", "nDCG@10", data.corpus, vectors, score)


def _classification(old: Encoder, new: Encoder, folder: Path, show_progress: bool) -> TaskVectors:
    train = load_labelled(split_file(folder, "train"))
    test = load_labelled(split_file(folder, "test"))
    gallery_labels = np.asarray(train.labels)

    def score(queries: np.ndarray, gallery: np.ndarray) -> float:
        return knn_accuracy(queries, gallery, gallery_labels, test.labels)

    vectors = {role: {"queries": _encode(model, test.texts, None, show_progress),
                      "gallery": _encode(model, train.texts, None, show_progress)}
               for role, model in (("old", old), ("new", new))}
    return TaskVectors(f"{folder.name} kNN classification", "accuracy", train.texts, vectors, score)


def knn_accuracy(queries: np.ndarray, gallery: np.ndarray, gallery_labels: np.ndarray, truth: list[str],
                 k: int = KNN, block: int = 1024) -> float:
    """Share of queries whose k nearest gallery items (cosine) vote their label; ties go to the
    label with the larger summed similarity."""
    correct = 0
    for start in range(0, len(queries), block):
        similarity = queries[start:start + block] @ gallery.T
        nearest = np.argsort(-similarity, axis=1)[:, :k]
        for row, items in enumerate(nearest):
            votes = Counter(gallery_labels[items])
            weight = {label: 0.0 for label in votes}
            for item in items:
                weight[gallery_labels[item]] += float(similarity[row, item])
            predicted = max(votes, key=lambda label: (votes[label], weight[label]))
            correct += predicted == truth[start + row]
    return correct / len(queries)
