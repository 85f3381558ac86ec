"""Multi-label node classification as DeepWalk scored it (and node2vec, LINE, NetMF, FastRP after
it), so that published numbers can be compared:

- for each train fraction (10%, 20%, ... 90% of the labelled nodes) and each of `shuffles` random
  shuffles, fit one-vs-rest L2 logistic regression (C = 1) on the train part;
- rank the labels of each test node by the classifier's score and give it as many top-ranked
  labels as it truly has (the "top-k" decision: it knows k, not which k);
- report micro and macro F1 per fraction, averaged over shuffles.

Speed: one-vs-rest logistic regression is a sum of independent per-label problems, so all labels
are fitted at once as one (features x labels) weight matrix by L-BFGS: the optimum is each label's
own optimum (a test checks it against scikit-learn). The matrices are small, so BLAS runs on one
thread: two OpenBLAS threads on a busy 2-core machine made each fit 7x slower. The threshold
variant (predict a label when its probability
exceeds 0.5, scikit-learn's OneVsRest `predict`) is kept as an option: it is what this project
reported before, and it is not comparable with published tables.
"""

from __future__ import annotations

import numpy as np

from uniembed.errors import InputError

DEFAULT_FRACTIONS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
DECISIONS = ("top-k", "threshold")


def fit_one_vs_rest(
    x: np.ndarray,
    y: np.ndarray,
    *,
    c: float = 1.0,
    tol: float = 1e-4,
    max_iter: int = 1000,
    start: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(weights (d, L), intercepts (L,)) minimising, for every label l independently,
    C * sum_i log(1 + exp(-s_il (x_i w_l + b_l))) + ||w_l||^2 / 2 (s = +-1; intercept unpenalised,
    as scikit-learn's lbfgs solver does). All labels share one L-BFGS run: the objective is a sum
    of per-label terms with no shared variable, so the joint minimum is the per-label minimum.
    The objective is divided by n and stopped at gradient `tol`, scikit-learn's convention and
    default; `start` warm-starts from an earlier solution (the previous shuffle's)."""
    from scipy.optimize import minimize

    n, d = x.shape
    labels = y.shape[1]
    signs = np.where(y > 0, 1.0, -1.0)

    def objective(flat: np.ndarray):
        weights, bias = flat[: d * labels].reshape(d, labels), flat[d * labels :]
        margins = signs * (x @ weights + bias)
        # log(1 + e^-m) and sigmoid(-m) from one exponential of -|m| (never overflows)
        small = np.exp(-np.abs(margins))
        loss = (
            c * (np.maximum(-margins, 0.0) + np.log1p(small)).sum()
            + 0.5 * (weights * weights).sum()
        )
        residual = (
            -c * signs * np.where(margins >= 0, small, 1.0) / (1.0 + small)
        )  # d loss / d (x w + b)
        gradient = np.concatenate([(x.T @ residual + weights).ravel(), residual.sum(0)])
        return loss / n, gradient / n

    initial = (
        np.zeros(d * labels + labels)
        if start is None
        else np.concatenate([start[0].ravel(), start[1]])
    )
    found = minimize(
        objective, initial, jac=True, method="L-BFGS-B", options={"maxiter": max_iter, "gtol": tol}
    )
    return found.x[: d * labels].reshape(d, labels), found.x[d * labels :]


def top_k_predictions(scores: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Each row gets its k highest-scored labels, k = the row's true label count."""
    counts = truth.sum(1).astype(int)
    order = np.argsort(-scores, axis=1, kind="stable")
    predicted = np.zeros_like(truth)
    ranks = np.arange(scores.shape[1])[None, :] < counts[:, None]
    np.put_along_axis(predicted, order, ranks.astype(truth.dtype), axis=1)
    return predicted


def f1_scores(truth: np.ndarray, predicted: np.ndarray) -> tuple[float, float]:
    """(micro F1, macro F1) over labels; a label with no true and no predicted node scores 0 in the
    macro mean, as scikit-learn's f1_score does (zero_division=0)."""
    true_positive = (truth & predicted).sum(0).astype(np.float64)
    predicted_count, true_count = predicted.sum(0), truth.sum(0)
    micro = 2 * true_positive.sum() / max(1, predicted_count.sum() + true_count.sum())
    denominator = predicted_count + true_count
    per_label = np.divide(
        2 * true_positive, denominator, out=np.zeros_like(true_positive), where=denominator > 0
    )
    return float(micro), float(per_label.mean())


def multilabel_classification(
    embeddings: np.ndarray,
    y: np.ndarray,
    *,
    train_fractions=DEFAULT_FRACTIONS,
    shuffles: int = 10,
    decision: str = "top-k",
    c: float = 1.0,
    seed: int = 0,
) -> dict:
    """Micro/macro F1 per train fraction (mean and std over shuffles). `y`: (nodes, labels) 0/1,
    rows with no label are skipped. Features are standardised on each split's train part."""
    if decision not in DECISIONS:
        raise InputError(f"decision must be one of {', '.join(DECISIONS)}, got {decision!r}")
    if isinstance(shuffles, bool) or not isinstance(shuffles, int) or shuffles < 1:
        raise InputError(f"shuffles must be a positive integer, got {shuffles!r}")
    fractions = list(train_fractions)
    bad = [
        f
        for f in fractions
        if isinstance(f, bool) or not isinstance(f, (int, float)) or not 0 < f < 1
    ]
    if not fractions or bad:
        raise InputError(
            f"train fractions must be numbers strictly between 0 and 1, got {bad or fractions!r}"
        )
    y = np.asarray(y).astype(bool)
    labelled = np.flatnonzero(y.any(1))
    if len(labelled) < 4:
        raise InputError(
            f"multi-label classification needs at least 4 labelled nodes, got {len(labelled)}"
        )
    x = np.asarray(embeddings, dtype=np.float64)
    from threadpoolctl import threadpool_limits  # a scikit-learn dependency

    rng = np.random.default_rng(seed)
    with threadpool_limits(1):
        by_fraction = [
            _score_fraction(
                x, y, labelled, fraction, shuffles=shuffles, decision=decision, c=c, rng=rng
            )
            for fraction in fractions
        ]
    return {"decision": decision, "shuffles": shuffles, "by_fraction": by_fraction}


def score_split(
    x: np.ndarray,
    y: np.ndarray,
    train: np.ndarray,
    test: np.ndarray,
    *,
    decision: str = "top-k",
    c: float = 1.0,
    start=None,
) -> tuple[tuple[float, float], tuple[np.ndarray, np.ndarray]]:
    """((micro F1, macro F1) on `test`, the fitted (weights, intercepts)): features standardised on
    the train part, one-vs-rest fit there, `decision` applied to the test nodes' scores."""
    mean, std = x[train].mean(0), x[train].std(0)
    scale = np.where(std > 0, std, 1.0)
    weights, bias = fit_one_vs_rest((x[train] - mean) / scale, y[train], c=c, start=start)
    logits = (x[test] - mean) / scale @ weights + bias
    predicted = top_k_predictions(logits, y[test]) if decision == "top-k" else logits > 0
    return f1_scores(y[test], predicted.astype(bool)), (weights, bias)


def _score_fraction(
    x: np.ndarray,
    y: np.ndarray,
    labelled: np.ndarray,
    fraction: float,
    *,
    shuffles: int,
    decision: str,
    c: float,
    rng,
) -> dict:
    """Mean and std of micro/macro F1 over `shuffles` random splits at one train fraction."""
    scores, solution = [], None
    for _ in range(shuffles):
        order = rng.permutation(labelled)
        cut = min(len(order) - 1, max(1, int(round(fraction * len(order)))))
        f1, solution = score_split(
            x, y, order[:cut], order[cut:], decision=decision, c=c, start=solution
        )
        scores.append(f1)
    scores = np.array(scores)
    return {
        "train_fraction": float(fraction),
        "micro_f1": float(scores[:, 0].mean()),
        "macro_f1": float(scores[:, 1].mean()),
        "micro_f1_std": float(scores[:, 0].std()),
        "macro_f1_std": float(scores[:, 1].std()),
    }
