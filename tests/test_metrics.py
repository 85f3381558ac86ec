"""Each metric against values computed by hand (the arithmetic is in the comments)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from uniembed.eval import metrics

RANKED = ["d1", "d2", "d3"]
JUDGED = {"d2": 1, "d3": 2, "d9": 1}  # d9 is relevant but never retrieved


def test_ndcg_uses_linear_gains_and_the_ideal_ranking():
    dcg = 0 + 1 / math.log2(3) + 2 / math.log2(4)
    idcg = 2 / math.log2(2) + 1 / math.log2(3) + 1 / math.log2(4)
    assert metrics.ndcg_at_k(RANKED, JUDGED, 3) == pytest.approx(dcg / idcg)
    assert metrics.ndcg_at_k(RANKED, JUDGED, 3) == pytest.approx(0.520909, abs=1e-6)
    assert metrics.ndcg_at_k(["d3", "d2", "d9"], JUDGED, 3) == pytest.approx(1.0)
    assert metrics.ndcg_at_k(RANKED, JUDGED, 1) == 0.0


def test_map_divides_by_all_relevant_documents():
    # hits at ranks 2 and 3: precisions 1/2 and 2/3, over 3 relevant documents
    assert metrics.average_precision_at_k(RANKED, JUDGED, 3) == pytest.approx((1 / 2 + 2 / 3) / 3)
    assert metrics.average_precision_at_k(RANKED, JUDGED, 1) == 0.0


def test_mrr_and_recall():
    assert metrics.reciprocal_rank_at_k(RANKED, JUDGED, 3) == 0.5
    assert metrics.reciprocal_rank_at_k(RANKED, JUDGED, 1) == 0.0
    assert metrics.recall_at_k(RANKED, JUDGED, 3) == pytest.approx(2 / 3)
    assert metrics.recall_at_k(RANKED, {"d1": 0}, 3) == 0.0  # grade 0 is not relevant


def test_retrieval_scores_average_over_judged_queries_only():
    rankings = {"q1": ["a", "b"], "q2": ["c", "d"], "q3": ["e"]}
    qrels = {"q1": {"a": 1}, "q2": {"d": 1}, "q3": {"e": 0}}  # q3 has nothing relevant: skipped
    scores = metrics.retrieval_scores(rankings, qrels, ks=(1, 2))
    assert scores["mrr_at_2"] == pytest.approx((1 + 0.5) / 2)
    assert scores["recall_at_1"] == pytest.approx(0.5)
    assert scores["ndcg_at_2"] == pytest.approx((1 + 1 / math.log2(3)) / 2)


def test_spearman_gives_ties_their_average_rank():
    # ranks x = [1, 2.5, 2.5, 4], y = [1, 2, 3, 4]: cov 4.5, var 4.5 and 5
    assert metrics.spearman([1, 2, 2, 3], [1, 2, 3, 4]) == pytest.approx(4.5 / math.sqrt(4.5 * 5))
    assert list(metrics.rankdata([10, 30, 20, 20])) == [1.0, 4.0, 2.5, 2.5]
    assert metrics.spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)


def test_v_measure_hand_case():
    # H(truth) = ln 2, H(clusters) = 0.562335, mutual information = 0.215762
    h, c = 0.215762 / math.log(2), 0.215762 / 0.562335
    assert metrics.v_measure([0, 0, 1, 1], [0, 0, 0, 1]) == pytest.approx(
        2 * h * c / (h + c), abs=1e-5
    )
    assert metrics.v_measure(["x", "x", "y"], [5, 5, 7]) == pytest.approx(1.0)
    assert metrics.v_measure([0, 0, 1, 1], [0, 0, 0, 0]) == 0.0


def test_average_precision_groups_tied_scores():
    assert metrics.average_precision([1, 0, 1, 0], [0.9, 0.8, 0.7, 0.6]) == pytest.approx(
        (1 + 2 / 3) / 2
    )
    # the two tied scores form one threshold: precision 2/3 at recall 1 (not 1/2 then 2/3)
    assert metrics.average_precision([0, 1, 1], [0.9, 0.5, 0.5]) == pytest.approx(2 / 3)
    assert metrics.average_precision([0, 0], [0.3, 0.1]) == 0.0


def test_f1_macro_and_weighted():
    # a: tp 2, fp 0, fn 1 -> 0.8; b: tp 1, fp 1, fn 0 -> 2/3; supports 3 and 1
    macro, weighted = metrics.f1_scores(list("aaab"), list("aabb"))
    assert macro == pytest.approx((0.8 + 2 / 3) / 2)
    assert weighted == pytest.approx((3 * 0.8 + 2 / 3) / 4)
    assert metrics.accuracy(list("aaab"), list("aabb")) == 0.75


def test_pearson_of_a_constant_is_zero_not_nan():
    assert metrics.pearson(np.ones(4), np.arange(4)) == 0.0


def test_a_paired_bootstrap_interval_holds_zero_for_noise_and_not_for_a_real_difference():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 2, size=3000).astype(float)
    flipped = a.copy()
    changed = rng.choice(3000, size=3, replace=False)
    flipped[changed] = 1 - a[changed]  # three queries change: noise
    low, high = metrics.paired_bootstrap_interval(flipped, a)
    assert low < 0 < high
    better = np.maximum(a, rng.random(3000) < 0.2)  # about a tenth of the queries gained
    low, high = metrics.paired_bootstrap_interval(better, a)
    assert 0.07 < low < high < 0.13
    assert metrics.paired_bootstrap_interval(better, a) == (low, high)  # seeded
    with pytest.raises(ValueError, match="equal-length"):
        metrics.paired_bootstrap_interval([1.0, 0.0], [1.0])
    with pytest.raises(ValueError, match="level must lie between 0 and 1"):
        metrics.paired_bootstrap_interval([1.0], [0.0], level=95)
