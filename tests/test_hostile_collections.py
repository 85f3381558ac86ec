"""Collections under hostile input and growth: parameters that would crash FAISS, empty results,
damaged files, a long-lived process that must search as well as a fresh open (issue 13)."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest

from helpers import FakeEncoder
from uniembed import InputError
from uniembed.compress import l2_normalize
from uniembed.errors import CollectionDamagedError
from uniembed.index import create_index
from uniembed.store import Collection
from uniembed.store import snapshot as snapshot_module
from uniembed.store.snapshot import Snapshot

INDEXES = [
    ("exact", "none"),
    ("exact", "int8"),
    ("exact", "binary"),
    ("hnsw", "none"),
    ("hnsw", "int8"),
    ("hnsw", "binary"),
    ("ivfpq", "none"),
]
DIM = 16


def unit(n, dim=DIM, seed=0):
    return l2_normalize(np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32))


def make(tmp_path, index="exact", quantize="none", name="c", **kwargs):
    return Collection.create(
        tmp_path / name, model=None, dim=DIM, index=index, quantize=quantize, **kwargs
    )


BAD_PARAMS = [
    ("hnsw", "none", {"m": 0}),
    ("hnsw", "none", {"m": -1}),
    ("hnsw", "none", {"m": 2.5}),
    ("hnsw", "binary", {"m": 0}),
    ("hnsw", "none", {"ef_search": 0}),
    ("hnsw", "none", {"m": True}),
    ("hnsw", "none", {"m": "32"}),
    ("hnsw", "none", {"quantize": "pq"}),
    ("ivfpq", "none", {"nprobe": 0}),
    ("ivfpq", "none", {"m": 3}),
    ("ivfpq", "none", {"m": 32}),
    ("ivfpq", "none", {"nlist": 10**9}),
    ("hnsw", "binary", {"graph": 1}),
    ("exact", "int8", {"rescore_multiplier": 0}),
    ("hnsw", "none", {"m": float("nan")}),
]


@pytest.mark.parametrize(
    ("index", "quantize", "params"), BAD_PARAMS, ids=[str(p) for p in BAD_PARAMS]
)
def test_bad_index_parameters_are_refused_at_create_and_nothing_is_written(
    tmp_path, index, quantize, params
):
    name = next(iter(params))
    with pytest.raises(InputError, match=name):
        make(tmp_path, index, quantize, index_params=params)
    assert not any(tmp_path.iterdir())


def test_integral_floats_are_accepted_as_integers(tmp_path):
    col = make(tmp_path, "hnsw", index_params={"m": 16.0})
    assert col.meta.index_params["m"] == 16 and isinstance(col.meta.index_params["m"], int)


@pytest.mark.parametrize("params", [{"m": 0}, {"m": -1}, {"nonsense": 1}])
def test_a_bad_parameter_written_into_collection_json_is_refused_on_open(tmp_path, params):
    col = make(tmp_path, "hnsw")
    col.add(["a"], unit(1))
    meta_path = col.path / "collection.json"
    meta = json.loads(meta_path.read_text())
    meta["index_params"].update(params)
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(CollectionDamagedError, match="collection damaged"):
        Collection.open(col.path)


@pytest.mark.parametrize(
    "edit",
    [
        lambda m: {**m, "surprise": 1},
        lambda m: {**m, "fields": "default"},
        lambda m: {**m, "index": 7},
        lambda m: {**m, "fields": {"default": -4}},
        lambda m: [1, 2],
        lambda m: {**m, "schema_version": "two"},
        lambda m: {
            **m,
            "multivector": {
                "token_dim": 8,
                "fde": {"repetitions": 256, "k_sim": 12, "d_proj": 4096},
            },
        },
        lambda m: {**m, "data_dir": "../elsewhere"},
        lambda m: {**m, "data_dir": "data-zz"},
    ],
)
def test_a_damaged_collection_json_is_a_clear_error_naming_the_file(tmp_path, edit):
    col = make(tmp_path)
    meta_path = col.path / "collection.json"
    meta_path.write_text(json.dumps(edit(json.loads(meta_path.read_text()))))
    with pytest.raises(CollectionDamagedError, match="collection.json"):
        Collection.open(col.path)


def test_a_missing_data_folder_is_damage_and_opening_creates_nothing(tmp_path):
    import shutil

    col = make(tmp_path)
    shutil.rmtree(col.path / "data")
    with pytest.raises(CollectionDamagedError, match="data/"):
        Collection.open(col.path)
    assert not (col.path / "data").exists()


@pytest.mark.parametrize(("index", "quantize"), INDEXES)
def test_an_empty_result_is_an_empty_list_everywhere(tmp_path, index, quantize):
    col = make(tmp_path, index, quantize)
    query = unit(1)[0]
    assert col.search(query, k=5) == []  # never written
    col.add(["a"], unit(1), payloads=[{"lang": "en"}])
    assert [h.id for h in col.search(query, k=5)] == ["a"]  # one item: ivfpq cannot train on it
    assert col.search(query, k=5, filter="lang=fr") == []  # a filter that matches nothing
    col.delete(["a"])
    assert col.search(query, k=5) == []  # every item deleted
    assert Collection.open(col.path).search(query, k=5, filter="lang=en") == []
    with pytest.raises(
        InputError, match="values"
    ):  # a bad query is still refused when nothing could match
        col.search(np.ones(3, np.float32), k=5)


def test_empty_results_in_text_and_hybrid_modes(tmp_path):
    col = Collection.create(tmp_path / "t", model=FakeEncoder(DIM))
    assert col.search("anything", k=3, mode="hybrid") == []
    col.add(["a", "b"], ["red bicycle", "blue car"], payloads=[{"lang": "en"}, {"lang": "en"}])
    for mode in ("dense", "text", "hybrid"):
        assert col.search("bicycle", k=3, mode=mode, filter="lang=fr") == []
    col.delete(["a", "b"])
    for mode in ("dense", "text", "hybrid"):
        assert col.search("bicycle", k=3, mode=mode) == []


@pytest.mark.parametrize("stage", ["fde", "exact", "tokens"])
def test_empty_results_in_multivector_collections(tmp_path, stage):
    col = Collection.create(
        tmp_path / "mv",
        model=None,
        dim=8,
        multivector="muvera",
        fde={"repetitions": 2, "k_sim": 2, "d_proj": 4},
    )
    query = np.random.default_rng(0).normal(size=(3, 8)).astype(np.float32)
    assert col.search(query, k=3, first_stage=stage) == []
    col.add(["a"], [query[:2]], payloads=[{"lang": "en"}])
    assert col.search(query, k=3, first_stage=stage, filter="lang=de") == []
    col.delete(["a"])
    assert col.search(query, k=3, first_stage=stage) == []


@pytest.mark.parametrize(
    "fde",
    [
        {"repetitions": 256, "k_sim": 12, "d_proj": 4096},
        {"repetitions": 64, "k_sim": 10},
        {"repetitions": 20, "k_sim": 5, "d_proj": 16, "final_dim": 1_000_000},
    ],
)
def test_fde_sizes_are_capped_before_anything_is_allocated(tmp_path, fde):
    with pytest.raises(InputError, match="over the limit"):
        Collection.create(tmp_path / "mv", model=None, dim=128, multivector="muvera", fde=fde)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("index", "quantize", "floor"),
    [("exact", "int8", 0.95), ("ivfpq", "none", 0.5), ("hnsw", "int8", 0.9)],
)
def test_a_long_lived_collection_searches_as_well_as_a_fresh_open(tmp_path, index, quantize, floor):
    """3 items, a search (builds and trains the index), then 3,000 more: the trained index must be
    rebuilt, or int8 ranges and IVF-PQ codebooks from 3 vectors ruin recall."""
    vectors = unit(3003, seed=1)
    col = make(tmp_path, index, quantize)
    col.add(["v0", "v1", "v2"], vectors[:3])
    col.search(vectors[0], k=1)
    for start in range(3, 3003, 500):
        col.add(
            [f"v{i}" for i in range(start, min(start + 500, 3003))], vectors[start : start + 500]
        )
    queries = unit(30, seed=2)
    truth = [set(np.argsort(-(vectors @ q))[:10]) for q in queries]

    def recall(collection):
        found = [{int(h.id[1:]) for h in collection.search(q, k=10)} for q in queries]
        return np.mean([len(f & t) / 10 for f, t in zip(found, truth)])

    live, fresh = recall(col), recall(Collection.open(col.path))
    assert live >= floor and live >= fresh - 0.05


def snapshot_of(vectors, allowed_share, index="hnsw"):
    n = len(vectors)
    keep = np.zeros(n, dtype=bool)
    keep[np.random.default_rng(3).choice(n, int(n * allowed_share), replace=False)] = True
    table = pa.table(
        {
            "id": pa.array([f"r{i}" for i in range(n)]),
            "payload": pa.array([None] * n, pa.string()),
            "vec_default": pa.FixedSizeListArray.from_arrays(
                pa.array(vectors.reshape(-1)), vectors.shape[1]
            ),
            "p_keep": pa.array(keep),
        }
    )
    return Snapshot.from_table(1, table, {"default": vectors.shape[1]}, index, {}), keep


def test_a_selective_filter_over_more_than_10000_rows_still_returns_k_hits():
    """0.5% of 2.1M rows pass (10,500 > EXACT_SUBSET_ROWS): the allowed rows are searched exactly."""
    from uniembed.store.filters import Condition

    vectors = np.random.default_rng(4).normal(size=(2_100_000, 4)).astype(np.float32)
    snap, keep = snapshot_of(vectors, 0.005)
    allowed = snap.allowed_rows([Condition("keep", "=", True)])
    assert allowed.sum() > snapshot_module.EXACT_SUBSET_ROWS
    queries = vectors[:3]
    scores, rows = snap.search(queries, 50, "default", allowed)
    assert (rows >= 0).all() and keep[rows].all()
    truth = np.flatnonzero(keep)[np.argsort(-(vectors[keep] @ queries.T), axis=0)[:50].T]
    np.testing.assert_array_equal(np.sort(rows, axis=1), np.sort(truth, axis=1))
    assert "default" not in snap.indexes  # no graph was built to be walked past 99.5% of its nodes


@pytest.mark.parametrize("index", ["hnsw", "ivfpq", "binary"])
def test_queries_an_index_leaves_short_are_refilled_exactly(monkeypatch, index):
    monkeypatch.setattr(snapshot_module, "EXACT_SUBSET_ROWS", 0)
    monkeypatch.setattr(snapshot_module, "EXACT_SUBSET_SHARE", 0.0)  # force the index path
    vectors = unit(4000, seed=5)
    snap, keep = snapshot_of(vectors, 0.01, index)
    from uniembed.store.filters import Condition

    allowed = snap.allowed_rows([Condition("keep", "=", True)])
    scores, rows = snap.search(vectors[:5], 30, "default", allowed)
    assert (rows >= 0).all() and keep[rows].all()


def test_writes_grow_arrays_in_place_instead_of_copying_the_collection(tmp_path):
    col = make(tmp_path, "hnsw", "binary")
    col.add([f"a{i}" for i in range(100)], unit(100))
    col.search(unit(1)[0], k=3)
    index = col.snapshot().index("default")
    buffers = []
    for batch in range(20):
        col.add([f"b{batch}-{i}" for i in range(10)], unit(10, seed=batch + 10))
        buffers.append(col.snapshot()._vectors["default"]._buffer.ctypes.data)
    assert col.snapshot().index("default") is index  # the graph grew, it was not rebuilt
    assert len(set(buffers)) <= 3  # reallocated only when the capacity doubled
    assert len(index.codes) == 300


def test_ivfpq_default_sub_quantisers_divide_any_dimension():
    vectors = l2_normalize(np.random.default_rng(6).normal(size=(500, 12)).astype(np.float32))
    index = create_index("ivfpq", vectors)
    assert 12 % index.m == 0
    assert (index.search(vectors[:2], 5, vectors)[1] >= 0).all()


@pytest.mark.parametrize(
    "spec",
    [
        {"year": {"in": []}},
        "year=2000.5",
        "year in (2000.5, 2021)",
        {"year": {"<": 10**30}},
        {"year": {">=": -(10**30)}},
        "score>=1e30",
        "lang in (en, 'x''y')",
    ],
)
@pytest.mark.parametrize("mode", ["dense", "text", "hybrid"])
def test_hostile_filters_run_in_every_mode(tmp_path, spec, mode):
    col = Collection.create(tmp_path / "t", model=FakeEncoder(DIM))
    col.add(
        ["a", "b"],
        ["red bicycle", "red car"],
        payloads=[
            {"year": 2021, "score": 0.5, "lang": "en"},
            {"year": 2000, "score": 1.5, "lang": "fr"},
        ],
    )
    hits = col.search("red", k=5, mode=mode, filter=spec)
    assert all(isinstance(h.id, str) for h in hits)
    if spec == "year=2000.5" or spec == {"year": {"in": []}}:
        assert hits == []
    if spec == "year in (2000.5, 2021)":
        assert [h.id for h in hits] == ["a"]


def test_a_refused_write_commits_nothing_not_even_a_new_column(tmp_path):
    col = make(tmp_path)
    col.add(["a"], unit(1), payloads=[{"year": 2000}])
    version, fields = col.backend.version, dict(col.payload_fields)
    with pytest.raises(InputError, match="64-bit"):
        col.add(["b", "c"], unit(2), payloads=[{"new_field": 1}, {"huge": 2**64}])
    with pytest.raises(InputError, match="keys must be strings"):
        col.add(["b"], unit(1), payloads=[{1: "x"}])
    reopened = Collection.open(col.path)
    assert (
        reopened.backend.version == version
        and reopened.payload_fields == fields
        and len(reopened) == 1
    )


def test_a_key_with_a_trailing_newline_is_refused_not_kept_unfilterable(tmp_path):
    # issue 30: it used to be kept in the JSON where no filter could ever name it
    col = make(tmp_path)
    with pytest.raises(
        InputError, match=r"has the key 'nl\\n': a payload key is what a filter can name"
    ):
        col.add(["a"], unit(1), payloads=[{"nl\n": 1, "ok": 2}])
    assert len(col) == 0 and col.payload_fields == {}
    col.add(
        ["a"], unit(1), payloads=[{"ok": 2, "nested": {"nl\n": 1, "a b": [1]}}]
    )  # nested keys are the user's
    assert col.payload_fields == {"ok": "int"} and col.get(["a"])[0].payload["nested"] == {
        "nl\n": 1,
        "a b": [1],
    }


@pytest.mark.parametrize(("index", "quantize"), INDEXES)
def test_vectors_whose_scores_would_overflow_float32_are_refused(tmp_path, index, quantize):
    col = make(tmp_path, index, quantize)
    huge = np.full((1, DIM), 3e38, np.float32)
    with pytest.raises(InputError, match="norm"):
        col.add(["big"], huge)
    col.add(["a", "b"], unit(2) * 1e17)  # large but safe: scores stay finite
    hits = col.search(unit(1)[0] * 1e17, k=5)
    assert len(hits) == 2 and all(np.isfinite(h.score) for h in hits)
    with pytest.raises(InputError, match="norm"):
        col.search(huge[0], k=5)


def test_float16_token_storage_refuses_values_it_would_turn_into_inf(tmp_path):
    col = Collection.create(
        tmp_path / "mv",
        model=None,
        dim=4,
        multivector="muvera",
        fde={"repetitions": 2, "k_sim": 2, "d_proj": 4},
    )
    with pytest.raises(InputError, match="float16"):
        col.add(["a"], [np.full((2, 4), 1e5, np.float32)])
    assert len(col) == 0


def test_batch_writers_without_a_snapshot_read_the_ids_once(tmp_path, monkeypatch):
    col = make(tmp_path)
    scans = []
    original = col.backend.scan
    monkeypatch.setattr(
        col.backend, "scan", lambda columns: scans.append(columns) or original(columns)
    )
    for batch in range(3):
        col.add([f"b{batch}-{i}" for i in range(1500)], unit(1500, seed=batch))
    assert scans == [["id"]]  # once, then kept current with our own writes
    with pytest.raises(InputError, match="already in the collection"):
        col.add([f"new-{i}" for i in range(1200)] + ["b1-7"], unit(1201, seed=9))
    assert len(col) == 4500


@pytest.mark.parametrize(("index", "quantize"), INDEXES)
def test_a_first_stage_asked_for_most_of_the_collection_searches_exactly(tmp_path, index, quantize):
    """k=10,000 with a rescore multiplier of 100 must not gather a million rows to rescore."""
    params = {"ivfpq": {"rescore": 100}, "hnsw": {"rescore_multiplier": 100}}.get(index, {})
    if quantize != "none" and index != "hnsw":
        params = {"rescore_multiplier": 100}
    col = make(tmp_path, index, quantize, index_params=params)
    vectors = unit(500, seed=11)
    col.add([f"v{i}" for i in range(500)], vectors)
    hits = col.search(vectors[0], k=10_000)
    assert len(hits) == 500
    assert [h.id for h in hits[:5]] == [f"v{i}" for i in np.argsort(-(vectors @ vectors[0]))[:5]]


def test_reranking_many_candidates_in_blocks_equals_one_pass(monkeypatch):
    from uniembed.store import multivector as mv

    spec = mv.MultiVectorSpec.make(
        "muvera", 4, "float16", {"repetitions": 1, "k_sim": 1, "d_proj": 2}
    )
    rng = np.random.default_rng(0)
    sets = [rng.normal(size=(rng.integers(1, 6), 4)).astype(np.float32) for _ in range(50)]
    tokens = mv.TokenSets([mv.pack_tokens(t, "float16") for t in sets], spec)
    query = rng.normal(size=(3, 4)).astype(np.float32)
    whole = mv.rerank(query, np.arange(50), tokens, 10)
    monkeypatch.setattr(mv, "RERANK_BLOCK", 7)
    blocked = mv.rerank(query, np.arange(50), tokens, 10)
    np.testing.assert_array_equal(whole[1], blocked[1])
    np.testing.assert_allclose(whole[0], blocked[0], rtol=1e-6)


@pytest.mark.parametrize("where", ["id", "text", "payload", "filter", "query"])
def test_lone_surrogates_are_input_errors_not_encoding_crashes(tmp_path, where):
    col = Collection.create(tmp_path / "t", model=FakeEncoder(DIM))
    col.add(["seed"], ["hello"], payloads=[{"lang": "en"}])
    bad = "\ud800"
    calls = {
        "id": lambda: col.add([bad], ["hello"]),
        "text": lambda: col.add(["a"], [bad]),
        "payload": lambda: col.add(["a"], ["hello"], payloads=[{"lang": bad}]),
        "filter": lambda: col.search("hello", mode="text", filter={"lang": bad}),
        "query": lambda: col.search(bad, mode="hybrid"),
    }
    with pytest.raises(InputError, match="Unicode|does not fit"):
        calls[where]()
    assert len(col) == 1


def test_a_model_giving_nan_raises_a_model_error_from_encode():
    from uniembed.errors import ModelOutputError

    class NaNEncoder(FakeEncoder):
        def encode_batch(self, texts, *, long="truncate"):
            return np.full((len(texts), self.dim), np.nan, np.float32)

    with pytest.raises(ModelOutputError, match="NaN"):
        NaNEncoder(DIM).encode(["hello"])


def test_renames_into_place_fsync_their_folder(tmp_path, monkeypatch):
    import os
    import stat

    from uniembed._atomic import atomic_folder, replace_file

    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(
        os, "fsync", lambda fd: synced.append(stat.S_ISDIR(os.fstat(fd).st_mode)) or real_fsync(fd)
    )
    (tmp_path / "f.tmp").write_text("x")
    replace_file(tmp_path / "f.tmp", tmp_path / "f")
    with atomic_folder(tmp_path / "folder") as staging:
        (staging / "a").write_text("y")
    assert (
        synced.count(True) == 2
        and (tmp_path / "f").read_text() == "x"
        and (tmp_path / "folder" / "a").exists()
    )


def test_readers_never_see_a_new_column_without_its_rows(tmp_path):
    """A writer killed between its column commit and its rows: readers keep the version before,
    and the next writer undoes the column, so its type is not fixed for good."""
    from uniembed.store import pending

    col = make(tmp_path)
    col.add(["a"], unit(1), payloads=[{"lang": "en"}])
    before = col.backend.version
    pending.begin(col.path, before)  # what a writer does first ...
    col.backend.add_payload_columns({"p_year": pa.int64()})  # ... then it dies here
    reader = Collection.open(col.path)
    assert reader.payload_fields == {"lang": "string"} and len(reader) == 1
    assert [h.id for h in reader.search(unit(1)[0], k=3)] == ["a"]
    with pytest.raises(InputError, match="unknown filter field 'year'"):
        reader.search(unit(1)[0], k=3, filter="year>2000")
    writer = Collection.open(col.path)
    writer.add(
        ["b"], unit(1, seed=2), payloads=[{"year": "MMXX"}]
    )  # a string now: int was never committed
    assert Collection.open(col.path).payload_fields == {"lang": "string", "year": "string"}
    assert not (col.path / pending.RECORD).exists()


def test_a_write_failing_after_its_column_commit_is_undone_at_once(tmp_path, monkeypatch):
    col = make(tmp_path)
    col.add(["a"], unit(1), payloads=[{"lang": "en"}])
    version = col.backend.version

    def broken(rows):
        raise OSError("disk full")

    monkeypatch.setattr(col.backend, "insert", broken)
    with pytest.raises(OSError, match="disk full"):
        col.add(["b"], unit(1), payloads=[{"year": 2020}])
    reopened = Collection.open(col.path)
    assert reopened.payload_fields == {"lang": "string"} and len(reopened) == 1
    assert (
        reopened.backend.version > version
    )  # undone by a restore commit, not by rewriting history
