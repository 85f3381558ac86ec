"""The contrastive adapter and its pseudo-queries (sentences cut from a collection's own items,
trained to rank each item's stored vector first), and the auto adapter, which keeps whichever kind
ranks the held-out items best."""

from __future__ import annotations

import numpy as np
import pytest

from uniembed import InputError
from uniembed.upgrade import fit_adapter
from uniembed.upgrade.pseudo import pseudo_queries

N, DIM = 400, 16


def test_pseudo_queries_are_the_longer_sentences_of_each_text_with_their_owner():
    texts = [
        "Cats sleep most of the day. They hunt at night when it is cool! Ok. Why do they purr so loudly?",
        "A single sentence is no pseudo-query of its own.",
        "Rivers carry stone down to the sea. Markets sell the stone to builders in town.",
    ]
    queries, owners = pseudo_queries(texts)
    assert queries == [
        "Cats sleep most of the day.",
        "They hunt at night when it is cool!",
        "Why do they purr so loudly?",
        "Rivers carry stone down to the sea.",
        "Markets sell the stone to builders in town.",
    ]
    assert owners.tolist() == [0, 0, 0, 2, 2]
    assert pseudo_queries(texts, per_item=1)[0] == [
        "Cats sleep most of the day.",
        "Rivers carry stone down to the sea.",
    ]


@pytest.mark.parametrize(
    ("texts", "per_item", "message"),
    [
        (["a text"], 0, "per_item must be a positive integer, got 0"),
        (["a text"], True, "per_item must be a positive integer, got True"),
        (["fine", None], 3, r"texts\[1\] is not a string: NoneType"),
    ],
)
def test_bad_pseudo_query_options_are_refused(texts, per_item, message):
    with pytest.raises(InputError, match=message):
        pseudo_queries(texts, per_item=per_item)


def items_and_queries(seed: int = 5):
    """Items whose old vectors are a rotation of their new ones, and short queries cut from them that
    the new model places apart: all share one offset (as short texts share a direction in a real
    model's space) plus noise. Procrustes, fitted on items, carries the offset into the old space,
    where it favours the items that lie along it; ranking each query's own item first undoes that."""
    rng = np.random.default_rng(seed)
    new = rng.normal(size=(N, DIM))
    old = new @ np.linalg.qr(rng.normal(size=(DIM, DIM)))[0]
    offset = 2.5 * np.eye(DIM)[0]

    def queries(per_item, draw):
        owners = np.repeat(np.arange(N), per_item)
        return new[owners] + offset + 0.6 * draw.normal(size=(len(owners), DIM)), owners

    return new, old, queries


def mean_reciprocal_rank(adapter, queries, owners, old) -> float:
    scores = adapter(queries) @ (old / np.linalg.norm(old, axis=1, keepdims=True)).T
    ranks = (scores > scores[np.arange(len(owners)), owners][:, None]).sum(axis=1)
    return float(np.mean(1.0 / (ranks + 1)))


def test_the_contrastive_adapter_ranks_fresh_queries_better_than_procrustes():
    new, old, queries = items_and_queries()
    cut, owners = queries(4, np.random.default_rng(1))
    contrastive = fit_adapter(new, old, "contrastive", queries=cut, owners=owners)
    procrustes = fit_adapter(new, old, "procrustes")
    fresh, fresh_owners = queries(2, np.random.default_rng(9))  # never seen in fitting
    # 0.852 vs 0.818 measured
    assert (
        mean_reciprocal_rank(contrastive, fresh, fresh_owners, old)
        > mean_reciprocal_rank(procrustes, fresh, fresh_owners, old) + 0.02
    )
    settings = contrastive.card.settings
    assert settings["epoch"] > 0 and settings["pseudo_queries"] == len(cut)
    assert (
        settings["choosing_mrr"] > settings["choosing_mrr_procrustes"]
    )  # the half that chose the epoch
    # and the other half of the held-out items, which chose nothing, confirms it
    assert (
        settings["held_out_mrr"]
        > fit_adapter(new, old, "procrustes", queries=cut, owners=owners).card.settings[
            "held_out_mrr"
        ]
    )


def test_without_pseudo_queries_it_ranks_the_items_own_vectors_and_keeps_procrustes_when_that_is_best():
    new, old, _ = items_and_queries()
    contrastive = fit_adapter(new, old, "contrastive")
    # an exact rotation already ranks every held-out item first: no epoch beats the start
    assert (
        contrastive.card.settings["epoch"] == 0 and contrastive.card.settings["pseudo_queries"] == 0
    )
    np.testing.assert_allclose(
        contrastive(new), fit_adapter(new, old, "procrustes")(new), atol=0.05
    )


def test_the_same_seed_fits_the_same_map():
    new, old, queries = items_and_queries()
    cut, owners = queries(2, np.random.default_rng(1))
    first, again = (
        fit_adapter(new, old, "contrastive", queries=cut, owners=owners, seed=3) for _ in range(2)
    )
    np.testing.assert_array_equal(first(new), again(new))


@pytest.mark.parametrize(
    ("kind", "queries", "owners", "message"),
    [
        ("procrustes", np.ones((3, DIM)), None, "need both queries= and owners="),
        ("contrastive", np.ones((3, DIM)), None, "need both queries= and owners="),
        (
            "contrastive",
            np.ones((3, DIM + 1)),
            np.zeros(3, dtype=int),
            r"must be \(3, 16\) vectors with one owner each",
        ),
        ("contrastive", np.ones((3, DIM)), np.zeros(2, dtype=int), "with one owner each"),
        (
            "contrastive",
            np.ones((3, DIM)),
            np.array([0, 1, N]),
            f"owner {N} is not a row of the {N} pairs",
        ),
        ("contrastive", np.ones((3, DIM)), np.array([0, -1, 2]), "owner -1 is not a row"),
        (
            "contrastive",
            np.ones((3, DIM)),
            np.array([0.0, 1.0, 2.0]),
            "owners must be integer row numbers",
        ),
        ("contrastive", np.full((3, DIM), np.nan), np.zeros(3, dtype=int), "NaN or infinite"),
    ],
)
def test_bad_pseudo_queries_are_refused(kind, queries, owners, message):
    new, old, _ = items_and_queries()
    with pytest.raises(InputError, match=message):
        fit_adapter(new, old, kind, queries=queries, owners=owners)


def test_pseudo_queries_only_score_the_kinds_that_do_not_train_on_them():
    new, old, queries = items_and_queries()
    cut, owners = queries(2, np.random.default_rng(1))
    for kind in ("procrustes", "ridge"):
        plain, scored = (
            fit_adapter(new, old, kind),
            fit_adapter(new, old, kind, queries=cut, owners=owners),
        )
        np.testing.assert_array_equal(plain(new), scored(new))
        # held-out items' own vectors alone are ranked first by an exact rotation; their offset queries are not
        assert plain.card.settings["held_out_mrr"] > scored.card.settings["held_out_mrr"]


def test_auto_keeps_the_kind_that_ranks_held_out_queries_best_and_says_so():
    new, old, queries = items_and_queries()
    cut, owners = queries(4, np.random.default_rng(1))
    auto = fit_adapter(new, old, "auto", queries=cut, owners=owners)
    scores = auto.card.settings["auto"]
    assert set(scores) == {"procrustes", "ridge", "mlp", "contrastive"}
    assert auto.card.kind == max(scores, key=scores.get) == "contrastive"
    contrastive = fit_adapter(new, old, "contrastive", queries=cut, owners=owners)
    np.testing.assert_array_equal(auto(new), contrastive(new))  # the same fit, not a refit


def test_auto_with_fewer_pairs_than_dims_can_only_choose_ridge():
    new, old, _ = items_and_queries()
    auto = fit_adapter(new[:12], old[:12], "auto")
    assert auto.card.kind == "ridge" and list(auto.card.settings["auto"]) == ["ridge"]


def test_auto_without_a_held_out_share_falls_back_to_procrustes_and_says_why():
    rng = np.random.default_rng(0)
    new, old = rng.normal(size=(8, 4)), rng.normal(size=(8, 4))
    auto = fit_adapter(new, old, "auto")
    assert (
        auto.card.kind == "procrustes"
        and auto.card.settings["auto"] == "too few pairs to hold any out"
    )


def test_equal_held_out_scores_go_to_the_simpler_kind():
    new, old, _ = items_and_queries()
    # an exact rotation: every kind ranks every held-out item first (MRR 1.0); Procrustes is simplest
    auto = fit_adapter(new, old, "auto")
    assert set(auto.card.settings["auto"].values()) == {1.0} and auto.card.kind == "procrustes"


def test_an_unknown_kind_names_every_choice():
    new, old, _ = items_and_queries()
    with pytest.raises(
        InputError, match=r"\['procrustes', 'ridge', 'mlp', 'contrastive', 'auto'\], got 'best'"
    ):
        fit_adapter(new, old, "best")


@pytest.mark.parametrize(
    ("n", "sizes"), [(5000, (250, 250, 4500)), (100, (5, 5, 90)), (10, (1, 1, 8)), (9, (0, 0, 9))]
)
def test_the_held_out_tenth_splits_into_rows_that_choose_and_rows_that_only_measure(n, sizes):
    from uniembed.spaces.adapters import held_out_split

    choose, report, kept = held_out_split(n, seed=3)
    assert (len(choose), len(report), len(kept)) == sizes
    assert sorted(np.concatenate([choose, report, kept]).tolist()) == list(
        range(n)
    )  # disjoint, every row
    np.testing.assert_array_equal(
        held_out_split(n, seed=3)[1], report
    )  # every kind holds out the same rows
