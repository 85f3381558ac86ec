"""One contract for every home a collection can have: a folder (LanceDB + in-memory indexes) and a
PostgreSQL + pgvector database (a real server, started on loopback for the test session). The same
calls must give the same hits, the same errors, and write nothing when refused."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import FakeEncoder, KeywordEncoder
from uniembed import InputError
from uniembed.compress import l2_normalize
from uniembed.store import Collection

KEYWORDS = ["bone", "vitamin", "cat", "market", "rain"]
DOCS = {
    "d1": ("vitamin vitamin bone", {"lang": "en", "year": 2020}),
    "d2": ("cat cat", {"lang": "fr", "year": 2018}),
    "d3": ("bone bone rain", {"lang": "en", "year": 2021, "tags": ["x"]}),
    "d4": ("market market market", {"lang": "en"}),
    "d5": ("rain vitamin", {"lang": "de", "year": 2022, "score": 0.5}),
}
_names = itertools.count()


# what an engine lacks, skipped there (the README's backend table says the same)
LACKS = {
    "milvus": {
        "text": "Milvus 2.3 has no full-text search",
        "fields": "Milvus 2.3 keeps one vector field per collection",
        "disk_bytes": "Milvus 2.3 reports no per-collection size",
    }
}
# an index over bits: Milvus 2.3 has no HNSW on binary vectors, its inverted-file index stands in
BINARY_ANN = {"milvus": ("ivf", "binary")}


class Where:
    """Fresh locations for collections in one store: folders, or URLs on a live server."""

    def __init__(self, kind: str, tmp_path, server=None):
        self.kind, self.tmp_path, self.server = kind, tmp_path, server

    def __call__(self):
        name = f"c{next(_names)}"
        return self.tmp_path / name if self.server is None else self.server.url(name)

    def index(self, index: str, quantize: str) -> tuple[str, str]:
        return (
            BINARY_ANN.get(self.kind, (index, quantize))
            if (index, quantize) == ("hnsw", "binary")
            else (index, quantize)
        )


@pytest.fixture(params=["folder", "postgres", "milvus"])
def where(request, tmp_path):
    server = None if request.param == "folder" else request.getfixturevalue(request.param)
    return Where(request.param, tmp_path, server)


def lacks(col_or_where, feature: str) -> None:
    """Skip the rest of a test on a store that lacks `feature`."""
    path = str(getattr(col_or_where, "path", ""))
    kind = getattr(col_or_where, "kind", None) or (
        path.split("://")[0] if "://" in path else "folder"
    )
    reason = LACKS.get(kind, {}).get(feature)
    if reason:
        pytest.skip(reason)


@pytest.fixture
def docs(where) -> Collection:
    col = Collection.create(where(), model=KeywordEncoder(KEYWORDS))
    col.add(list(DOCS), [t for t, _ in DOCS.values()], payloads=[p for _, p in DOCS.values()])
    return col


def vectors_collection(where, n=200, dim=16, index="exact", quantize="none", seed=0):
    vectors = l2_normalize(np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32))
    col = Collection.create(where(), model=None, dim=dim, index=index, quantize=quantize)
    col.add(
        [f"v{i}" for i in range(n)],
        vectors,
        payloads=[{"even": i % 2 == 0, "i": i} for i in range(n)],
    )
    return col, vectors


_shared: dict = {}


def shared_vectors_collection(where):
    """One vectors collection per store for the tests that only read or are refused (creating a
    Milvus collection costs seconds); a refused write that got through fails its own test."""
    if where.kind not in _shared:
        _shared[where.kind] = vectors_collection(where)
    return _shared[where.kind]


def fresh_reader(col) -> Collection:
    """Another reader of the collection that sees other processes' writes at once: a folder
    collection looking for new commits on every call, a Milvus one with strong consistency."""
    if str(col.path).startswith("milvus://"):
        from uniembed.store.milvus import MilvusCollection

        return MilvusCollection.open(col.path, model=KeywordEncoder(KEYWORDS), consistency="strong")
    reader = Collection.open(col.path, model=KeywordEncoder(KEYWORDS))
    reader.refresh_seconds = 0  # folder collections: look for new commits on every call
    return reader


def test_search_returns_hits_with_payloads(docs):
    hits = docs.search("bone", k=2)
    assert [h.id for h in hits] == ["d3", "d1"]
    assert hits[0].payload == {"lang": "en", "year": 2021, "tags": ["x"]}
    assert hits[0].score > hits[1].score


def test_filters_apply_inside_the_search(docs):
    assert [h.id for h in docs.search("bone", k=10, filter="lang=en and year>=2021")] == ["d3"]
    assert {h.id for h in docs.search("bone", k=10, filter={"lang": {"in": ["fr", "de"]}})} == {
        "d2",
        "d5",
    }
    assert [h.id for h in docs.search("rain", k=10, filter="exists(score)")] == ["d5"]
    assert {h.id for h in docs.search("rain", k=10, filter="year<2020.5 and lang!=de")} == {
        "d1",
        "d2",
    }
    assert docs.search("rain", k=10, filter={"year": {"in": []}}) == []


def test_filter_values_are_data_never_sql(docs):
    before = len(docs)
    for hostile in [
        "en' OR '1'='1",
        "en'; DROP TABLE uniembed_collections; --",
        'en" OR 1=1 --',
        "en\\' OR 1=1",
    ]:
        assert docs.search("bone", k=10, filter={"lang": hostile}) == []
        assert docs.search("bone", k=10, filter={"lang": {"in": [hostile, "fr"]}})[0].id == "d2"
    with pytest.raises(InputError, match="does not fit field 'year' of type int"):
        docs.search("bone", filter="year>=2020; DROP TABLE x")
    assert (
        docs.search("bone", filter="lang=en or 1=1) --") == []
    )  # the whole right side is the value
    with pytest.raises(InputError, match="unknown filter field"):
        docs.search("bone", filter={"lang = 'en' OR 1=1 --": "x"})
    assert len(docs) == before and len(docs.search("bone", k=10)) == 5


def test_dense_search_matches_the_exact_oracle(where):
    col, vectors = shared_vectors_collection(where)
    query = vectors[7] + 0.1
    expected = np.argsort(-(vectors @ query))[:5]
    hits = col.search(query, k=5)
    assert [h.id for h in hits] == [f"v{i}" for i in expected]
    np.testing.assert_allclose([h.score for h in hits], (vectors @ query)[expected], atol=1e-5)


@pytest.mark.parametrize(
    ("index", "quantize"), [("exact", "none"), ("hnsw", "none"), ("hnsw", "binary")]
)
def test_selective_filters_return_k_hits_through_the_index(where, index, quantize):
    index, quantize = where.index(index, quantize)
    col, vectors = vectors_collection(where, n=1000, index=index, quantize=quantize)
    hits = col.search(vectors[1], k=10, filter="i>=900")  # 10% of the items match
    assert len(hits) == 10 and all(h.payload["i"] >= 900 for h in hits)
    truth = 900 + np.argsort(-(vectors[900:] @ vectors[1]))[:10]
    recall = len({h.id for h in hits} & {f"v{i}" for i in truth}) / 10
    assert recall >= (1.0 if index == "exact" else 0.7)


def test_text_and_hybrid_modes(docs):
    lacks(docs, "text")
    assert [h.id for h in docs.search("vitamin", k=5, mode="text")][:2] == ["d1", "d5"]
    hybrid = docs.search("vitamin", k=3, mode="hybrid")
    assert hybrid[0].id == "d1" and len(hybrid) == 3
    assert [h.id for h in docs.search("vitamin", k=5, mode="text", filter="lang=de")] == ["d5"]


def test_upsert_replaces_whole_items_and_delete_removes(docs):
    docs.upsert(["d2", "d9"], ["bone bone bone bone", "rain"], payloads=[{"lang": "en"}, None])
    assert docs.search("bone", k=1)[0].id == "d2"
    assert docs.get(["d2"])[0].payload == {"lang": "en"} and len(docs) == 6
    assert "d2" not in {
        h.id for h in docs.search("cat", k=10, filter="exists(year)")
    }  # its old year is gone
    docs.delete(["d2", "unknown"])
    assert "d2" not in {h.id for h in docs.search("bone", k=10)} and len(docs) == 5
    assert docs.get(["d2", "d1"])[0] is None


def test_texts_given_alone_are_embedded_and_kept(where):
    """Issue 31: `add(ids, texts=[...])` embeds the texts (it used to embed nothing and ask for
    texts); with data= the texts are only kept (for text search and get), as before."""
    model = KeywordEncoder(KEYWORDS)
    col = Collection.create(where(), model=model)
    texts = [t for t, _ in DOCS.values()]
    col.add(list(DOCS), texts=texts)
    items = col.get(list(DOCS))
    assert [item.text for item in items] == texts
    expected = model.encode(texts, prompt="document")
    for item, vector in zip(items, expected):
        np.testing.assert_allclose(item.vectors[col.meta.default_field], vector, atol=1e-6)
    with pytest.raises(InputError, match=r"pass the texts to embed \(data=\[\.\.\.\] or texts="):
        col.add(["x"])


def test_get_returns_text_payload_and_vectors(docs):
    item = docs.get(["d5"])[0]
    assert item.text == "rain vitamin" and item.payload["score"] == 0.5
    np.testing.assert_allclose(
        item.vectors["default"],
        docs.model.encode(["rain vitamin"], prompt="document")[0],
        atol=1e-6,
    )


def test_other_readers_see_every_commit_and_versions_grow(docs):
    reader = fresh_reader(docs)
    assert len(reader.search("cat", k=10)) == 5
    before = reader.version
    docs.add(["d6"], ["rain rain rain market"], payloads=[{"lang": "it", "new_field": 1.5}])
    assert reader.search("rain", k=1)[0].id == "d6"
    assert reader.version > before
    assert reader.payload_fields == {
        "lang": "string",
        "year": "int",
        "score": "float",
        "new_field": "float",
    }
    assert [h.id for h in reader.search("rain", k=5, filter="new_field>1")] == ["d6"]


def test_several_vector_fields(where):
    lacks(where, "fields")
    col = Collection.create(where(), model=KeywordEncoder(KEYWORDS), fields=["title", "body"])
    col.add(["a", "b"], {"title": ["cat", "bone"], "body": ["bone bone", "cat cat"]})
    assert col.search("cat", k=1, field="title")[0].id == "a"
    assert col.search("cat", k=1, field="body")[0].id == "b"
    with pytest.raises(InputError, match=r"missing \['body'\]"):
        col.add(["c"], {"title": ["rain"]})


def test_matryoshka_dim_truncates_stored_vectors(where):
    col = Collection.create(where(), model=FakeEncoder(dim=8), dim=4)
    col.add(["a", "b"], ["one", "two"])
    assert col.get(["a"])[0].vectors["default"].shape == (4,)
    assert col.search("one", k=1)[0].id == "a"


@pytest.mark.parametrize(
    ("write", "message"),
    [
        (lambda c, v: c.add(["x"], v[:1, :8]), r"expected vectors of shape \(1, 16\)"),
        (
            lambda c, v: c.add(["x", "y"], np.vstack([v[:1], np.full((1, 16), np.nan)])),
            "vector 1 contains NaN",
        ),
        (lambda c, v: c.add(["x", "x"], v[:2]), r"duplicate ids in one batch: \['x'\]"),
        (lambda c, v: c.add(["x", "v3"], v[:2]), "already in the collection"),
        (
            lambda c, v: c.add(["x"], v[:1], payloads=[{"i": "three"}]),
            "field 'i' is int in this collection, got string",
        ),
        (
            lambda c, v: c.add(["x", "y"], v[:2], payloads=[{"fresh": 1}, {"i": "three"}]),
            "field 'i' is int",
        ),
        (
            lambda c, v: c.add(["x"], v[:1], payloads=[{"bad": float("nan")}]),
            "not JSON-serialisable",
        ),
        (lambda c, v: c.add(["x"], ["a text"]), "holds vectors only"),
        (lambda c, v: c.add([], v[:0]), "ids must not be empty"),
        (lambda c, v: c.add(["x"], v[:1], payloads=["not a dict"]), "payload 0 is str"),
        (lambda c, v: c.add(["x", "y"], [[0.1] * 16, [0.2] * 15]), "vectors must be numbers"),
        (
            lambda c, v: c.add(["x"], v[:1], payloads=[{"big": 2**70}]),
            "beyond the 64-bit integer range",
        ),
        (
            lambda c, v: c.add(["x", "y"], v[:2], payloads=[{"mixed": [1]}, {"mixed": "s"}]),
            "field 'mixed' is string in this batch",
        ),
        # issue 30: what one home could not keep is refused alike on every home
        (
            lambda c, v: c.add(["🦜" * 256 + "x"], v[:1]),
            r"id 0 is 1025 bytes of UTF-8; ids are at most 1024 bytes",
        ),
        (
            lambda c, v: c.add(["x"], v[:1], texts=["nul\x00 in text"]),
            r"text 0 holds the NUL character",
        ),
        (
            lambda c, v: c.add(["x"], v[:1], payloads=[{"s": "a\x00b"}]),
            r"payload 0 holds a string with the NUL",
        ),
        (
            lambda c, v: c.add(["x"], v[:1], payloads=[{"deep": {"k": ["\x00"]}}]),
            r"payload 0 holds a string with the NUL",
        ),
        (
            lambda c, v: c.add(["x"], v[:1], payloads=[{"a" * 61 + "b": 1}]),
            r"of at most 61 characters",
        ),
        (
            lambda c, v: c.add(["x"], v[:1], payloads=[{"nl\n": 1}]),
            r"has the key 'nl\\n': a payload key is what a filter",
        ),
        (lambda c, v: c.add(["x"], v[:1], payloads=[{"a b": 1}]), r"has the key 'a b'"),
        (lambda c, v: c.add(["x"], v[:1], payloads=[{"1st": 1}]), r"not starting with a digit"),
        (
            lambda c, v: c.add(["x"], v[:1], payloads=[{f"k{n}": n for n in range(1001)}]),
            r"at most 1000",
        ),
    ],
)
def test_bad_writes_are_refused_and_write_nothing(where, write, message):
    col, vectors = shared_vectors_collection(where)
    before = (len(col), col.version, col.payload_fields)
    with pytest.raises(InputError, match=message):
        write(col, vectors)
    assert (len(col), col.version, col.payload_fields) == before
    assert col.get(["x"]) == [None]


@pytest.mark.parametrize(
    ("query", "options", "message"),
    [
        (np.zeros(8), {}, r"must have 16 values"),
        (np.full(16, np.inf), {}, "NaN or inf"),
        (np.full(16, np.nan), {}, "NaN or inf"),
        (np.full(16, 3e18, dtype=np.float32), {}, "has norm 1.2e\\+19, over the limit"),
        (np.zeros(16), {"k": 0}, "k must be a positive integer"),
        (np.zeros(16), {"filter": "colour=red"}, "unknown filter field 'colour'"),
        (np.zeros(16), {"mode": "fuzzy"}, "mode must be one of"),
        (np.zeros(16), {"mode": "text"}, "needs a text query"),
        (np.zeros(16), {"field": "nope"}, "unknown vector field 'nope'"),
    ],
)
def test_bad_searches_are_refused(where, query, options, message):
    col, _ = shared_vectors_collection(where)
    with pytest.raises(InputError, match=message):
        col.search(query, **options)


def test_a_collection_of_another_model_refuses_this_one(docs):
    with pytest.raises(InputError, match="was made by model keywords .* cannot be used with it"):
        Collection.open(docs.path, model=FakeEncoder(dim=6))


def test_info_reports_the_facts(where):
    col, _ = shared_vectors_collection(where)
    info = col.info()
    assert (info.count, info.fields, info.payload_fields) == (
        200,
        {"default": 16},
        {"even": "bool", "i": "int"},
    )
    assert info.bytes_per_vector > 0 and info.version == col.version
    lacks(col, "disk_bytes")
    assert info.disk_bytes > 0


# -- strings every home keeps alike (issue 30): one rule for ids, keys, NUL --------------------------
AWKWARD_IDS = [
    "emoji 🦜🎉",
    "𝔘𝔫𝔦",
    "中文标识",
    'quote"d',
    "it's",
    "back\\slash",
    "\\",
    '\\"',
    "tail\\",
    "ünï cödé",
    "a" * 200,
    "🦜" * 256,
]  # the last: 1,024 bytes of UTF-8, the longest id


def test_awkward_ids_are_added_found_fetched_and_deleted_on_every_home(where):
    col = Collection.create(where(), model=None, dim=4)
    vectors = l2_normalize(
        np.random.default_rng(1).normal(size=(len(AWKWARD_IDS), 4)).astype(np.float32)
    )
    col.add(AWKWARD_IDS, vectors, texts=AWKWARD_IDS, payloads=[{"tag": id_} for id_ in AWKWARD_IDS])
    assert [item.id for item in col.get(AWKWARD_IDS)] == AWKWARD_IDS
    assert {h.id for h in col.search(vectors[0], k=len(AWKWARD_IDS))} == set(AWKWARD_IDS)
    for id_ in AWKWARD_IDS:
        assert [h.id for h in col.search(vectors[0], k=3, filter={"tag": id_})] == [id_]
    col.upsert(AWKWARD_IDS[:2], vectors[:2], payloads=[{"tag": "again"}] * 2)
    col.delete(AWKWARD_IDS[2:])
    assert [item.payload if item else None for item in col.get(AWKWARD_IDS[:3])] == [
        {"tag": "again"}
    ] * 2 + [None]
    assert len(col) == 2


@pytest.mark.parametrize(
    "id_", ["nul\x00", "tab\tid", "new\nline", "\r", "bell\x07", "del\x7f", "c1\x85"]
)
def test_ids_with_control_characters_are_refused_on_every_home(where, id_):
    col, vectors = shared_vectors_collection(where)
    version = col.version
    for call in (
        lambda: col.add([id_], vectors[:1]),
        lambda: col.upsert([id_], vectors[:1]),
        lambda: col.get([id_]),
        lambda: col.delete([id_]),
    ):
        with pytest.raises(
            InputError, match=r"id 0 .* holds the control character .*ids may not hold control"
        ):
            call()
    assert col.version == version


def test_the_longest_payload_key_is_a_field_every_home_can_filter_on(where):
    col = Collection.create(where(), model=None, dim=4)
    longest = "k" * 60 + "z"
    col.add(
        ["a", "b"],
        np.eye(4, dtype=np.float32)[:2],
        payloads=[{longest: 1, "k" * 60 + "y": 2}, {longest: 3}],
    )
    assert col.payload_fields == {longest: "int", "k" * 60 + "y": "int"}
    assert [h.id for h in col.search(np.ones(4), k=5, filter={longest: 3})] == ["b"]


def test_a_filter_value_or_text_query_holding_nul_is_refused_on_every_home(docs):
    for spec in ({"lang": "en\x00"}, {"lang": {"in": ["fr", "\x00"]}}):
        with pytest.raises(InputError, match="holds the NUL character"):
            docs.search("bone", filter=spec)
    assert (
        len(docs.search("bone\x00", k=1)) == 1
    )  # a dense query is only embedded: NUL is a character like others
    lacks(docs, "text")
    for mode in ("text", "hybrid"):
        with pytest.raises(InputError, match="the text query holds the NUL character"):
            docs.search("bone\x00", mode=mode)


# -- hypothesis on every home: ids, payload keys and values are kept exactly or refused ------------
any_id = st.one_of(
    st.text(min_size=1, max_size=12), st.sampled_from(AWKWARD_IDS + ["ctl\x01", "nul\x00"])
)
any_key = st.one_of(
    st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,70}", fullmatch=True),
    st.text(max_size=8),
    st.sampled_from(["nl\n", "a b", "été", "k" * 61, "k" * 62]),
)
scalar = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(alphabet=st.characters(blacklist_categories=["Cc", "Cs"]), max_size=8),
    st.sampled_from(["'", '"', "\\", "🦜", "中"]),
)
nested = st.one_of(
    st.lists(st.text(max_size=4), max_size=2),
    st.dictionaries(st.text(max_size=4), st.text(max_size=4), max_size=2),
)
any_payload = st.dictionaries(any_key, st.one_of(scalar, nested, st.none()), max_size=3)
_home_collections: dict = {}
_serial = itertools.count()


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(id_=any_id, payload=any_payload)
def test_any_id_and_payload_is_kept_exactly_or_refused_with_nothing_written(where, id_, payload):
    if where.kind not in _home_collections:
        _home_collections[where.kind] = Collection.create(where(), model=None, dim=4)
    col = _home_collections[where.kind]
    id_ = f"{next(_serial)}{id_}"  # unique, whatever was drawn
    before = (len(col), col.version, col.payload_fields)
    try:
        col.add([id_], np.ones((1, 4), np.float32), payloads=[payload])
    except InputError:
        assert (len(col), col.version, col.payload_fields) == before
        assert not keepable(id_, payload, before[2]), (id_, payload)
        return
    assert keepable(id_, payload, before[2]), (id_, payload)
    assert col.get([id_])[0].payload == payload
    for key, value in payload.items():
        if isinstance(value, (bool, int, float, str)):
            assert id_ in {h.id for h in col.search(np.ones(4), k=len(col), filter={key: value})}, (
                key,
                value,
            )


def keepable(id_: str, payload: dict, fields: dict[str, str]) -> bool:
    """The rules of issue 30, written out again as a plain oracle: no control character in ids, ids
    of at most 1,024 bytes, no NUL in any string, keys that are ASCII identifiers of at most 61
    characters, values that fit
    the collection's typed fields."""
    import re

    if (
        re.search(r"[\x00-\x1f\x7f-\x9f]", id_)
        or len(id_.encode()) > 1024
        or any("\x00" in text for text in strings_in(payload))
    ):
        return False
    kinds = {bool: "bool", int: "int", float: "float", str: "string"}
    for key, value in payload.items():
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key) or len(key) > 61:
            return False
        kind, known = kinds.get(type(value)), fields.get(key)
        if (
            known is not None
            and value is not None
            and kind != known
            and not (known == "float" and kind == "int")
        ):
            return False
    return True


def strings_in(value) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [text for key, inner in value.items() for text in [key, *strings_in(inner)]]
    if isinstance(value, list):
        return [text for inner in value for text in strings_in(inner)]
    return []


@pytest.mark.parametrize("name", ["é", "x" * 41, "1a", "a b", "nl\n", ""])
def test_vector_field_names_follow_one_rule_on_every_home(where, name):
    with pytest.raises(InputError, match="must be an ASCII identifier .* of at most 40 characters"):
        Collection.create(where(), model=None, dim=4, fields=[name])


def test_a_vector_field_named_twice_is_refused(where):
    lacks(where, "fields")
    with pytest.raises(InputError, match=r"vector field names must differ, got \['a', 'a'\]"):
        Collection.create(where(), model=None, dim=4, fields=["a", "a"])


def test_keys_differing_in_case_are_two_fields_on_every_home(where):
    col = Collection.create(where(), model=KeywordEncoder(KEYWORDS))
    col.add(
        ["a", "b"],
        ["cat bone", "cat rain"],
        payloads=[{"Lang": "en", "lang": "fr"}, {"Lang": "fr", "lang": "en"}],
    )
    assert col.payload_fields == {"Lang": "string", "lang": "string"}
    assert [h.id for h in col.search("cat", k=5, filter={"Lang": "en"})] == ["a"]
    assert [h.id for h in col.search("cat", k=5, filter="lang=en")] == ["b"]
    lacks(col, "text")
    assert [h.id for h in col.search("cat", k=5, mode="text", filter={"Lang": "en"})] == ["a"]
    assert [h.id for h in col.search("cat", k=5, mode="hybrid", filter="lang=en")] == ["b"]
