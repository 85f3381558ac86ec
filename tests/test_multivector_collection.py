"""Multi-vector collections: token vectors stored with their FDE, searched by FDE + MaxSim rerank,
exact MaxSim and the per-token heuristic; persistence, filters, storage formats and bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

import uniembed
from uniembed import InputError
from uniembed.multivector import FDEConfig, maxsim
from uniembed.store import Collection
from uniembed.store.multivector import token_heuristic_rows

DIM = 8
SMALL_FDE = {"repetitions": 4, "k_sim": 2, "d_proj": 4, "seed": 7}


def token_sets(n, seed=0, dim=DIM):
    rng = np.random.default_rng(seed)
    sets = [
        rng.standard_normal((int(rng.integers(2, 9)), dim)).astype(np.float32) for _ in range(n)
    ]
    return [t / np.linalg.norm(t, axis=1, keepdims=True) for t in sets]


def exact_order(query, sets, k):
    scores = maxsim(query, sets)
    return list(np.argsort(-scores, kind="stable")[:k])


@pytest.fixture
def mv(tmp_path):
    sets = token_sets(60)
    col = Collection.create(
        tmp_path / "mv", model=None, dim=DIM, multivector="muvera", fde=SMALL_FDE
    )
    col.add([f"d{i}" for i in range(60)], sets, payloads=[{"even": i % 2 == 0} for i in range(60)])
    return col, sets


def test_every_first_stage_ranks_by_exact_maxsim(mv):
    col, sets = mv
    query = token_sets(1, seed=99)[0]
    want = [
        f"d{i}"
        for i in exact_order(query, [s.astype(np.float16).astype(np.float32) for s in sets], 10)
    ]
    assert [h.id for h in col.search(query, k=10, first_stage="exact")] == want
    assert [
        h.id for h in col.search(query, k=10, candidates=60)
    ] == want  # FDE stage, every item a candidate
    assert [h.id for h in col.search(query, k=10, first_stage="tokens", token_hits=500)] == want
    exact_scores = [h.score for h in col.search(query, k=10, first_stage="exact")]
    np.testing.assert_allclose(
        exact_scores, np.sort(maxsim(query, sets))[::-1][:10], atol=2e-2
    )  # float16 storage


def test_fde_candidates_come_from_the_fde_index_and_the_heuristic_from_nearest_tokens(mv):
    col, sets = mv
    query = token_sets(1, seed=5)[0]
    fde = col.vectors.fde
    best_by_fde = np.argsort(-(fde.documents(sets) @ fde.queries([query])[0]))[:5]
    hits = col.search(query, k=5, candidates=5)  # rerank of exactly the FDE's top 5
    assert {h.id for h in hits} == {f"d{i}" for i in best_by_fde}
    flat = np.concatenate(sets)
    owner = np.repeat(np.arange(len(sets)), [len(s) for s in sets])
    nearest = {int(owner[j]) for j in np.argmax(query @ flat.T, axis=1)}
    hits = col.search(query, k=60, first_stage="tokens", token_hits=1)
    assert {h.id for h in hits} == {f"d{i}" for i in nearest}
    tokens = col.snapshot().tokens
    for hits_per_token in (
        1,
        3,
        40,
    ):  # blocks smaller than the hits: the running best is merged across blocks
        whole = token_heuristic_rows(query, tokens, hits_per_token, None)
        np.testing.assert_array_equal(
            token_heuristic_rows(query, tokens, hits_per_token, None, block=7), whole
        )
    three = np.argsort(-(query @ flat.T), axis=1)[:, :3]
    assert set(token_heuristic_rows(query, tokens, 3, None, block=5).tolist()) == set(
        owner[three.ravel()].tolist()
    )


def test_filters_deletes_and_upserts_apply_to_every_stage(mv):
    col, sets = mv
    query = token_sets(1, seed=3)[0]
    for stage in ("fde", "exact", "tokens"):
        hits = col.search(query, k=10, filter="even=true", first_stage=stage)
        assert hits and all(h.payload["even"] for h in hits)
    top = col.search(query, k=1, first_stage="exact")[0].id
    col.delete([top])
    assert top not in {h.id for h in col.search(query, k=60, first_stage="exact")}
    col.upsert(
        ["d1"], [np.tile(query, (2, 1))]
    )  # d1 now holds the query's own tokens: the best match
    for stage in ("fde", "exact", "tokens"):
        assert col.search(query, k=1, first_stage=stage)[0].id == "d1"


def test_reopened_collection_keeps_parameters_tokens_and_results(mv):
    col, sets = mv
    query = token_sets(1, seed=11)[0]
    before = [(h.id, round(h.score, 5)) for h in col.search(query, k=5)]
    again = Collection.open(col.path)
    assert again.meta.multivector == {
        "method": "muvera",
        "token_dim": DIM,
        "storage": "float16",
        "fde": FDEConfig(**SMALL_FDE).to_dict(),
    }
    assert [(h.id, round(h.score, 5)) for h in again.search(query, k=5)] == before
    item = again.get(["d3"])[0]
    np.testing.assert_allclose(item.tokens, sets[3], atol=1e-3)
    info = again.info()
    assert info.token_bytes_per_item == pytest.approx(np.mean([2 * DIM * len(s) for s in sets]))
    assert info.fields == {"default": 4 * 4 * 4}


def test_int8_token_storage_is_smaller_and_close(tmp_path):
    sets = token_sets(20, seed=4)
    col = Collection.create(
        tmp_path / "q",
        model=None,
        dim=DIM,
        multivector="muvera",
        fde=SMALL_FDE,
        token_storage="int8",
    )
    col.add([f"d{i}" for i in range(20)], sets)
    for item, tokens in zip(col.get([f"d{i}" for i in range(20)]), sets):
        np.testing.assert_allclose(item.tokens, tokens, atol=np.abs(tokens).max() / 127)
    assert col.info().token_bytes_per_item == pytest.approx(
        np.mean([(DIM + 4) * len(s) for s in sets])
    )


def test_text_collection_uses_the_models_token_vectors(tmp_path, tiny_model):
    texts = [
        "the cat sat on the mat",
        "blue rain in the sun",
        "money sent to the bank",
        "a dog and a cat",
    ]
    col = Collection.create(tmp_path / "t", model=tiny_model, multivector="muvera", fde=SMALL_FDE)
    col.add(["a", "b", "c", "d"], texts)
    query_tokens = tiny_model.encode_tokens(["cat on a mat"], prompt="query")[0]
    doc_tokens = [
        t.astype(np.float16).astype(np.float32)
        for t in tiny_model.encode_tokens(texts, prompt="document")
    ]
    want = ["abcd"[i] for i in exact_order(query_tokens, doc_tokens, 4)]
    assert [h.id for h in col.search("cat on a mat", k=4, first_stage="exact")] == want
    assert [
        h.id for h in col.search("cat on a mat", k=4)
    ] == want  # 4 items: every one is an FDE candidate
    assert col.get(["a"])[0].text == texts[0]
    assert [h.id for h in col.search("bank", k=1, mode="text")] == [
        "c"
    ]  # BM25 over the stored text still works
    hybrid = col.search("money bank", k=4, mode="hybrid")  # MaxSim ranking fused with BM25
    assert hybrid[0].id == "c" and len(hybrid) == 4


def test_pylate_collection_checks_the_token_fingerprint(tmp_path):
    from helpers import write_tiny_pylate

    model = uniembed.load(write_tiny_pylate(tmp_path / "colbert"), device="cpu")
    col = Collection.create(tmp_path / "c", model=model, multivector="muvera", fde=SMALL_FDE)
    assert col.meta.fields == {"default": 4 * 4 * 4} and col.multivector.token_dim == 6
    col.add(["a", "b"], ["the cat sat", "blue rain, red sun."])
    assert Collection.open(col.path, model=model).search("cat", k=1)[0].id == "a"
    other = uniembed.load(write_tiny_pylate(tmp_path / "other", seed=3), device="cpu")
    with pytest.raises(InputError, match="makes different vectors"):
        Collection.open(col.path, model=other)


def test_bad_input_is_refused_with_clear_errors(mv, tmp_path, tiny_model):
    col, sets = mv
    with pytest.raises(InputError, match="single vector of shape"):
        col.search(np.ones(DIM, np.float32), k=3)
    with pytest.raises(InputError, match=r"\(tokens, 8\)"):
        col.search(np.ones((3, 5), np.float32), k=3)
    with pytest.raises(InputError, match="first_stage"):
        col.search(sets[0], k=3, first_stage="ivf")
    with pytest.raises(InputError, match="candidates"):
        col.search(sets[0], k=3, candidates=0)
    before = len(col)
    with pytest.raises(InputError, match="token set 1 is empty"):
        col.add(["x", "y", "z"], [sets[0], np.zeros((0, DIM), np.float32), sets[2]])
    with pytest.raises(InputError, match="token set 0 has shape"):
        col.add(["x"], [np.ones((3, DIM + 1), np.float32)])
    with pytest.raises(InputError, match="not one"):
        col.add(
            ["x", "y"], np.ones((2, DIM), np.float32)
        )  # single vectors into a multi-vector collection
    with pytest.raises(InputError, match="NaN"):
        col.add(["x"], [np.full((2, DIM), np.nan, np.float32)])
    assert len(col) == before  # nothing written
    single = Collection.create(tmp_path / "single", model=None, dim=DIM)
    single.add(["a"], np.ones((1, DIM), np.float32))
    with pytest.raises(InputError, match="single-vector"):
        single.search(np.ones((3, DIM), np.float32), k=1)
    with pytest.raises(InputError, match="multi-vector collections"):
        single.search(np.ones(DIM, np.float32), k=1, first_stage="exact")
    with pytest.raises(InputError, match="multivector='muvera'"):
        Collection.create(tmp_path / "x1", model=None, dim=DIM, fde=SMALL_FDE)
    with pytest.raises(InputError, match="one vector field"):
        Collection.create(
            tmp_path / "x2", model=None, dim=DIM, multivector="muvera", fields=["a", "b"]
        )
    with pytest.raises(InputError, match="token_storage"):
        Collection.create(
            tmp_path / "x3", model=None, dim=DIM, multivector="muvera", token_storage="int4"
        )
    with pytest.raises(InputError, match="unknown FDE parameter"):
        Collection.create(
            tmp_path / "x4", model=None, dim=DIM, multivector="muvera", fde={"reps": 3}
        )
    with pytest.raises(InputError, match="multivector must be"):
        Collection.create(tmp_path / "x5", model=None, dim=DIM, multivector="plaid")
    with pytest.raises(InputError, match="dim= truncates"):
        Collection.create(tmp_path / "x6", model=tiny_model, dim=8, multivector="muvera")
    assert not any((tmp_path / f"x{i}").exists() for i in range(1, 7))


def test_cli_builds_and_searches_a_multivector_collection(tmp_path, tiny_dir, capsys):
    from uniembed.cli.main import main

    records = tmp_path / "docs.jsonl"
    records.write_text(
        "\n".join(
            json.dumps({"id": f"d{i}", "text": t})
            for i, t in enumerate(["the cat sat on the mat", "blue rain", "money in the bank"])
        )
    )
    path = tmp_path / "col"
    assert (
        main(
            [
                "collection",
                "create",
                str(path),
                "--model",
                str(tiny_dir),
                "--multivector",
                "muvera",
                "--fde-repetitions",
                "3",
                "--fde-k-sim",
                "2",
                "--fde-d-proj",
                "4",
                "--token-storage",
                "int8",
            ]
        )
        == 0
    )
    assert main(["collection", "add", str(path), str(records)]) == 0
    capsys.readouterr()
    assert (
        main(["search", str(path), "cat on the mat", "-k", "2", "--first-stage", "exact", "--json"])
        == 0
    )
    hits = json.loads(capsys.readouterr().out)
    want = Collection.open(path).search("cat on the mat", k=2, first_stage="exact")
    assert [(h["id"], round(h["score"], 4)) for h in hits] == [
        (h.id, round(h.score, 4)) for h in want
    ]
    assert main(["collection", "info", str(path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert (
        info["multivector"]["fde"]["repetitions"] == 3 and info["multivector"]["storage"] == "int8"
    )
    assert main(["search", str(path), "cat", "--first-stage", "tokens", "--token-hits", "0"]) == 2
    assert "token_hits must be a positive integer" in capsys.readouterr().err
