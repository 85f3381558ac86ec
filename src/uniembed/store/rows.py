"""Turning what users pass to add/upsert into validated Arrow rows: ids, vectors, text, payloads.

Everything is checked before anything is written, and errors name the item (by index or id).
"""

from __future__ import annotations

import json
import re
from collections import Counter

import numpy as np
import pyarrow as pa

from uniembed._text import encodable
from uniembed.errors import InputError
from uniembed.store.backend import (
    ARROW_TYPES,
    ID,
    IMAGE,
    PAYLOAD,
    TEXT,
    TOKENS,
    payload_column,
    vector_column,
)

INT64 = (-(2**63), 2**63 - 1)

# The rules every home shares (folder, PostgreSQL, Milvus), so an item one home keeps is an item
# every home keeps, and a refusal reads the same everywhere:
# - a payload key is what the filter language can name: an ASCII identifier. 61 characters at
#   most: PostgreSQL cuts identifiers at 63 bytes, and a key's column is "p_" + key.
# - at most MAX_PAYLOAD_FIELDS filterable fields: PostgreSQL tables hold at most 1,600 columns.
# - ids are at most MAX_ID_BYTES of UTF-8 (Milvus keeps no longer primary keys).
# - no stored string holds NUL (PostgreSQL's text cannot), and ids hold no control character at
#   all (Milvus 2.3's expressions, through which ids are fetched and deleted, cannot spell them).
MAX_ID_BYTES = 1024  # Milvus' primary key limit (its VARCHAR max_length), for every home alike
MAX_KEY_CHARS = 61
PAYLOAD_KEY = re.compile(
    rf"[A-Za-z_][A-Za-z0-9_]{{0,{MAX_KEY_CHARS - 1}}}"
)  # full-matched: "$" would accept a newline
MAX_PAYLOAD_FIELDS = 1000
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_NUL_IN_JSON = re.compile(
    r"(?<!\\)(?:\\\\)*\\u0000"
)  # an escaped NUL, not an escaped backslash before "u0000"
VECTOR_FIELD = re.compile(
    r"[A-Za-z_][A-Za-z0-9_]{0,39}"
)  # vector field names: PostgreSQL's column is "vec_" + name


def check_vector_fields(fields: object) -> list[str]:
    """The vector field names of a new collection (default: one, "default"), by the rule every
    home shares: distinct ASCII identifiers of at most 40 characters."""
    names = list(fields) if fields else ["default"]
    for name in names:
        if not isinstance(name, str) or not VECTOR_FIELD.fullmatch(name):
            raise InputError(
                f"vector field name {name!r:.60} must be an ASCII identifier (letters, digits, _; not starting "
                "with a digit) of at most 40 characters"
            )
    if len(set(names)) != len(names):
        raise InputError(f"vector field names must differ, got {names}")
    return names


def check_ids(ids: object) -> list[str]:
    if isinstance(ids, (str, bytes)) or not hasattr(ids, "__len__"):
        raise InputError(f"ids must be a list of strings, got {type(ids).__name__}")
    ids = list(ids)
    if not ids:
        raise InputError("ids must not be empty")
    for i, id_ in enumerate(ids):
        if not isinstance(id_, str) or not id_:
            raise InputError(f"id {i} is {id_!r}: ids must be non-empty strings")
        if not encodable(id_):
            raise InputError(f"id {i} is not valid Unicode (a lone surrogate such as \\ud800)")
        if (
            len(id_) * 4 > MAX_ID_BYTES and len(id_.encode()) > MAX_ID_BYTES
        ):  # the common case skips the encode
            raise InputError(
                f"id {i} is {len(id_.encode())} bytes of UTF-8; ids are at most {MAX_ID_BYTES} bytes"
            )
        control = _CONTROL.search(id_)
        if control:
            raise InputError(
                f"id {i} ({id_!r:.60}) holds the control character {control.group()!r}: ids may not "
                "hold control characters (NUL, tab, newline, ...)"
            )
    duplicates = sorted(id_ for id_, n in Counter(ids).items() if n > 1)
    if duplicates:
        raise InputError(f"duplicate ids in one batch: {duplicates[:10]}")
    return ids


def check_vectors(vectors: object, n: int, dim: int, field: str) -> np.ndarray:
    try:
        array = np.asarray(vectors, dtype=np.float32)
    except (TypeError, ValueError) as exc:  # ragged lists, strings mixed with numbers, dicts...
        raise InputError(
            f"field {field!r}: vectors must be numbers in an ({n}, {dim}) array: {exc}"
        ) from None
    if array.shape != (n, dim):
        raise InputError(
            f"field {field!r}: expected vectors of shape ({n}, {dim}), got {array.shape}"
        )
    bad = np.flatnonzero(~np.isfinite(array).all(axis=1))
    if len(bad):
        raise InputError(
            f"field {field!r}: vector {bad[0]} contains NaN or inf ({len(bad)} bad vectors)"
        )
    check_norms(array, f"field {field!r}: vector")
    return np.ascontiguousarray(array)


# Scores are float32 inner products: with both norms below sqrt(float32 max), |q . v| <= |q| |v|
# stays finite (Cauchy-Schwarz). Larger vectors would score inf or NaN and drop out of results.
MAX_NORM = float(np.sqrt(np.finfo(np.float32).max)) / 2  # about 9.2e18


def check_norms(vectors: np.ndarray, what: str) -> None:
    """InputError naming the first row of `vectors` (n, dim) whose norm would overflow scores."""
    rows = vectors.reshape(-1, vectors.shape[-1]).astype(np.float64)
    squared = np.einsum("ij,ij->i", rows, rows)  # float64: float32 values cannot overflow it
    if (
        not squared.max(initial=0.0) > MAX_NORM * MAX_NORM
    ):  # the common case, cheap: a search checks its query
        return
    norms = np.sqrt(squared)
    big = np.flatnonzero(norms > MAX_NORM)
    if len(big):
        raise InputError(
            f"{what} {big[0]} has norm {norms[big[0]]:.3g}, over the limit of {MAX_NORM:.3g}: "
            "its float32 scores would overflow"
        )


def query_vector(query, dim: int, field: str) -> np.ndarray:
    """A query given as numbers, checked: one vector of `dim` finite values whose norm cannot
    overflow float32 scores; InputError names what is wrong."""
    try:
        vector = np.asarray(query, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise InputError(f"a query is a text or a vector of {dim} numbers: {exc}") from None
    if vector.ndim == 2 and len(vector) > 1:
        raise InputError(
            f"this collection is single-vector: a query is a text or one vector of {dim} values, got "
            f"{len(vector)} vectors (token vectors belong in a multi-vector collection)"
        )
    vector = vector.reshape(-1) if vector.ndim <= 2 else None
    if vector is None or vector.shape != (dim,):
        raise InputError(
            f"query vector must have {dim} values for field {field!r}, got shape {np.shape(query)}"
        )
    squared = float(
        np.dot(vector.astype(np.float64), vector)
    )  # one pass for both checks: float32 values cannot overflow it
    if not np.isfinite(squared):
        raise InputError("query vector contains NaN or inf")
    if squared > MAX_NORM * MAX_NORM:
        check_norms(vector[None, :], "query vector")  # raises, naming the norm
    return vector


def lexical_query(query: str) -> None:
    """A text query matched against stored texts (text and hybrid modes), checked by the rule on
    NUL that stored strings follow (PostgreSQL could not even be sent one)."""
    if "\x00" in query:
        raise InputError(
            "the text query holds the NUL character (\\x00), which no collection stores: "
            "text and hybrid searches cannot match it"
        )


def value_type(value: object) -> str | None:
    """The filterable type of a payload value, or None for values kept only in the JSON."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    return None


def payload_types(payloads: list[dict], known: dict[str, str]) -> dict[str, str]:
    """Types of the filterable fields after this batch (known + new); InputError on a conflict.

    A new key becomes a filterable field when its values are scalars and its name is an
    identifier; nested values (lists, objects) stay in the payload JSON only. A new field seen as
    both int and float is float; an existing int field refuses floats, a float field takes ints.
    """
    types = dict(known)
    for i, payload in enumerate(payloads):
        for key, value in payload.items():
            kind, current = value_type(value), types.get(key)
            if kind == "int" and not INT64[0] <= value <= INT64[1]:
                raise InputError(
                    f"payload {i}: field {key!r} holds {value}, beyond the 64-bit integer range "
                    "(store it as a string or a float)"
                )
            if value is None or kind == current or (current == "float" and kind == "int"):
                continue
            if current is None:
                if kind is not None:
                    types[key] = kind
                continue
            if key not in known and {current, kind} == {"int", "float"}:
                types[key] = "float"
                continue
            got = kind or type(value).__name__
            raise InputError(
                f"payload {i}: field {key!r} is {current} in this collection, got {got} ({value!r:.40})"
            )
    for key in (
        types.keys() - known.keys()
    ):  # a new field: a nested value seen before its first scalar is refused too
        for i, payload in enumerate(payloads):
            value = payload.get(key)
            if value is not None and value_type(value) is None:
                raise InputError(
                    f"payload {i}: field {key!r} is {types[key]} in this batch, got "
                    f"{type(value).__name__} ({value!r:.40})"
                )
    if len(types) > MAX_PAYLOAD_FIELDS and len(types) > len(known):
        new = sorted(types.keys() - known.keys())
        raise InputError(
            f"this write would give the collection {len(types)} filterable payload fields (new: "
            f"{new[:5]}{' ...' if len(new) > 5 else ''}); a collection holds at most {MAX_PAYLOAD_FIELDS}: "
            "keep the rest under one key as a nested object"
        )
    return types


def check_payloads(payloads: object, n: int) -> list[dict]:
    if payloads is None:
        return [{} for _ in range(n)]
    payloads = list(payloads)
    if len(payloads) != n:
        raise InputError(f"got {len(payloads)} payloads for {n} ids")
    for i, payload in enumerate(payloads):
        if payload is None:
            payloads[i] = {}
        elif not isinstance(payload, dict):
            raise InputError(
                f"payload {i} is {type(payload).__name__}, expected a dict (JSON object)"
            )
        elif not all(isinstance(key, str) for key in payload):
            bad = next(key for key in payload if not isinstance(key, str))
            raise InputError(f"payload {i} has the key {bad!r}: payload keys must be strings")
        else:
            bad = next((key for key in payload if not PAYLOAD_KEY.fullmatch(key)), None)
            if bad is not None:
                raise InputError(
                    f"payload {i} has the key {bad!r:.80}: a payload key is what a filter can name, an "
                    f"ASCII identifier (letters, digits, _; not starting with a digit) of at most "
                    f"{MAX_KEY_CHARS} characters; nest other keys inside an object value"
                )
    return payloads


def build_rows(
    ids: list[str],
    vectors: dict[str, np.ndarray],
    texts: list[str | None],
    payloads: list[dict],
    payload_json: list[str],
    types: dict[str, str],
    schema: pa.Schema,
    token_blobs: list[bytes] | None = None,
    images: list[bytes | str | None] | None = None,
) -> pa.Table:
    columns = {
        ID: pa.array(ids, pa.string()),
        TEXT: pa.array(texts, pa.string()),
        PAYLOAD: pa.array(payload_json, pa.string()),
    }
    if token_blobs is not None:
        columns[TOKENS] = pa.array(token_blobs, pa.binary())
    if images is not None:
        columns[IMAGE] = pa.array(images, schema.field(IMAGE).type)
    for field, array in vectors.items():
        columns[vector_column(field)] = pa.FixedSizeListArray.from_arrays(
            pa.array(array.reshape(-1)), array.shape[1]
        )
    for key, kind in types.items():
        values = [p.get(key) for p in payloads]
        if kind == "float":
            values = [float(v) if v is not None else None for v in values]
        columns[payload_column(key)] = pa.array(values, ARROW_TYPES[kind])
    return pa.table({name: columns[name] for name in schema.names if name in columns}).select(
        [name for name in schema.names if name in columns]
    )


def dump_payloads(payloads: list[dict]) -> list[str]:
    """Each payload as JSON; InputError names the first one that cannot be (NaN, sets, objects)."""
    out = []
    for i, payload in enumerate(payloads):
        try:
            text = json.dumps(payload, allow_nan=False, ensure_ascii=False)
        except (TypeError, ValueError) as exc:
            raise InputError(f"payload {i} is not JSON-serialisable: {exc}") from None
        if not encodable(text):
            raise InputError(
                f"payload {i} holds a string that is not valid Unicode (a lone surrogate such as \\ud800)"
            )
        if _NUL_IN_JSON.search(text):
            raise InputError(
                f"payload {i} holds a string with the NUL character (\\x00), which no collection stores"
            )
        out.append(text)
    return out


def vectors_and_texts(
    fields: dict[str, int], ids: list[str], data, texts, encode
) -> tuple[dict[str, np.ndarray], list[str | None]]:
    """Checked vectors per field and the text kept for each item. `data`: texts (embedded with
    `encode(texts, prompt="document")`), an (n, dim) array for the first field, or a dict field -> either.
    `texts` alone (no `data`) are embedded too: `add(ids, texts=[...])` does what it says."""
    n = len(ids)
    data = texts_as_data(data, texts)
    per_field = data if isinstance(data, dict) else {next(iter(fields)): data}
    unknown = sorted(set(per_field) - set(fields))
    missing = sorted(set(fields) - set(per_field))
    if unknown or missing:
        raise InputError(
            f"vector fields: unknown {unknown}, missing {missing}; this collection has {list(fields)}"
        )
    vectors, source = {}, None
    for name, values in per_field.items():
        if values is None:
            raise InputError(
                f"no data for field {name!r}: pass the texts to embed (data=[...] or texts=[...]) "
                f"or an ({n}, {fields[name]}) array of vectors (data=...)"
            )
        if is_texts(values):
            items = list(values)
            if len(items) != n:
                raise InputError(f"field {name!r}: got {len(items)} texts for {n} ids")
            vectors[name] = check_vectors(encode(items, prompt="document"), n, fields[name], name)
            source = source or items
        else:
            vectors[name] = check_vectors(values, n, fields[name], name)
    return vectors, stored_texts(texts, source, n)


def texts_as_data(data, texts):
    """What to embed: `data`, or, when only `texts` were given, the texts themselves (a newcomer's
    `add(ids, texts=[...])` used to embed nothing: `texts=` was only the text kept for BM25)."""
    if data is None and texts is not None and is_texts(list(texts)):
        return list(texts)
    return data


def is_texts(values) -> bool:
    return (
        isinstance(values, (list, tuple))
        and all(isinstance(v, str) for v in values)
        and len(values) > 0
    )


def stored_texts(texts, source: list[str] | None, n: int) -> list[str | None]:
    """The text kept for each item (for BM25 and `get`): `texts` if given, else the embedded texts."""
    stored = list(texts) if texts is not None else source
    if stored is not None and len(stored) != n:
        raise InputError(f"got {len(stored)} texts for {n} ids")
    if stored is not None and not all(t is None or isinstance(t, str) for t in stored):
        raise InputError("texts must be strings (or None)")
    bad = next((i for i, t in enumerate(stored or []) if t is not None and not encodable(t)), None)
    if bad is not None:
        raise InputError(f"text {bad} is not valid Unicode (a lone surrogate such as \\ud800)")
    nul = next((i for i, t in enumerate(stored or []) if t is not None and "\x00" in t), None)
    if nul is not None:
        raise InputError(f"text {nul} holds the NUL character (\\x00), which no collection stores")
    return stored if stored is not None else [None] * n
