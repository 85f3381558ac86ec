"""Evaluation metrics in pure numpy, with the conventions MTEB and trec_eval use.

Retrieval metrics take, per query, the ranked list of retrieved document ids and the relevance
judgements {doc_id: grade}; a document is relevant when its grade is > 0.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from uniembed.errors import InputError


def rankdata(values: np.ndarray) -> np.ndarray:
    """1-based ranks, ties sharing their average rank (as scipy.stats.rankdata 'average')."""
    values = np.asarray(values, dtype=np.float64)
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    # boundaries of runs of equal values
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_values)) + 1]
    ends = np.r_[starts[1:], len(values)]
    average = (starts + ends + 1) / 2.0  # mean of ranks start+1 .. end
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = np.repeat(average, ends - starts)
    return ranks


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    x = np.asarray(x, dtype=np.float64) - np.mean(x)
    y = np.asarray(y, dtype=np.float64) - np.mean(y)
    denominator = np.sqrt((x * x).sum() * (y * y).sum())
    return float((x * y).sum() / denominator) if denominator > 0 else 0.0


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    return pearson(rankdata(x), rankdata(y))


# -- retrieval -----------------------------------------------------------------------------------
def ndcg_at_k(ranked: Sequence[str], judged: Mapping[str, int], k: int) -> float:
    """nDCG@k with linear gains (trec_eval's ndcg_cut): sum rel_i / log2(i + 1) over ranks i."""
    gains = np.array([max(judged.get(doc, 0), 0) for doc in ranked[:k]], dtype=np.float64)
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    ideal = np.sort(np.array([g for g in judged.values() if g > 0], dtype=np.float64))[::-1][:k]
    idcg = float((ideal * discounts[: len(ideal)]).sum())
    return float((gains * discounts[: len(gains)]).sum()) / idcg if idcg > 0 else 0.0


def average_precision_at_k(ranked: Sequence[str], judged: Mapping[str, int], k: int) -> float:
    """MAP@k term (trec_eval's map_cut): precision at each relevant hit in the top k, over all relevant."""
    n_relevant = sum(1 for g in judged.values() if g > 0)
    if n_relevant == 0:
        return 0.0
    hits, total = 0, 0.0
    for rank, doc in enumerate(ranked[:k], start=1):
        if judged.get(doc, 0) > 0:
            hits += 1
            total += hits / rank
    return total / n_relevant


def reciprocal_rank_at_k(ranked: Sequence[str], judged: Mapping[str, int], k: int) -> float:
    """1 / rank of the first relevant document in the top k, 0 if none."""
    for rank, doc in enumerate(ranked[:k], start=1):
        if judged.get(doc, 0) > 0:
            return 1.0 / rank
    return 0.0


def recall_at_k(ranked: Sequence[str], judged: Mapping[str, int], k: int) -> float:
    relevant = {doc for doc, g in judged.items() if g > 0}
    if not relevant:
        return 0.0
    return len(relevant.intersection(ranked[:k])) / len(relevant)


RETRIEVAL_METRICS = {
    "ndcg_at": ndcg_at_k,
    "map_at": average_precision_at_k,
    "mrr_at": reciprocal_rank_at_k,
    "recall_at": recall_at_k,
}


def retrieval_scores(
    rankings: Mapping[str, Sequence[str]],
    qrels: Mapping[str, Mapping[str, int]],
    ks: Sequence[int] = (1, 3, 5, 10, 100, 1000),
) -> dict[str, float]:
    """Mean of each metric@k over the judged queries, keyed like MTEB ("ndcg_at_10", ...)."""
    queries = [q for q in qrels if any(g > 0 for g in qrels[q].values())]
    scores = {}
    for prefix, metric in RETRIEVAL_METRICS.items():
        for k in ks:
            values = [metric(list(rankings.get(q, [])), qrels[q], k) for q in queries]
            scores[f"{prefix}_{k}"] = float(np.mean(values)) if values else 0.0
    return scores


def paired_bootstrap_interval(
    a: Sequence[float],
    b: Sequence[float],
    *,
    level: float = 0.95,
    resamples: int = 10_000,
    seed: int = 0,
) -> tuple[float, float]:
    """The `level` percentile interval of mean(a - b) over `resamples` resamplings of the queries
    (paired: each resample draws the same queries for both systems). An interval that holds 0
    means the two systems' difference is within what the choice of queries alone moves."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.ndim != 1 or a.shape != b.shape or len(a) == 0:
        raise InputError(
            f"two equal-length, non-empty 1-D score lists are needed, got shapes {a.shape} and {b.shape}"
        )
    if not 0 < level < 1:
        raise InputError(f"level must lie between 0 and 1, got {level!r}")
    draws = np.random.default_rng(seed).integers(0, len(a), size=(resamples, len(a)))
    means = (a - b)[draws].mean(axis=1)
    tail = (1 - level) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return float(low), float(high)


# -- classification, clustering, pairs -----------------------------------------------------------
def accuracy(truth: Sequence, predicted: Sequence) -> float:
    truth, predicted = np.asarray(truth), np.asarray(predicted)
    return float((truth == predicted).mean())


def f1_scores(truth: Sequence, predicted: Sequence) -> tuple[float, float]:
    """(macro F1, support-weighted F1) over the labels that occur in `truth` or `predicted`."""
    truth, predicted = np.asarray(truth), np.asarray(predicted)
    labels = np.unique(np.concatenate([truth, predicted]))
    f1s, support = [], []
    for label in labels:
        tp = np.sum((predicted == label) & (truth == label))
        fp = np.sum((predicted == label) & (truth != label))
        fn = np.sum((predicted != label) & (truth == label))
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
        support.append(np.sum(truth == label))
    f1s, support = np.array(f1s), np.array(support, dtype=np.float64)
    return float(f1s.mean()), float((f1s * support).sum() / support.sum())


def _entropy(counts: np.ndarray) -> float:
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


def v_measure(truth: Sequence, clusters: Sequence) -> float:
    """Harmonic mean of homogeneity and completeness (beta = 1), as sklearn's v_measure_score."""
    _, t = np.unique(np.asarray(truth), return_inverse=True)
    _, c = np.unique(np.asarray(clusters), return_inverse=True)
    table = np.zeros((t.max() + 1, c.max() + 1))
    np.add.at(table, (t, c), 1)
    h_truth, h_clusters = _entropy(table.sum(1)), _entropy(table.sum(0))
    n = table.sum()
    nz = table > 0
    joint = table[nz] / n
    outer = np.outer(table.sum(1), table.sum(0))[nz] / (n * n)
    mutual_info = float((joint * np.log(joint / outer)).sum())
    homogeneity = mutual_info / h_truth if h_truth else 1.0
    completeness = mutual_info / h_clusters if h_clusters else 1.0
    if homogeneity + completeness == 0:
        return 0.0
    return 2 * homogeneity * completeness / (homogeneity + completeness)


def average_precision(labels: Sequence[int], scores: Sequence[float]) -> float:
    """Area under the precision-recall curve as a step sum over distinct score thresholds
    (sklearn's average_precision_score): sum_n (R_n - R_{n-1}) P_n."""
    labels = np.asarray(labels, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64)
    if labels.sum() == 0:
        return 0.0
    order = np.argsort(-scores, kind="mergesort")
    labels, scores = labels[order], scores[order]
    last_of_tie = np.r_[
        np.flatnonzero(np.diff(scores)), len(scores) - 1
    ]  # a threshold per distinct score
    true_pos = np.cumsum(labels)[last_of_tie]
    precision = true_pos / (last_of_tie + 1)
    recall = true_pos / labels.sum()
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))
