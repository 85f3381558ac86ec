"""What the Milvus home (store/milvus.py) says to pymilvus: its constants, collection URLs and
connections, the collections' schema and meta rows, index and search parameters, filters compiled
to expressions, literals, batches and decoding."""

from __future__ import annotations

import base64
import json
import re
from urllib.parse import parse_qs, urlsplit

import numpy as np

from uniembed._extras import require
from uniembed.errors import ConflictError, InputError, StoreUnavailableError
from uniembed.store.filters import Condition
from uniembed.store.meta import CollectionMeta
from uniembed.store.rows import (
    MAX_ID_BYTES,
)

META = "uniembed_meta"
PREFIX = "uniembed_"
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,180}")
MAX_VARCHAR = 65_535  # bytes Milvus keeps in one VARCHAR field
MAX_TOPK = 16_384
REQUEST_BYTES = (
    32 * 2**20
)  # rows per insert request are cut to stay well under gRPC's message limit
INDEXES = {
    ("exact", "none"): "FLAT",
    ("hnsw", "none"): "HNSW",
    ("ivf", "none"): "IVF_FLAT",
    ("exact", "binary"): "BIN_FLAT",
    ("ivf", "binary"): "BIN_IVF_FLAT",
}
DEFAULT_PARAMS = {
    "HNSW": {"m": 16, "ef_construction": 128, "ef_search": 128},
    "IVF_FLAT": {"nlist": 128, "nprobe": 16},
    "BIN_IVF_FLAT": {"nlist": 128, "nprobe": 16, "rescore": 4},
    "BIN_FLAT": {"rescore": 4},
    "FLAT": {},
}
PARAM_RANGES = {
    "m": (4, 64),
    "ef_construction": (8, 512),
    "ef_search": (1, 32768),
    "nlist": (1, 65536),
    "nprobe": (1, 65536),
    "rescore": (1, 100),
}
CONSISTENCY = {"session": "Session", "strong": "Strong", "bounded": "Bounded"}


def parse_url(url: str) -> tuple[str, str | None, str, str]:
    """(server uri for MilvusClient, token or None, collection name, the URL to show: no token)."""
    parts = urlsplit(url)
    name = parts.path.strip("/")
    if not parts.hostname or not parts.port:
        raise InputError(
            f"a Milvus collection URL is milvus://host:port/name, got {url.split('?')[0]!r}"
        )
    if not name:
        raise InputError(
            f"a Milvus collection URL names the collection after the port, e.g. "
            f"milvus://127.0.0.1:19530/docs; got {url.split('?')[0]!r}"
        )
    if not NAME.fullmatch(name):
        raise InputError(
            f"collection name {name!r} must be letters, digits and _ (not starting with a digit)"
        )
    token = parse_qs(parts.query).get("token", [None])[0]
    return (
        f"http://{parts.hostname}:{parts.port}",
        token,
        name,
        f"milvus://{parts.hostname}:{parts.port}/{name}",
    )


def connect(uri: str, token: str | None, shown: str):
    require("milvus")
    from pymilvus import MilvusClient

    try:
        return MilvusClient(uri=uri, token=token or "", timeout=10)
    except Exception as exc:
        raise StoreUnavailableError(
            f"cannot connect to Milvus at {shown.rsplit('/', 1)[0]}: {reason(exc)}"
        ) from None


def call_milvus(shown: str, work, *args, **kwargs):
    """Run `work(*args, **kwargs)`, a pymilvus call; its failures become StoreUnavailableError
    naming the server."""
    from pymilvus.exceptions import MilvusException

    try:
        return work(*args, **kwargs)
    except MilvusException as exc:
        raise StoreUnavailableError(
            f"Milvus at {shown.rsplit('/', 1)[0]} failed: {reason(exc)}"
        ) from None


def create_tables(client, name: str, meta: CollectionMeta) -> None:
    from pymilvus import DataType, MilvusClient

    if not client.has_collection(META):
        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("name", DataType.VARCHAR, is_primary=True, max_length=256)
        schema.add_field("meta", DataType.VARCHAR, max_length=MAX_VARCHAR)
        schema.add_field("version", DataType.INT64)
        schema.add_field(
            "vec", DataType.FLOAT_VECTOR, dim=2
        )  # Milvus 2.3 needs a vector field in every collection
        client.create_collection(META, schema=schema)
        index = client.prepare_index_params()
        index.add_index(field_name="vec", index_type="FLAT", metric_type="L2")
        client.create_index(META, index)
        client.load_collection(META)
    if meta_row(client, name) is not None or client.has_collection(PREFIX + name):
        raise ConflictError(f"collection {name!r} already exists in this Milvus")
    kind = INDEXES[(meta.index, meta.quantize)]
    dim = meta.fields[meta.default_field]
    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=True)
    schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=MAX_ID_BYTES)
    schema.add_field("text", DataType.VARCHAR, max_length=MAX_VARCHAR)
    schema.add_field("has_text", DataType.BOOL)
    schema.add_field("payload", DataType.VARCHAR, max_length=MAX_VARCHAR)
    if meta.quantize == "binary":
        schema.add_field("vec", DataType.BINARY_VECTOR, dim=dim)
        schema.add_field("vec_f32", DataType.VARCHAR, max_length=MAX_VARCHAR)
    else:
        schema.add_field("vec", DataType.FLOAT_VECTOR, dim=dim)
    client.create_collection(PREFIX + name, schema=schema)
    index = client.prepare_index_params()
    build = {
        "HNSW": {
            "M": meta.index_params.get("m"),
            "efConstruction": meta.index_params.get("ef_construction"),
        },
        "IVF_FLAT": {"nlist": meta.index_params.get("nlist")},
        "BIN_IVF_FLAT": {"nlist": meta.index_params.get("nlist")},
    }
    index.add_index(
        field_name="vec",
        index_type=kind,
        metric_type="HAMMING" if meta.quantize == "binary" else "IP",
        params=build.get(kind, {}),
    )
    client.create_index(PREFIX + name, index)
    client.load_collection(PREFIX + name)
    import dataclasses

    client.insert(
        META,
        [
            {
                "name": name,
                "meta": json.dumps({**dataclasses.asdict(meta), "payload_fields": {}}),
                "version": 0,
                "vec": [0.0, 0.0],
            }
        ],
    )


def meta_row(client, name: str) -> dict | None:
    if not client.has_collection(META):
        return None
    rows = client.query(
        META,
        filter=f"name == {literal(name)}",
        output_fields=["meta", "version"],
        consistency_level="Strong",
    )
    return rows[0] if rows else None


def index_search_params(kind: str, params: dict, k: int) -> dict:
    if kind == "HNSW":
        return {"ef": max(params["ef_search"], k)}  # Milvus refuses ef below k
    if kind in ("IVF_FLAT", "BIN_IVF_FLAT"):
        return {"nprobe": min(params["nprobe"], params["nlist"])}
    return {}


def check_params(kind: str, given: dict | None) -> dict:
    if given is not None and not isinstance(given, dict):
        raise InputError(f"index_params must be a dict, got {type(given).__name__}")
    given = dict(given or {})
    allowed = DEFAULT_PARAMS[kind]
    unknown = sorted(set(given) - set(allowed))
    if unknown:
        raise InputError(
            f"unknown index parameter(s) {unknown} for Milvus {kind}; known: {sorted(allowed)}"
        )
    for key, value in given.items():
        low, high = PARAM_RANGES[key]
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise InputError(
                f"index parameter {key} must be an integer in [{low}, {high}], got {value!r}"
            )
    return {**allowed, **given}


SEARCH_TIME = ("ef_search", "nprobe", "rescore")


def check_search_params(kind: str, given: dict | None) -> dict:
    if not given:
        return {}
    allowed = [key for key in SEARCH_TIME if key in DEFAULT_PARAMS[kind]]
    if not isinstance(given, dict) or set(given) - set(allowed):
        raise InputError(f"search_params for Milvus {kind} may set {allowed}, got {given!r}")
    return {key: value for key, value in check_params(kind, given).items() if key in given}


def compile_filter(conditions: list[Condition]) -> str:
    """A Milvus boolean expression. Field names come from the collection's checked payload fields;
    values are JSON literals (strings double-quoted with JSON escapes), never pasted text."""
    parts = []
    for c in conditions:
        field = "p_" + c.field
        if not NAME.fullmatch(field):
            raise InputError(f"filter field {c.field!r} cannot be used in a Milvus expression")
        if c.op == "exists":
            parts.append(f"exists {field}" if c.value else f"not (exists {field})")
        elif c.op == "in":
            parts.append(f"{field} in {literal(list(c.value))}" if c.value else "id in []")
        else:
            parts.append(f"{field} {'==' if c.op == '=' else c.op} {literal(c.value)}")
    return " and ".join(f"({p})" for p in parts)


def literal(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(literal(v) for v in value) + "]"
    if isinstance(value, (int, float)):
        return repr(value)
    text = str(value)
    awkward = next((ch for ch in text if ord(ch) < 0x20 and ch not in "\n\t\r"), None)
    if awkward is not None:  # JSON would write \u00XX, which Milvus 2.3's parser does not read
        raise InputError(
            f"filter value {text!r:.60} holds the control character {awkward!r}, which a Milvus "
            "expression cannot hold"
        )
    return json.dumps(
        text, ensure_ascii=False
    )  # "..." with \" \\ \n \t \r escapes; other characters as they are


def batches(rows: list[dict]):
    """Rows in requests of at most REQUEST_BYTES (roughly: the vector and the strings)."""
    batch, size = [], 0
    for row in rows:
        row_bytes = 64 + sum(
            len(v) if isinstance(v, (str, bytes)) else 8 * len(v) if isinstance(v, list) else 8
            for v in row.values()
        )
        if batch and size + row_bytes > REQUEST_BYTES:
            yield batch
            batch, size = [], 0
        batch.append(row)
        size += row_bytes
    if batch:
        yield batch


def floats(encoded: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(encoded), dtype="<f4").astype(np.float32)


def payload_of(entity: dict) -> dict:
    text = entity.get("payload")
    return json.loads(text) if text else {}


def reason(exc: Exception) -> str:
    return " ".join(str(exc).split())[:300]
