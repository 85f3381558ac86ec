"""Model upgrades: adapters new -> old and the compatibility matrix, on encoders whose right
answers are known by construction (a keyword encoder, and the same rotated / cut)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from helpers import Encoder, KeywordEncoder
from uniembed import InputError
from uniembed.upgrade import Adapter, fit_adapter
from uniembed.upgrade.compat import compatibility_matrix, knn_accuracy

KEYWORDS = ["card", "money", "rain", "cat", "bone", "market", "river", "stone"]


class MappedEncoder(Encoder):
    """A "new model": the keyword encoder's vectors times a fixed matrix (another space, maybe another dim)."""

    def __init__(self, base: Encoder, matrix: np.ndarray, name: str = "mapped"):
        super().__init__(name, matrix.shape[1])
        self.base, self.matrix = base, matrix.astype(np.float32)

    def encode_batch(self, texts, *, long="truncate"):
        return self.base.encode_batch(texts) @ self.matrix


def rotation(dim: int, out: int | None = None, seed: int = 0) -> np.ndarray:
    q = np.linalg.qr(np.random.default_rng(seed).normal(size=(dim, dim)))[0]
    return q[:, : out or dim]


def pairs(n: int, d_old: int = 16, d_new: int = 16, noise: float = 0.0, seed: int = 1):
    rng = np.random.default_rng(seed)
    old = rng.normal(size=(n, d_old))
    new = (
        old @ np.linalg.qr(rng.normal(size=(d_old, d_old)))[0][:, :d_new]
        if d_new <= d_old
        else np.hstack([old, rng.normal(size=(n, d_new - d_old))]) @ rotation(d_new, seed=seed)
    )
    return new + noise * rng.normal(size=new.shape), old


@pytest.mark.parametrize("kind", ["procrustes", "ridge", "mlp", "contrastive"])
def test_every_adapter_recovers_a_rotation(kind):
    new, old = pairs(400)
    adapter = fit_adapter(new, old, kind)
    mapped = adapter(new)
    target = old / np.linalg.norm(old, axis=1, keepdims=True)
    assert np.mean(np.sum(mapped * target, axis=1)) > 0.99
    assert adapter.card.holdout_cosine > 0.98 and adapter.card.pairs == 400
    np.testing.assert_allclose(np.linalg.norm(mapped, axis=1), 1.0, atol=1e-5)


def test_procrustes_aligns_two_clouds_around_different_common_directions():
    # old vectors share a large common direction (as a static model's do); new ones are a rotation of
    # the rest. Rotating the centred clouds and adding the old mean back recovers them; a rotation of
    # the raw vectors has to spend itself on the offset.
    rng = np.random.default_rng(3)
    spread = rng.normal(size=(600, 16))
    old = spread + 4.0 * np.eye(16)[0]
    new = spread @ rotation(16, seed=4)
    fitted = fit_adapter(new, old, "procrustes")
    unit_new = new / np.linalg.norm(new, axis=1, keepdims=True)
    unit_old = old / np.linalg.norm(old, axis=1, keepdims=True)
    u, _, vt = np.linalg.svd(unit_new.T @ unit_old)
    uncentred = unit_new @ (u @ vt)
    uncentred /= np.linalg.norm(uncentred, axis=1, keepdims=True)
    centred_cosine = np.mean(np.sum(fitted(new) * unit_old, axis=1))
    # 0.98 and 0.70 measured: not 1.0, as both sides are unit-normalised before fitting
    assert (
        centred_cosine > 0.95
        and np.mean(np.sum(uncentred * unit_old, axis=1)) < centred_cosine - 0.2
    )
    assert fitted.card.holdout_cosine > 0.95
    np.testing.assert_allclose(
        fitted(new * 3.0), fitted(new), atol=1e-6
    )  # inputs are unit-normalised first


def test_adapters_map_between_different_dims_both_ways():
    for d_new, d_old in ((24, 16), (12, 16)):
        new, old = pairs(300, d_old=d_old, d_new=d_new)
        adapter = fit_adapter(new, old, "procrustes")
        assert adapter(new).shape == (300, d_old) and adapter(new[0]).shape == (d_old,)
        if d_new > d_old:  # nothing was lost, only extra dimensions added
            assert adapter.card.holdout_cosine > 0.97


def test_fewer_pairs_than_dimensions_ridge_is_fine_procrustes_mlp_and_contrastive_are_not():
    new, old = pairs(10, d_old=16, d_new=16)
    for kind in ("procrustes", "mlp", "contrastive"):
        with pytest.raises(
            InputError, match=rf"{kind} needs at least as many pairs as dimensions \(16\), got 10"
        ):
            fit_adapter(new, old, kind)
    assert fit_adapter(new, old, "ridge")(new).shape == (10, 16)


@pytest.mark.parametrize(
    ("new", "old", "message"),
    [
        (np.ones((5, 4)), np.ones((4, 4)), "as many new vectors as old ones, got 5 and 4"),
        (np.ones(4), np.ones((4, 4)), "two 2-D arrays"),
        (np.full((5, 4), np.nan), np.ones((5, 4)), "NaN or infinite"),
        (np.ones((1, 4)), np.ones((1, 4)), "at least 2 pairs, got 1"),
    ],
)
def test_bad_pairs_are_refused(new, old, message):
    with pytest.raises(InputError, match=message):
        fit_adapter(new, old, "ridge")


def test_an_unknown_adapter_and_the_same_fingerprint_are_refused():
    new, old = pairs(50)
    with pytest.raises(InputError, match="adapter must be one of"):
        fit_adapter(new, old, "magic")
    with pytest.raises(InputError, match="same fingerprint"):
        fit_adapter(new, old, "ridge", new_fingerprint="abc", old_fingerprint="abc")


@pytest.mark.parametrize("kind", ["procrustes", "ridge", "mlp", "contrastive"])
def test_an_adapter_saves_and_loads_whole(tmp_path, kind):
    new, old = pairs(200, d_old=16, d_new=20)
    adapter = fit_adapter(new, old, kind, new_fingerprint="new-fp", old_fingerprint="old-fp")
    card = adapter.save(tmp_path)
    loaded = Adapter.load(tmp_path)
    np.testing.assert_array_equal(loaded(new), adapter(new))
    assert json.loads(card.read_text())["new_fingerprint"] == "new-fp" and loaded.card.kind == kind
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "adapter.json",
        "adapter.safetensors",
    ]  # no temp files left
    with pytest.raises(InputError, match="this adapter maps 20-dim vectors"):
        loaded(np.ones((2, 16)))
    (tmp_path / "adapter.json").write_text(
        json.dumps({**json.loads(card.read_text()), "new_dim": 7})
    )
    with pytest.raises(InputError, match="adapter files do not match their card"):
        Adapter.load(tmp_path)
    with pytest.raises(InputError, match="not a readable adapter"):
        Adapter.load(tmp_path / "missing")


def write_beir(folder):
    (folder / "qrels").mkdir(parents=True)
    docs = {
        f"d{i}": f"{word} {word} {other}"
        for i, (word, other) in enumerate((w, o) for w in KEYWORDS for o in KEYWORDS if w != o)
    }
    (folder / "corpus.jsonl").write_text(
        "".join(json.dumps({"_id": k, "title": "", "text": v}) + "\n" for k, v in docs.items())
    )
    queries = {
        f"q{i}": f"{w} {w} {o}"
        for i, (w, o) in enumerate((w, o) for w in KEYWORDS for o in KEYWORDS if w != o)
    }
    (folder / "queries.jsonl").write_text(
        "".join(json.dumps({"_id": k, "text": v}) + "\n" for k, v in queries.items())
    )
    (folder / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"q{i}\td{i}\t1\n" for i in range(len(queries)))
    )
    return folder


def write_labelled(folder):
    folder.mkdir(parents=True)
    for split, n in (("train", 30), ("test", 6)):
        rng = np.random.default_rng(len(split))
        rows = [f"{w} {w} {rng.choice(KEYWORDS)},about_{w}" for w in KEYWORDS for _ in range(n)]
        (folder / f"{split}.csv").write_text("text,label\n" + "\n".join(rows) + "\n")
    return folder


def test_the_compatibility_matrix_on_retrieval(tmp_path):
    old = KeywordEncoder(KEYWORDS)
    new = MappedEncoder(old, rotation(old.dim, seed=3))  # the same information, in another basis
    rows = compatibility_matrix(
        old, new, write_beir(tmp_path / "beir"), adapters=("procrustes", "ridge"), pairs=(5, 40)
    )
    cell = {(r["query model"], r.get("pairs")): r for r in rows}
    assert (
        cell[("old", None)]["score"] == cell[("new", None)]["score"] > 90
    )  # a rotation changes no ranking
    assert cell[("new", None)]["update gain"] == 0.0
    assert (
        cell[("new (raw)", None)]["score"] < 60 and not cell[("new (raw)", None)]["compatible"]
    )  # another basis
    assert cell[("new->old procrustes", 40)]["score"] == pytest.approx(
        cell[("old", None)]["score"], abs=0.01
    )
    assert cell[("new->old ridge", 40)]["score"] == pytest.approx(
        cell[("old", None)]["score"], abs=1.0
    )
    assert (
        "needs at least as many pairs" in cell[("new->old procrustes", 5)]["note"]
    )  # 5 pairs, 9 dims: said
    assert all(r["task"] == "beir retrieval" and r["metric"] == "nDCG@10" for r in rows)


def test_the_compatibility_matrix_on_knn_classification_with_a_smaller_new_model(tmp_path):
    old = KeywordEncoder(KEYWORDS)
    new = MappedEncoder(
        old, rotation(old.dim, seed=4)[:, :6], name="cut"
    )  # 9 -> 6 dims: information lost
    rows = compatibility_matrix(
        old, new, write_labelled(tmp_path / "intents"), adapters=("ridge",), pairs=(200,)
    )
    cell = {r["query model"]: r for r in rows}
    assert "new (raw)" not in cell  # dims differ: no raw cell
    assert cell["old"]["score"] == 100.0 and cell["old"]["metric"] == "accuracy"
    assert cell["new->old ridge"]["pairs"] == 200 and 0 < cell["new->old ridge"]["score"] <= 100
    assert cell["new"]["update gain"] == round(cell["new"]["score"] - 100.0, 2)


def test_a_validation_split_holds_out_train_texts_and_never_reads_test(tmp_path):
    from uniembed.upgrade.compat import load_task

    folder = write_labelled(tmp_path / "intents")
    test, validation = load_task(folder), load_task(folder, split="validation")
    train_texts = (folder / "train.csv").read_text().splitlines()[1:]
    assert (
        len(validation.queries) == len(train_texts) // 10
        and len(validation.gallery) == len(train_texts) - 24
    )
    assert sorted(validation.queries + validation.gallery) == sorted(
        t.rsplit(",", 1)[0] for t in train_texts
    )
    assert (
        load_task(folder, split="validation").queries == validation.queries
    )  # the same draw every time
    assert test.queries != validation.queries
    old = KeywordEncoder(KEYWORDS)
    assert validation.score(old.encode(validation.queries), old.encode(validation.gallery)) == 1.0
    with pytest.raises(InputError, match="'test' or 'validation'"):
        load_task(folder, split="dev")
    with pytest.raises(InputError, match="qrels"):
        load_task(write_beir(tmp_path / "beir"), split="dev")  # a retrieval split must exist


def test_the_compatibility_matrix_refuses_bad_arguments(tmp_path):
    old = KeywordEncoder(KEYWORDS)
    beir = write_beir(tmp_path / "beir")
    with pytest.raises(InputError, match="same fingerprint"):
        compatibility_matrix(old, KeywordEncoder(KEYWORDS), beir)
    new = MappedEncoder(old, rotation(old.dim))
    with pytest.raises(InputError, match="adapter must be one of"):
        compatibility_matrix(old, new, beir, adapters=("magic",))
    with pytest.raises(InputError, match="pairs must be integers >= 2"):
        compatibility_matrix(old, new, beir, pairs=(0,))
    with pytest.raises(InputError, match="neither a BEIR folder"):
        compatibility_matrix(old, new, tmp_path)


def test_knn_accuracy_votes_with_similarity_for_ties():
    gallery = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
    labels = np.array(["a", "b", "b"])
    assert (
        knn_accuracy(np.array([[1.0, 0.0]]), gallery, labels, ["a"], k=2) == 1.0
    )  # a 1-1 tie: "a" is nearer
    assert (
        knn_accuracy(np.array([[1.0, 0.0]]), gallery, labels, ["b"], k=3) == 1.0
    )  # two votes beat one


def test_relative_vectors_make_a_rotated_model_compatible_without_an_adapter():
    from uniembed.spaces.relative import relative_vectors

    rng = np.random.default_rng(0)
    old = rng.normal(size=(50, 8))
    new = old @ rotation(8, seed=2)  # another basis, the same geometry
    anchors = np.arange(10)
    np.testing.assert_allclose(
        relative_vectors(new, new[anchors]), relative_vectors(old, old[anchors]), atol=1e-5
    )
    assert relative_vectors(old, old[anchors]).shape == (50, 10)


def test_per_query_scores_average_to_the_cells_and_match_the_evaluation_metrics(tmp_path):
    from uniembed.eval import metrics
    from uniembed.eval.loaders import load_beir
    from uniembed.upgrade.compat import load_task, matrix, task_vectors

    old = KeywordEncoder(KEYWORDS)
    new = MappedEncoder(old, rotation(old.dim, seed=4)[:, :6], name="cut")
    for folder in (write_beir(tmp_path / "beir"), write_labelled(tmp_path / "intents")):
        task = load_task(folder)
        rows = matrix(
            task,
            task_vectors(old, task),
            task_vectors(new, task),
            adapters=("ridge",),
            pairs=(40,),
            per_query=True,
        )
        for row in rows:
            assert len(row["per query"]) == len(task.queries)
            assert row["score"] == round(100 * float(np.mean(row["per query"])), 2)
        assert (
            "per query"
            not in matrix(task, task_vectors(old, task), task_vectors(new, task), pairs=(40,))[0]
        )
    # the retrieval per-query mean is the evaluation's nDCG@10 (with queries in another basis than
    # the gallery, so that some rank wrong)
    task, data = load_task(tmp_path / "beir"), load_beir(tmp_path / "beir")
    queries, gallery = (
        MappedEncoder(old, rotation(old.dim, seed=3)).encode(data.queries),
        old.encode(data.corpus),
    )
    top = np.argsort(-(queries @ gallery.T), axis=1)[:, :10]
    expected = metrics.retrieval_scores(
        {q: [data.corpus_ids[r] for r in top[i]] for i, q in enumerate(data.query_ids)},
        data.qrels,
        ks=(10,),
    )["ndcg_at_10"]
    assert task.score(queries, gallery) == pytest.approx(expected) and expected < 1.0
