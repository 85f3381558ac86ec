"""The store of record of the folder home: the interface its backends implement.

A backend keeps rows (id, text, payload JSON, typed payload columns, one vector column per field)
with atomic, versioned commits. LanceDB (lance_backend.py) is the one implemented. The folder home
(folder.py, its snapshots and indexes) only talks to this interface. The server homes (PostgreSQL,
Milvus) do not use it: each implements the collection contract (collection.py) directly on its
database, which is store of record and search engine at once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import pyarrow as pa

ID, TEXT, PAYLOAD, TOKENS, IMAGE = "id", "text", "payload", "tokens", "image"
VECTOR_PREFIX, FIELD_PREFIX = "vec_", "p_"

ARROW_TYPES = {"string": pa.string(), "int": pa.int64(), "float": pa.float64(), "bool": pa.bool_()}


def vector_column(field: str) -> str:
    return VECTOR_PREFIX + field


def payload_column(field: str) -> str:
    return FIELD_PREFIX + field


def base_schema(
    fields: dict[str, int], *, tokens: bool = False, image: str | None = None
) -> pa.Schema:
    """id, text, payload JSON, and a fixed-size float32 vector column per named field; with
    `tokens`, a binary column of packed token vectors (multi-vector collections); with `image`
    ("bytes" or "path"), the item's image or its path (image collections, see store/images.py)."""
    columns = [
        pa.field(ID, pa.string(), nullable=False),
        pa.field(TEXT, pa.string()),
        pa.field(PAYLOAD, pa.string()),
    ]
    columns += [
        pa.field(vector_column(name), pa.list_(pa.float32(), dim)) for name, dim in fields.items()
    ]
    if tokens:
        columns.append(pa.field(TOKENS, pa.binary()))
    if image is not None:
        columns.append(pa.field(IMAGE, pa.binary() if image == "bytes" else pa.string()))
    return pa.schema(columns)


class StoreBackend(Protocol):
    """What a store of record must offer. Every write is one atomic commit and returns the new version."""

    @property
    def version(self) -> int: ...

    @property
    def schema(self) -> pa.Schema: ...

    def refresh(self) -> int:
        """Move to the latest committed version (another process may have written) and return it."""

    def checkout(self, version: int) -> None:
        """Read an older version until the next refresh."""

    def restore(self, version: int) -> int:
        """Commit a new version with the content of `version`; returns the new version."""

    def count(self) -> int: ...

    def insert(self, rows: pa.Table) -> int: ...

    def upsert(self, rows: pa.Table) -> int: ...

    def delete(self, ids: list[str]) -> int: ...

    def add_payload_columns(self, columns: dict[str, pa.DataType]) -> int: ...

    def existing_ids(self, ids: list[str]) -> set[str]: ...

    def get(self, ids: list[str], columns: list[str]) -> pa.Table: ...

    def scan(self, columns: list[str]) -> pa.Table:
        """All rows at the current version, in a stable order."""

    def text_search(self, query: str, k: int, where: str | None) -> list[tuple[str, float]]:
        """BM25 over the stored text: (id, score) best first, `where` applied before ranking."""

    def text_index_lag(self) -> int: ...

    def compact(self) -> int: ...

    def disk_bytes(self) -> int: ...


BACKENDS: dict[str, type] = {}


def register_backend(name: str):
    def add(cls: type) -> type:
        BACKENDS[name] = cls
        return cls

    return add


def backend_class(name: str) -> type:
    if name not in BACKENDS:
        from uniembed.errors import InputError

        raise InputError(f"unknown store backend {name!r}; known: {sorted(BACKENDS)}")
    return BACKENDS[name]


def directory_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())
