"""LanceDB as the store of record: embedded, versioned atomic commits, SQL filters, BM25 search."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from uniembed._extras import require
from uniembed.store.backend import ID, TEXT, directory_bytes, register_backend

TABLE = "items"


def _sql_strings(values: list[str]) -> str:
    return ", ".join("'" + v.replace("'", "''") + "'" for v in values)


@register_backend("lance")
class LanceBackend:
    """One LanceDB table in `path`. Readers see whole commits only; writes are serialised by the
    collection's writer lock."""

    def __init__(self, path: Path, table):
        self.path = Path(path)
        self._table = table

    @classmethod
    def create(cls, path: Path, schema: pa.Schema) -> LanceBackend:
        require("store")
        import lancedb
        from lancedb.index import FTS

        table = lancedb.connect(str(path)).create_table(TABLE, schema=schema)
        table.create_index(TEXT, config=FTS())  # new rows are searched before they are indexed
        return cls(path, table)

    @classmethod
    def open(cls, path: Path) -> LanceBackend:
        require("store")
        import lancedb

        return cls(path, lancedb.connect(str(path)).open_table(TABLE))

    @property
    def version(self) -> int:
        return self._table.version

    @property
    def schema(self) -> pa.Schema:
        return self._table.schema

    def refresh(self) -> int:
        self._table.checkout_latest()
        return self.version

    def checkout(self, version: int) -> None:
        """Read an older version (until the next refresh)."""
        self._table.checkout(version)

    def restore(self, version: int) -> int:
        """Commit a new version whose content is that of `version` (undoing what came after)."""
        self._table.checkout_latest()
        self._table.restore(version)
        return self.version

    def count(self) -> int:
        return self._table.count_rows()

    def insert(self, rows: pa.Table) -> int:
        self._table.add(rows.cast(self.schema))
        return self.version

    def upsert(self, rows: pa.Table) -> int:
        merge = self._table.merge_insert(ID).when_matched_update_all().when_not_matched_insert_all()
        merge.execute(rows.cast(self.schema))
        return self.version

    def delete(self, ids: list[str]) -> int:
        if ids:
            self._table.delete(f"{ID} IN ({_sql_strings(ids)})")
        return self.version

    def add_payload_columns(self, columns: dict[str, pa.DataType]) -> int:
        sql_types = {
            pa.string(): "STRING",
            pa.int64(): "BIGINT",
            pa.float64(): "DOUBLE",
            pa.bool_(): "BOOLEAN",
        }
        self._table.add_columns(
            {name: f"CAST(NULL AS {sql_types[t]})" for name, t in columns.items()}
        )
        return self.version

    def existing_ids(self, ids: list[str]) -> set[str]:
        # IN lists of at most 1,000 ids; callers with large batches keep their own id set
        return set(self.get(ids, [ID]).column(ID).to_pylist()) if ids else set()

    def get(self, ids: list[str], columns: list[str]) -> pa.Table:
        found = []
        for start in range(0, len(ids), 1000):  # keep each SQL IN list short
            chunk = ids[start : start + 1000]
            query = (
                self._table.search()
                .where(f"{ID} IN ({_sql_strings(chunk)})")
                .select(columns)
                .limit(None)
            )
            found.append(query.to_arrow())
        return pa.concat_tables(found) if found else self.schema.empty_table().select(columns)

    def scan(self, columns: list[str]) -> pa.Table:
        return self._table.search().select(columns).limit(None).to_arrow()

    def text_search(self, query: str, k: int, where: str | None) -> list[tuple[str, float]]:
        search = (
            self._table.search(query, query_type="fts", fts_columns=TEXT)
            .select([ID, "_score"])
            .limit(k)
        )
        if where:
            search = search.where(where, prefilter=True)
        result = search.to_arrow()
        return list(zip(result.column(ID).to_pylist(), result.column("_score").to_pylist()))

    def text_index_lag(self) -> int:
        """Rows not yet in the BM25 index (they are still searched, but by a slow full scan)."""
        for index in self._table.list_indices():
            if TEXT in index.columns:
                return int(getattr(index, "num_unindexed_rows", 0) or 0)
        return 0

    def compact(self) -> int:
        self._table.optimize()
        return self.version

    def disk_bytes(self) -> int:
        return directory_bytes(self.path)
