"""The in-memory search side of a collection: ids, payload columns, vectors and indexes of one
table version, rebuilt from the store of record whenever it is stale, never the only copy.

Writes made through the same Collection are applied in place (tombstones for deleted rows,
appends for new ones), so a write does not force a rebuild; `Collection.rebuild()` compacts.
"""

from __future__ import annotations

import json
import threading

import numpy as np
import pyarrow as pa

from uniembed.index import VectorIndex, create_index
from uniembed.index.base import exact_search, no_results
from uniembed.index.growing import GrowingArray
from uniembed.store.backend import FIELD_PREFIX, ID, PAYLOAD, vector_column
from uniembed.store.filters import Condition, filter_mask
from uniembed.store.multivector import TOKENS, MultiVectorSpec, TokenSets
from uniembed.threads import search_math

# Filters that leave at most this many rows are searched exactly: cheaper than walking an index
# that must skip almost everything, and always returns k results when k exist.
EXACT_SUBSET_ROWS = 10_000
# ... and so are filters that leave less than this share of the collection, however many rows
# that is: exact cost grows with the allowed rows only, while a filtered graph walk degrades.
EXACT_SUBSET_SHARE = 0.05


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


class Snapshot:
    """Search state of one table version. Arrays grow in place (GrowingArray), so applying a
    write costs O(rows written), not O(collection)."""

    def __init__(
        self,
        version: int,
        ids: list[str],
        payloads: list[str | None],
        columns: dict[str, tuple[np.ndarray, np.ndarray]],
        vectors: dict[str, np.ndarray],
        index_kind: str,
        index_params: dict,
        tokens: TokenSets | None = None,
    ):
        self.version = version
        self.ids = ids
        self.payloads = payloads
        self._columns = {
            name: (GrowingArray(v), GrowingArray(p)) for name, (v, p) in columns.items()
        }
        self._vectors = {name: GrowingArray(v) for name, v in vectors.items()}
        self._alive = GrowingArray(np.ones(len(ids), dtype=bool))
        self.dead = 0  # tombstoned rows, so the hot path need not scan `alive`
        self.index_kind = index_kind
        self.index_params = index_params
        self.indexes: dict[str, VectorIndex] = {}
        self._indexed_rows: dict[str, int] = {}  # rows each index was built (trained) on
        self._index_lock = threading.Lock()  # concurrent readers build a missing index once
        self.row_of = {id_: row for row, id_ in enumerate(ids)}
        self.tokens = tokens  # multi-vector collections: each row's token vectors

    @classmethod
    def from_table(
        cls,
        version: int,
        table: pa.Table,
        fields: dict[str, int],
        index_kind: str,
        index_params: dict,
        multivector: MultiVectorSpec | None = None,
    ) -> Snapshot:
        columns = {
            name[len(FIELD_PREFIX) :]: _column_arrays(table.column(name))
            for name in table.column_names
            if name.startswith(FIELD_PREFIX)
        }
        return cls(
            version=version,
            ids=table.column(ID).to_pylist(),
            payloads=_compact_payloads(table.column(PAYLOAD)),
            columns=columns,
            vectors={
                f: vectors_of(table.column(vector_column(f)), dim) for f, dim in fields.items()
            },
            index_kind=index_kind,
            index_params=index_params,
            tokens=TokenSets(table.column(TOKENS).to_pylist(), multivector)
            if multivector
            else None,
        )

    @property
    def alive(self) -> np.ndarray:
        return self._alive.view

    @property
    def live_count(self) -> int:
        return len(self.ids) - self.dead

    @property
    def dead_fraction(self) -> float:
        return self.dead / len(self.ids) if self.ids else 0.0

    def vectors(self, field_name: str) -> np.ndarray:
        return self._vectors[field_name].view

    def index(self, field_name: str) -> VectorIndex:
        """The field's index, built on first use."""
        built = self.indexes.get(field_name)  # the common case, without taking the lock
        if built is not None:
            return built
        with self._index_lock:
            if field_name not in self.indexes:
                vectors = self.vectors(field_name)
                self.indexes[field_name] = create_index(self.index_kind, vectors, self.index_params)
                self._indexed_rows[field_name] = len(vectors)
            return self.indexes[field_name]

    def allowed_rows(self, conditions: list[Condition]) -> np.ndarray | None:
        """Boolean mask of live rows meeting the conditions; None when every row qualifies."""
        if not conditions:  # the common case: skip building the column views
            return self.alive if self.dead else None
        columns = {
            name: (values.view, present.view) for name, (values, present) in self._columns.items()
        }
        allowed = filter_mask(conditions, columns, len(self.ids))
        if self.dead:
            allowed = self.alive if allowed is None else allowed & self.alive
        return allowed

    def count_allowed(self, allowed: np.ndarray | None) -> int:
        return self.live_count if allowed is None else int(np.count_nonzero(allowed))

    def search(
        self, queries: np.ndarray, k: int, field_name: str, allowed: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(scores, rows) of the top k `allowed` rows (a mask from allowed_rows); rows -1 where
        fewer exist. Every query gets k hits when k rows are allowed: when a filter leaves few
        rows, or a small share of the collection, they are searched exactly (an ANN index that
        must skip almost everything finds too few), and any query the index leaves short is
        searched again exactly over the allowed rows. A small search runs its math on the
        calling thread alone (uniembed.threads: it must not fight the encoder for the cores)."""
        with search_math(len(queries)):
            return self._search(queries, k, field_name, allowed)

    def _search(self, queries, k, field_name, allowed):
        vectors = self.vectors(field_name)
        n_allowed = self.count_allowed(allowed)
        if n_allowed == 0:
            return no_results(len(queries), k)
        if allowed is not None and (
            n_allowed <= EXACT_SUBSET_ROWS or n_allowed < EXACT_SUBSET_SHARE * len(self.ids)
        ):
            return exact_search(queries, vectors, k, np.flatnonzero(allowed))
        scores, rows = self.index(field_name).search(queries, k, vectors, allowed)
        expected = min(k, n_allowed)
        if (
            rows[:, expected - 1].min() >= 0
        ):  # hits are sorted, missing ones (-1) last: every query got enough
            return scores, rows
        short = np.flatnonzero((rows[:, :expected] < 0).any(axis=1))
        if len(short):
            subset = None if allowed is None else np.flatnonzero(allowed)
            scores[short], rows[short] = exact_search(queries[short], vectors, k, subset)
        return scores, rows

    def payload(self, row: int) -> dict:
        text = self.payloads[row]
        return json.loads(text) if text is not None else {}

    # -- in-place updates for writes made by this process -------------------------------------
    def delete(self, ids: list[str]) -> None:
        alive = self._alive.view
        for id_ in ids:
            row = self.row_of.pop(id_, None)
            if row is not None:
                alive[row] = False
                self.dead += 1

    def append(self, table: pa.Table, fields: dict[str, int]) -> None:
        start = len(self.ids)
        new_ids = table.column(ID).to_pylist()
        self.ids.extend(new_ids)
        self.payloads.extend(_compact_payloads(table.column(PAYLOAD)))
        for name, (values, present) in self._columns.items():
            new_values, new_present = _column_arrays(table.column(FIELD_PREFIX + name))
            values.append(new_values)
            present.append(new_present)
        for f, dim in fields.items():
            new_vectors = vectors_of(table.column(vector_column(f)), dim)
            self._vectors[f].append(new_vectors)
            self._grow_index(f, new_vectors)
        if self.tokens is not None:
            self.tokens.append(table.column(TOKENS).to_pylist())
        self._alive.append(np.ones(len(new_ids), dtype=bool))
        self.row_of.update({id_: start + i for i, id_ in enumerate(new_ids)})

    def _grow_index(self, field_name: str, new_vectors: np.ndarray) -> None:
        """Add new rows to a built index, or drop a trained one (IVF-PQ codebooks, int8 ranges) once
        the field has doubled since it was trained, to be rebuilt on the next search: a long-lived
        process then searches as well as a fresh open, at amortised O(1) rebuilds per row."""
        with self._index_lock:
            index = self.indexes.get(field_name)
            if index is None:
                return
            if index.TRAINED and len(self._vectors[field_name]) >= 2 * max(
                self._indexed_rows[field_name], 1
            ):
                del self.indexes[field_name]
            else:
                index.add(new_vectors)
