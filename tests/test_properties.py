"""Property-based tests (hypothesis) of what users control: index parameters, filters, payloads and
sequences of writes. Each property: bad input is an InputError and changes nothing; good input
gives what a plain-Python model of it gives. Bounded example counts keep this to seconds."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from uniembed import InputError
from uniembed.index import INDEX_KINDS, create_index
from uniembed.index.base import check_index_params
from uniembed.store import Collection
from uniembed.store.filters import OPERATORS, filter_mask, parse_filter, to_sql

FAST = settings(
    max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), database=None
)
DIM = 8

any_value = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=5),
    st.booleans(),
    st.none(),
    st.sampled_from(["flat", "hnsw", "none", "int8"]),
)


@st.composite
def index_choice(draw):
    kind = draw(st.sampled_from(sorted(INDEX_KINDS)))
    names = sorted(INDEX_KINDS[kind].PARAMS) + ["bogus"]
    small_ints = st.integers(min_value=-3, max_value=300)
    params = draw(
        st.dictionaries(st.sampled_from(names), st.one_of(small_ints, any_value), max_size=4)
    )
    return kind, params


@FAST
@given(choice=index_choice(), n=st.integers(min_value=1, max_value=300))
def test_index_parameters_are_refused_or_build_an_index_that_searches(choice, n):
    kind, params = choice
    try:
        full = check_index_params(kind, params, DIM)
    except InputError:
        return
    vectors = np.random.default_rng(n).normal(size=(n, DIM)).astype(np.float32)
    index = create_index(kind, vectors, full)  # must not abort the process, raise, or hang
    queries = np.random.default_rng(n + 1).normal(size=(2, DIM)).astype(np.float32)
    scores, rows = index.search(queries, 5, vectors)
    assert rows.shape == (2, 5) and ((rows >= -1) & (rows < n)).all()
    assert np.isfinite(scores[rows >= 0]).all()


# -- filters: the numpy mask and the compiled SQL agree with a plain-Python reading ---------------
ROWS = [
    {"lang": "en", "year": 2000, "score": 0.5, "draft": True},
    {"lang": "fr", "year": 2021, "score": -1.25, "draft": False},
    {"lang": "it's", "year": -7, "draft": True},
    {"year": 2**62, "score": 1e300},
    {},
]
TYPES = {"lang": "string", "year": "int", "score": "float", "draft": "bool"}


def reference(row: dict, field: str, op: str, value) -> bool:
    if op == "exists":
        return (field in row) == value
    if field not in row:
        return False
    have = row[field]
    if op == "in":
        return any(have == v for v in value)
    return {
        "=": have == value,
        "!=": have != value,
        "<": have < value,
        "<=": have <= value,
        ">": have > value,
        ">=": have >= value,
    }[op]


filter_value = st.one_of(
    st.integers(min_value=-(2**66), max_value=2**66),
    st.floats(allow_nan=True),
    st.sampled_from(["en", "fr", "it's", "2000", "true", "1e999", "x' OR '1'='1"]),
    st.booleans(),
)


@st.composite
def filter_spec(draw):
    field = draw(st.sampled_from(sorted(TYPES)))
    op = draw(st.sampled_from(OPERATORS))
    if op == "in":
        value = draw(st.lists(filter_value, max_size=3))
    elif op == "exists":
        value = draw(st.booleans())
    else:
        value = draw(filter_value)
    return field, op, value


def columns_of(rows):
    out = {}
    for field, kind in TYPES.items():
        dtype = {"string": object, "int": np.int64, "float": np.float64, "bool": bool}[kind]
        filler = {"string": "", "int": 0, "float": 0.0, "bool": False}[kind]
        out[field] = (
            np.array([r.get(field, filler) for r in rows], dtype=dtype),
            np.array([field in r for r in rows]),
        )
    return out


@FAST
@given(spec=filter_spec())
def test_filters_are_refused_or_match_exactly_what_they_say(spec):
    field, op, value = spec
    try:
        conditions = parse_filter({field: {op: value}}, TYPES)
    except InputError:
        return
    mask = filter_mask(conditions, columns_of(ROWS), len(ROWS))
    # the reference reads the parsed (typed) conditions, so it checks evaluation, not typing
    expected = [all(reference(row, c.field, c.op, c.value) for c in conditions) for row in ROWS]
    assert mask.tolist() == expected
    sql = to_sql(conditions, lambda f: f"p_{f}")
    assert "nan" not in sql.lower() and "inf" not in sql.lower().replace("'", "")


@pytest.fixture(scope="module")
def filter_collection(tmp_path_factory):
    col = Collection.create(tmp_path_factory.mktemp("props") / "f", model=None, dim=DIM)
    vectors = np.random.default_rng(0).normal(size=(len(ROWS), DIM)).astype(np.float32)
    col.add([f"r{i}" for i in range(len(ROWS))], vectors, payloads=ROWS, texts=["word"] * len(ROWS))
    return col


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(spec=filter_spec())
def test_dense_and_text_search_apply_a_filter_alike(filter_collection, spec):
    field, op, value = spec
    try:
        conditions = parse_filter({field: {op: value}}, TYPES)
    except InputError:
        return
    expected = {
        f"r{i}"
        for i, row in enumerate(ROWS)
        if all(reference(row, c.field, c.op, c.value) for c in conditions)
    }
    query = np.ones(DIM, np.float32)
    dense = {h.id for h in filter_collection.search(query, k=10, filter={field: {op: value}})}
    text = {
        h.id
        for h in filter_collection.search("word", k=10, filter={field: {op: value}}, mode="text")
    }
    assert dense == expected and text == expected  # the numpy mask and LanceDB's SQL agree


# -- payloads: stored exactly, or refused with nothing written -----------------------------------
json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=6),
)
json_value = st.recursive(
    json_leaf,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)
payload = st.dictionaries(
    st.one_of(st.text(max_size=6), st.sampled_from(["year", "lang", "nl\n", "a b", "_x"])),
    json_value,
    max_size=4,
)


@settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(payloads=st.lists(payload, min_size=1, max_size=3))
def test_payloads_round_trip_or_are_refused_with_nothing_written(tmp_path_factory, payloads):
    col = Collection.create(tmp_path_factory.mktemp("payloads") / "p", model=None, dim=DIM)
    col.add(["seed"], np.ones((1, DIM), np.float32), payloads=[{"year": 1, "lang": "en"}])
    version, fields = col.backend.version, col.payload_fields
    ids = [f"i{n}" for n in range(len(payloads))]
    try:
        col.add(ids, np.ones((len(ids), DIM), np.float32), payloads=payloads)
    except InputError:
        reopened = Collection.open(col.path)
        assert (
            reopened.backend.version == version
            and reopened.payload_fields == fields
            and len(reopened) == 1
        )
        return
    stored = [item.payload for item in Collection.open(col.path).get(ids)]
    assert stored == payloads
    for name in col.payload_fields:
        assert name.isidentifier() and "\n" not in name


# -- sequences of writes: the collection equals a dict of what was acknowledged -------------------
op = st.tuples(
    st.sampled_from(["add", "upsert", "delete", "search"]),
    st.lists(st.integers(0, 15), min_size=1, max_size=4, unique=True),
)


@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(
    ops=st.lists(op, min_size=1, max_size=12),
    index=st.sampled_from(
        [("exact", "none"), ("exact", "int8"), ("hnsw", "binary"), ("ivfpq", "none")]
    ),
)
def test_any_sequence_of_writes_reads_back_as_a_dict(tmp_path_factory, ops, index):
    col = Collection.create(
        tmp_path_factory.mktemp("seq") / "s", model=None, dim=DIM, index=index[0], quantize=index[1]
    )
    model: dict[str, np.ndarray] = {}
    for step, (action, keys) in enumerate(ops):
        ids = [f"k{k}" for k in keys]
        vectors = np.random.default_rng(step).normal(size=(len(ids), DIM)).astype(np.float32)
        if action == "add":
            if any(i in model for i in ids):
                with pytest.raises(InputError):
                    col.add(ids, vectors)
                continue
            col.add(ids, vectors)
            model.update(zip(ids, vectors))
        elif action == "upsert":
            col.upsert(ids, vectors)
            model.update(zip(ids, vectors))
        elif action == "delete":
            col.delete(ids)
            for i in ids:
                model.pop(i, None)
        else:
            hits = col.search(vectors[0], k=len(model) + 1)
            assert {h.id for h in hits} <= set(model)
            if index == ("exact", "none"):
                assert {h.id for h in hits} == set(model)
                for hit in hits:
                    assert math.isclose(
                        hit.score, float(model[hit.id] @ vectors[0]), rel_tol=1e-4, abs_tol=1e-4
                    )
    assert len(col) == len(model)
    reopened = Collection.open(col.path)
    for item in reopened.get(sorted(model)) if model else []:
        np.testing.assert_allclose(item.vectors["default"], model[item.id], atol=1e-6)
