"""Folder collections end to end on fake encoders: what only folders have (locking, reopening,
migrations, index internals). The behaviour every home shares is in test_store_contract.py."""

from __future__ import annotations

import json

import numpy as np
import pytest

from helpers import FakeEncoder, KeywordEncoder
from uniembed import InputError
from uniembed.compress import l2_normalize
from uniembed.store import Collection, CollectionLockedError
from uniembed.store import meta as meta_module
from uniembed.store import snapshot as snapshot_module
from uniembed.store.lock import WriterLock

KEYWORDS = ["bone", "vitamin", "cat", "market", "rain"]
DOCS = {
    "d1": ("vitamin vitamin bone", {"lang": "en", "year": 2020}),
    "d2": ("cat cat", {"lang": "fr", "year": 2018}),
    "d3": ("bone bone rain", {"lang": "en", "year": 2021, "tags": ["x"]}),
    "d4": ("market market market", {"lang": "en"}),
    "d5": ("rain vitamin", {"lang": "de", "year": 2022, "score": 0.5}),
}


@pytest.fixture
def docs(tmp_path) -> Collection:
    col = Collection.create(tmp_path / "docs", model=KeywordEncoder(KEYWORDS))
    col.add(list(DOCS), [t for t, _ in DOCS.values()], payloads=[p for _, p in DOCS.values()])
    return col


def vectors_collection(tmp_path, n=200, dim=16, index="exact", quantize="none", seed=0):
    vectors = l2_normalize(np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32))
    col = Collection.create(
        tmp_path / f"vec-{index}-{quantize}", model=None, dim=dim, index=index, quantize=quantize
    )
    col.add(
        [f"v{i}" for i in range(n)],
        vectors,
        payloads=[{"even": i % 2 == 0, "i": i} for i in range(n)],
    )
    return col, vectors


@pytest.mark.parametrize(
    ("index", "quantize"),
    [("exact", "none"), ("hnsw", "none"), ("hnsw", "binary"), ("exact", "int8"), ("ivfpq", "none")],
)
def test_selective_filters_still_return_k_hits_through_every_index(
    tmp_path, monkeypatch, index, quantize
):
    monkeypatch.setattr(snapshot_module, "EXACT_SUBSET_ROWS", 0)  # force the index path
    col, vectors = vectors_collection(tmp_path, n=400, index=index, quantize=quantize)
    hits = col.search(vectors[1], k=10, filter="even=false")
    assert len(hits) == 10 and all(h.payload["i"] % 2 == 1 for h in hits)
    assert hits[0].id == "v1"


def test_reopened_collection_and_other_readers_see_every_commit(docs):
    reader = Collection.open(docs.path, model=KeywordEncoder(KEYWORDS))
    reader.refresh_seconds = 0
    assert len(reader.search("cat", k=10)) == 5
    docs.add(["d6"], ["rain rain rain market"], payloads=[{"lang": "it"}])
    assert reader.search("rain", k=1)[0].id == "d6"
    assert reader.payload_fields == {"lang": "string", "year": "int", "score": "float"}


def test_a_path_that_is_not_a_collection(tmp_path):
    with pytest.raises(InputError, match="no such collection"):
        Collection.open(tmp_path / "absent")
    (tmp_path / "plain").mkdir()
    with pytest.raises(InputError, match="is not a uniembed collection"):
        Collection.open(tmp_path / "plain")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(InputError, match="already exists and is not empty"):
        Collection.create(tmp_path / "full", model=None, dim=4)


def test_second_writer_gets_a_clear_error_and_readers_are_not_blocked(docs):
    with WriterLock(docs.path / "writer.lock"):
        with pytest.raises(CollectionLockedError, match="is being written by another process"):
            docs.add(["z"], ["cat"])
        assert docs.search("cat", k=1)[0].id == "d2"  # reading works while locked
    docs.add(["z"], ["cat"])  # the lock is released


def test_unsupported_index_combination(tmp_path):
    with pytest.raises(InputError, match="unsupported index 'ivfpq' with quantize 'binary'"):
        Collection.create(tmp_path / "c", model=None, dim=4, index="ivfpq", quantize="binary")
    assert not (tmp_path / "c").exists()


def test_info_reports_the_facts(tmp_path):
    col, _ = vectors_collection(tmp_path, index="exact", quantize="binary")
    info = col.info()
    assert (info.count, info.index, info.bytes_per_vector, info.fields) == (
        200,
        "binary",
        2.0,
        {"default": 16},
    )
    assert info.disk_bytes > 0 and info.payload_fields == {"even": "bool", "i": "int"}


def test_rebuild_compacts_and_keeps_every_item(docs):
    docs.delete(["d1"])
    docs.rebuild()
    assert len(docs) == 4 and {h.id for h in docs.search("bone", k=10)} == {"d2", "d3", "d4", "d5"}


def test_old_schema_versions_are_migrated_and_newer_refused(docs, monkeypatch):
    path = docs.path / "collection.json"
    data = json.loads(path.read_text())
    version_1 = {
        key: value
        for key, value in data.items()
        if key not in ("multivector", "images", "data_dir", "relative")
    } | {"schema_version": 1}
    path.write_text(
        json.dumps(version_1)
    )  # as uniembed wrote it before multi-vector and image collections
    opened = Collection.open(docs.path).meta
    assert (
        opened.multivector is None
        and opened.images is None
        and opened.data_dir == "data"
        and opened.relative is None
    )
    assert (
        json.loads(path.read_text())["schema_version"] == meta_module.SCHEMA_VERSION == 5
    )  # written back
    assert docs.search("bone", k=1)  # and still searchable
    data = {key: value for key, value in version_1.items() if key != "quantize"} | {
        "schema_version": 0
    }
    path.write_text(json.dumps(data))
    monkeypatch.setitem(
        meta_module.MIGRATIONS, 0, lambda d: {**d, "quantize": "none", "schema_version": 1}
    )
    assert Collection.open(docs.path).meta.quantize == "none"  # 0 -> 1 -> ... -> 5, in order
    path.write_text(json.dumps({**data, "schema_version": 99}))
    with pytest.raises(InputError, match="made by a newer uniembed"):
        Collection.open(docs.path)


@pytest.mark.parametrize("batch", [5, 1500])  # a short IN query, and one scan of the ids
def test_existing_ids_are_found_by_a_fresh_reader(tmp_path, batch):
    col, vectors = vectors_collection(tmp_path, n=200)
    fresh = Collection.open(col.path)  # no snapshot: asks the store
    ids = [f"new{i}" for i in range(batch - 1)] + ["v199"]
    new_vectors = np.resize(vectors, (batch, 16))
    with pytest.raises(InputError, match=r"1 id\(s\) already in the collection, e.g. \['v199'\]"):
        fresh.add(ids, new_vectors)
    assert len(fresh) == 200


def test_bulk_text_writes_keep_the_bm25_index_fresh(tmp_path):
    col = Collection.create(tmp_path / "texts", model=FakeEncoder(dim=4))
    col.add([f"t{i}" for i in range(1200)], [f"text number {i}" for i in range(1200)])
    assert col.backend.text_index_lag() == 0  # indexed right after the write, not at query time
    col.add(["small"], ["a small write"])
    assert col.backend.text_index_lag() == 1  # small writes do not pay for a compaction
    assert col.search("small write", k=1, mode="text")[0].id == "small"


def test_payload_field_types_are_inferred_and_enforced():
    from uniembed.store.rows import payload_types

    assert payload_types([{"a": 1}, {"a": 2.5, "b": "x", "c": [1], "d": None}], {}) == {
        "a": "float",
        "b": "string",
    }
    assert payload_types([{"f": 3}], {"f": "float"}) == {"f": "float"}  # ints fit a float field
    with pytest.raises(
        InputError, match="payload 1: field 'n' is int in this collection, got float"
    ):
        payload_types([{"n": 1}, {"n": 1.5}], {"n": "int"})
    with pytest.raises(InputError, match="field 'n' is int in this collection, got list"):
        payload_types([{"n": [1]}], {"n": "int"})
