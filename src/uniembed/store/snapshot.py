"""The in-memory search side of a collection: ids, payload columns, vectors and indexes of one
table version, rebuilt from the store of record whenever it is stale, never the only copy.

Writes made through the same Collection are applied in place (tombstones for deleted rows,
appends for new ones), so a write does not force a rebuild; `Collection.rebuild()` compacts.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from uniembed.index import VectorIndex, create_index
from uniembed.index.base import exact_search
from uniembed.store.backend import FIELD_PREFIX, ID, PAYLOAD, vector_column
from uniembed.store.filters import Condition, filter_mask
from uniembed.store.multivector import TOKENS, MultiVectorSpec, TokenSets

# Filters that leave at most this many rows are searched exactly: cheaper than walking an index
# that must skip almost everything, and always returns k results when k exist.
EXACT_SUBSET_ROWS = 10_000


def _column_arrays(column: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """(values, present) numpy arrays of a payload column; missing values get a neutral filler."""
    present = column.is_valid().to_numpy(zero_copy_only=False)
    if pa.types.is_string(column.type):
        values = np.array(column.fill_null("").to_pylist(), dtype=object)
    else:
        filler = False if pa.types.is_boolean(column.type) else 0
        values = column.fill_null(filler).to_numpy(zero_copy_only=False)
    return values, present


def _compact_payloads(column: pa.ChunkedArray) -> list[str | None]:
    """Payload JSON per row, with None for empty payloads: one shared object instead of a million
    "{}" strings, and no string to touch when a search returns such a row."""
    return [None if text in (None, "{}") else text for text in column.to_pylist()]


def vectors_of(column: pa.ChunkedArray, dim: int) -> np.ndarray:
    flat = column.combine_chunks().flatten().to_numpy(zero_copy_only=False)
    return np.ascontiguousarray(flat, dtype=np.float32).reshape(-1, dim)


@dataclass
class Snapshot:
    version: int
    ids: list[str]
    payloads: list[str]
    columns: dict[str, tuple[np.ndarray, np.ndarray]]
    vectors: dict[str, np.ndarray]
    alive: np.ndarray
    index_kind: str
    index_params: dict
    indexes: dict[str, VectorIndex] = field(default_factory=dict)
    row_of: dict[str, int] = field(default_factory=dict)
    tokens: TokenSets | None = None  # multi-vector collections: each row's token vectors

    @classmethod
    def from_table(cls, version: int, table: pa.Table, fields: dict[str, int], index_kind: str, index_params: dict,
                   multivector: MultiVectorSpec | None = None) -> "Snapshot":
        ids = table.column(ID).to_pylist()
        columns = {name[len(FIELD_PREFIX):]: _column_arrays(table.column(name)) for name in table.column_names if name.startswith(FIELD_PREFIX)}
        vectors = {f: vectors_of(table.column(vector_column(f)), dim) for f, dim in fields.items()}
        return cls(
            version=version,
            ids=ids,
            payloads=_compact_payloads(table.column(PAYLOAD)),
            columns=columns,
            vectors=vectors,
            alive=np.ones(len(ids), dtype=bool),
            index_kind=index_kind,
            index_params=index_params,
            row_of={id_: row for row, id_ in enumerate(ids)},
            tokens=TokenSets(table.column(TOKENS).to_pylist(), multivector) if multivector else None,
        )

    dead: int = 0  # tombstoned rows, so the hot path need not scan `alive`

    @property
    def dead_fraction(self) -> float:
        return self.dead / len(self.alive) if len(self.alive) else 0.0

    def index(self, field_name: str) -> VectorIndex:
        """The field's index, built on first use."""
        if field_name not in self.indexes:
            self.indexes[field_name] = create_index(self.index_kind, self.vectors[field_name], self.index_params)
        return self.indexes[field_name]

    def allowed_rows(self, conditions: list[Condition]) -> np.ndarray | None:
        """Boolean mask of live rows meeting the conditions; None when every row qualifies."""
        allowed = filter_mask(conditions, self.columns, len(self.ids))
        if self.dead:
            allowed = self.alive if allowed is None else allowed & self.alive
        return allowed

    def search(self, queries: np.ndarray, k: int, field_name: str, conditions: list[Condition]) -> tuple[np.ndarray, np.ndarray]:
        """(scores, rows) of the top k live rows meeting the conditions; rows -1 where fewer exist."""
        allowed = self.allowed_rows(conditions)
        vectors = self.vectors[field_name]
        if allowed is not None and allowed.sum() <= EXACT_SUBSET_ROWS:
            return exact_search(queries, vectors, k, np.flatnonzero(allowed))
        return self.index(field_name).search(queries, k, vectors, allowed)

    def payload(self, row: int) -> dict:
        text = self.payloads[row]
        return json.loads(text) if text is not None else {}

    # -- in-place updates for writes made by this process -------------------------------------
    def delete(self, ids: list[str]) -> None:
        for id_ in ids:
            row = self.row_of.pop(id_, None)
            if row is not None:
                self.alive[row] = False
                self.dead += 1

    def append(self, table: pa.Table, fields: dict[str, int]) -> None:
        start = len(self.ids)
        new_ids = table.column(ID).to_pylist()
        self.ids.extend(new_ids)
        self.payloads.extend(_compact_payloads(table.column(PAYLOAD)))
        for name, (values, present) in self.columns.items():
            new_values, new_present = _column_arrays(table.column(FIELD_PREFIX + name))
            self.columns[name] = (np.concatenate([values, new_values]), np.concatenate([present, new_present]))
        for f, dim in fields.items():
            new_vectors = vectors_of(table.column(vector_column(f)), dim)
            self.vectors[f] = np.vstack([self.vectors[f], new_vectors])
            if f in self.indexes:
                self.indexes[f].add(new_vectors)
        if self.tokens is not None:
            self.tokens.append(table.column(TOKENS).to_pylist())
        self.alive = np.concatenate([self.alive, np.ones(len(new_ids), dtype=bool)])
        self.row_of.update({id_: start + i for i, id_ in enumerate(new_ids)})
