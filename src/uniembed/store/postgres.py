"""A collection that lives in PostgreSQL + pgvector: `Collection.create("postgresql://user@host/db#docs")`.

The same API as a folder collection (add, upsert, delete, get, search with filters, text and
hybrid modes; the same Hit and Item objects and errors), but the database is the store of record
*and* the search engine: HNSW indexes, filters and text search run inside PostgreSQL, so several
processes and machines share one collection, and read replicas spread the searches.

Layout (one database holds many collections):

    uniembed_collections (name text primary key, meta jsonb, version bigint)   one row per collection
    uniembed_items_<name> (id text primary key, text text, payload text (the JSON as given),
                           vec_<field> vector(dim) per vector field,
                           tsv tsvector generated from text (english), p_<key> typed payload columns)

Atomic commits: every write is one transaction that first locks the collection's row (writers
queue; readers never wait), adds new payload columns (DDL is transactional in PostgreSQL), writes
the rows and bumps the version. Readers see all of a write or none of it.

Indexes (index, quantize): exact+none (a scan: exact scores), hnsw+none (`vector_ip_ops`),
hnsw+half (an index on `vec::halfvec`, half the bytes), hnsw+binary (an index on
`binary_quantize(vec)::bit`, 1 bit per dimension, its candidates rescored with the float vectors).
Filtered searches use pgvector's iterative index scan (`hnsw.iterative_scan`), so k hits come back
when k match. Filters are compiled to SQL with bound parameters, never by pasting values.
Text search is PostgreSQL's full-text search (`ts_rank_cd` over a tsvector), not BM25.
Not supported here (a clear error): multi-vector and image collections, int8 and IVF-PQ indexes,
reading an older version.
"""

from __future__ import annotations

import itertools
import json
import re
from contextlib import contextmanager, suppress

import numpy as np

from uniembed.encoders.base import Encoder
from uniembed.errors import ConflictError, InputError, NotFoundError
from uniembed.store.backend import vector_column
from uniembed.store.collection import load_model, model_name, refuse_parts, vector_dim
from uniembed.store.fusion import fuse
from uniembed.store.meta import CollectionMeta
from uniembed.store.postgres_server import (
    Server,
    WriteTransaction,
    connect,
    parse_url,
    shown_url,
)
from uniembed.store.postgres_sql import (
    BUILD_MEMORY,
    DEFAULT_PARAMS,
    INDEXES,
    MAX_INDEXED_DIM,
    META_TABLE,
    TABLE_PREFIX,
    TEXT_CONFIG,
    add_payload_column,
    arrow_schema,
    as_array,
    check_params,
    check_search_params,
    compile_filter,
    copy_rows,
    create_tables,
    read_payload_columns,
    vector_index_statements,
    vector_indexes,
)
from uniembed.store.remote import RemoteCollection
from uniembed.store.rows import (
    build_rows,
    check_ids,
    check_payloads,
    check_vector_fields,
    dump_payloads,
    payload_types,
    vectors_and_texts,
)
from uniembed.types import CollectionInfo, Hit, Item


class PgCollection(RemoteCollection):
    """One collection in a PostgreSQL database (see the module docstring). Open it with
    `Collection.open(url)` or `PgCollection.open(url, read_from=[replica_url, ...])`: searches and
    gets then go to the replicas in turn (they may lag the primary by the replication delay)."""

    backend_name = "postgresql"
    home = "postgresql"
    features = frozenset({"text_search", "read_replicas"})
    parse_url = staticmethod(parse_url)  # (checks a URL without connecting)

    def __init__(
        self,
        url: str,
        meta: CollectionMeta,
        model: Encoder | None,
        read_from: list[str] | None = None,
        search_params: dict | None = None,
    ):
        dsn, self.name, self.path = parse_url(url)
        self.meta = meta
        # what searches use: the collection's parameters, search-time ones overridable per opener
        self.search_params = {
            **meta.index_params,
            **check_search_params(meta.index, search_params),
        }
        self.table = TABLE_PREFIX + self.name
        self._model = model
        self._fields: dict[str, str] | None = None
        self._primary = Server(dsn, self.path, self._configure_search)
        self._readers = [
            Server(
                parse_url(f"{r.split('#')[0]}#{self.name}")[0], shown_url(r), self._configure_search
            )
            for r in (read_from or [])
        ]
        self._next_reader = itertools.cycle(self._readers) if self._readers else None

    # -- creating and opening ----------------------------------------------------------------
    @classmethod
    def create(
        cls,
        url: str,
        *,
        model: str | Encoder | None = "default",
        dim: int | None = None,
        fields: list[str] | None = None,
        index: str = "exact",
        quantize: str = "none",
        index_params: dict | None = None,
        **unsupported,
    ) -> PgCollection:
        refuse_parts(cls, unsupported)
        dsn, name, shown = parse_url(url)
        if (index, quantize) not in INDEXES:
            choices = ", ".join(f"{i}+{q}" for i, q in sorted(INDEXES))
            raise InputError(
                f"index {index!r} with quantize {quantize!r} is not supported by the postgresql backend; "
                f"choose one of: {choices}"
            )
        params = check_params(index, index_params)
        encoder = load_model(model)
        dims = vector_dim(encoder, dim)
        if index == "hnsw" and dims > MAX_INDEXED_DIM[quantize]:
            raise InputError(
                f"pgvector's HNSW index takes at most {MAX_INDEXED_DIM[quantize]} dimensions for "
                f"quantize={quantize!r}; this collection has {dims} (try quantize='half' or 'binary')"
            )
        names = check_vector_fields(fields)
        meta = CollectionMeta(
            model=model_name(model, encoder),
            fingerprint=encoder.fingerprint if encoder else None,
            fields={n: dims for n in names},
            index=index,
            index_params=params,
            quantize=quantize,
            dim=dim if encoder else None,
            backend="postgresql",
        )
        conn = connect(dsn, shown, vector_types=False)
        try:
            create_tables(conn, name, meta)
        finally:
            conn.close()
        return cls(url, meta, encoder)

    @classmethod
    def open(
        cls,
        url: str,
        *,
        model: Encoder | None = None,
        read_from: list[str] | None = None,
        search_params: dict | None = None,
    ) -> PgCollection:
        """Open a collection; `read_from` lists replica URLs for searches and gets; `search_params`
        ({"ef_search": ..., "rescore": ...}) tunes this opener's searches without rebuilding anything."""
        import psycopg

        dsn, name, shown = parse_url(url)
        conn = connect(
            dsn, shown, vector_types=False
        )  # a database without pgvector has no collection either
        try:
            row = conn.execute(f"SELECT meta FROM {META_TABLE} WHERE name = %s", (name,)).fetchone()
        except psycopg.errors.UndefinedTable:
            row = None
        finally:
            conn.close()
        if row is None:
            raise NotFoundError(f"no collection {name!r} in {shown.split('#')[0]}")
        meta = CollectionMeta(**row[0])
        collection = cls(url, meta, None, read_from, search_params)
        if model is not None:
            collection.check_model(model)
            collection._model = model
        return collection

    def drop(self) -> None:
        """Delete the collection: its table and its row, in one transaction."""
        from psycopg import sql

        with self._writing() as conn:
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(self.table)))
            conn.execute(f"DELETE FROM {META_TABLE} WHERE name = %s", (self.name,))

    def close(self) -> None:
        for server in [self._primary, *self._readers]:
            server.close()

    # -- writing ------------------------------------------------------------------------------
    def delete(self, ids) -> int:
        """Remove items by id (unknown ids are ignored). Returns the committed version."""
        from psycopg import sql

        ids = check_ids(ids)
        with self._writing() as conn:
            conn.execute(
                sql.SQL("DELETE FROM {} WHERE id = ANY(%s)").format(sql.Identifier(self.table)),
                (ids,),
            )
            return self._bump(conn)

    def _write(self, mode: str, ids, data, payloads, texts, images) -> int:
        if images is not None:
            raise InputError(
                "images= needs an image collection; the postgresql backend keeps no images"
            )
        ids = check_ids(ids)
        payloads = check_payloads(payloads, len(ids))
        payload_json = dump_payloads(payloads)
        vectors, kept_texts = vectors_and_texts(self.meta.fields, ids, data, texts, self._encode)
        with self._writing() as conn:
            if mode == "insert":
                present = self._present(conn, ids)
                if present:
                    raise ConflictError(
                        f"{len(present)} id(s) already in the collection, e.g. {sorted(present)[:5]}; use upsert"
                    )
            known = read_payload_columns(conn, self.table)
            types = payload_types(payloads, known)
            schema = arrow_schema(self.meta, types)
            rows = build_rows(ids, vectors, kept_texts, payloads, payload_json, types, schema)
            for key in types.keys() - known.keys():
                add_payload_column(conn, self.table, key, types[key])
            copy_rows(conn, self.table, rows, self.meta, types, upsert=mode == "upsert")
            version = self._bump(conn)
        self._fields = None
        return version

    def _writing(self):
        """A transaction holding the collection's row lock: writers queue here, readers never wait."""
        return WriteTransaction(self._primary, self.name, self.path)

    def _bump(self, conn) -> int:
        return conn.execute(
            f"UPDATE {META_TABLE} SET version = version + 1 WHERE name = %s RETURNING version",
            (self.name,),
        ).fetchone()[0]

    def _present(self, conn, ids: list[str]) -> set[str]:
        from psycopg import sql

        query = sql.SQL("SELECT id FROM {} WHERE id = ANY(%s)").format(sql.Identifier(self.table))
        return {row[0] for row in conn.execute(query, (ids,))}

    # -- reading ------------------------------------------------------------------------------
    def get(self, ids) -> list[Item | None]:
        """The stored items, in the order of `ids` (None for an unknown id)."""
        from psycopg import sql

        ids = check_ids(ids)
        vector_columns = [vector_column(f) for f in self.meta.fields]
        query = sql.SQL("SELECT id, text, payload, {} FROM {} WHERE id = ANY(%s)").format(
            sql.SQL(", ").join(map(sql.Identifier, vector_columns)), sql.Identifier(self.table)
        )
        found = {}
        for row in self._read(query, (ids,)):
            vectors = {f: as_array(row[3 + i]) for i, f in enumerate(self.meta.fields)}
            found[row[0]] = Item(row[0], row[1], json.loads(row[2]) if row[2] else {}, vectors)
        return [found.get(id_) for id_ in ids]

    def search(
        self,
        query=None,
        k: int = 10,
        *,
        filter=None,
        field: str | None = None,
        mode: str = "dense",
        query_vector: np.ndarray | None = None,
        image=None,
        image_weight: float = 0.5,
        **multivector,
    ) -> list[Hit]:
        """The k best items for a text or a vector, as Collection.search: mode "dense", "text"
        (PostgreSQL full-text ranking) or "hybrid" (both, fused by reciprocal rank); `filter`
        restricts to matching payloads inside the index scan, so k hits come back when k match."""
        field, k = self._check_search(query, k, mode, field, image, multivector)
        conditions = self._conditions(filter)
        where, params = compile_filter(conditions)
        if mode == "text":
            return self._text_hits(query, k, where, params)
        vector = self._query_vector(query if query_vector is None else query_vector, field)
        depth = max(k, 100) if mode == "hybrid" else k
        dense = self._dense_hits(vector, depth, field, where, params)
        if mode == "dense":
            return dense
        return fuse([dense, self._text_hits(query, depth, where, params)], k)

    def _dense_hits(self, vector: np.ndarray, k: int, field: str, where, params: list) -> list[Hit]:
        from psycopg import sql

        column, dim = sql.Identifier(vector_column(field)), self.meta.fields[field]
        table = sql.Identifier(self.table)
        condition = sql.SQL(" WHERE ") + where if where is not None else sql.SQL("")
        quantize = self.meta.quantize if self.meta.index == "hnsw" else "none"
        if quantize == "none":
            query = sql.SQL(
                "SELECT id, payload, -({col} <#> %s) FROM {t}{w} ORDER BY {col} <#> %s LIMIT %s"
            ).format(col=column, t=table, w=condition)
            return self._hits(self._read(query, [vector, *params, vector, k]))
        # an index over a compressed copy finds candidates; the float vectors score them exactly
        if quantize == "half":
            order = sql.SQL("({col}::halfvec({d})) <#> (%s::halfvec({d}))").format(
                col=column, d=sql.Literal(dim)
            )
            candidates = k
        else:
            order = sql.SQL(
                "(binary_quantize({col})::bit({d})) <~> binary_quantize(%s)::bit({d})"
            ).format(col=column, d=sql.Literal(dim))
            candidates = max(k * self.search_params.get("rescore", DEFAULT_PARAMS["rescore"]), k)
        query = sql.SQL(
            "WITH found AS MATERIALIZED (SELECT id, payload, {col} FROM {t}{w} ORDER BY {o} LIMIT %s) "
            "SELECT id, payload, -({col} <#> %s) AS score FROM found ORDER BY score DESC, id LIMIT %s"
        ).format(col=column, t=table, w=condition, o=order)
        return self._hits(self._read(query, [*params, vector, candidates, vector, k]))

    def _text_hits(self, query: str, k: int, where, params: list) -> list[Hit]:
        from psycopg import sql

        if not isinstance(query, str) or not query.strip():
            raise InputError("a text search needs a non-empty text query")
        condition = sql.SQL(" AND ") + where if where is not None else sql.SQL("")
        # plainto_tsquery ANDs the words; a ranked search wants any of them (OR), as BM25 does
        sql_query = sql.SQL(
            "SELECT id, payload, ts_rank_cd(tsv, q) AS score FROM {t}, "
            "(SELECT replace(plainto_tsquery({c}, %s)::text, '&', '|')::tsquery AS q) AS words "
            "WHERE tsv @@ q{w} ORDER BY score DESC, id LIMIT %s"
        ).format(t=sql.Identifier(self.table), c=sql.Literal(TEXT_CONFIG), w=condition)
        return self._hits(self._read(sql_query, [query, *params, k]))

    @staticmethod
    def _hits(rows) -> list[Hit]:
        return [
            Hit(id_, float(score), json.loads(payload) if payload else {})
            for id_, payload, score in rows
        ]

    def _read(self, query, params) -> list[tuple]:
        """Run a read on the next replica (or the primary when there is none)."""
        server = next(self._next_reader) if self._next_reader is not None else self._primary
        return server.fetch(query, params)

    # -- facts ---------------------------------------------------------------------------------------
    @property
    def payload_fields(self) -> dict[str, str]:
        """Filterable payload field -> type, read from the table's columns (remembered until a write)."""
        return self._known_fields()

    def _read_payload_fields(self) -> dict[str, str]:
        return self._primary.call(lambda conn: read_payload_columns(conn, self.table))

    @property
    def version(self) -> int:
        rows = self._primary.fetch(
            f"SELECT version FROM {META_TABLE} WHERE name = %s", (self.name,)
        )
        row = rows[0] if rows else None
        if row is None:
            raise NotFoundError(f"collection {self.path} no longer exists (dropped)")
        return row[0]

    def __len__(self) -> int:
        from psycopg import sql

        return self._read(
            sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(self.table)), []
        )[0][0]

    def rebuild(self) -> int:
        """VACUUM ANALYZE the table (reclaims deleted rows, refreshes the planner's statistics), and
        build any vector index a bulk load left unbuilt (its process died before the end)."""
        from psycopg import sql

        self._primary.call(
            lambda conn: conn.execute(
                sql.SQL("VACUUM ANALYZE {}").format(sql.Identifier(self.table))
            )
        )
        self._build_missing_indexes()
        return self.version

    @contextmanager
    def bulk_load(self, build_memory: str = BUILD_MEMORY):
        """`with col.bulk_load(): col.add(...)`: fill an *empty* hnsw collection without its vector
        indexes and build them once at the end (pgvector's advice: far faster than growing the
        graph row by row; bench/scale.py measures both). Every add still commits on its own, and
        searches meanwhile are exact scans (right, slower). On a collection that already holds rows
        it changes nothing: dropping a large index to add a few rows would cost more than it saves.
        If the process dies before the end, `rebuild()` builds what is missing.
        build_memory: PostgreSQL's maintenance_work_mem for the build ("1GB"); the build is much
        faster when the graph fits in it."""
        from psycopg import sql

        if not re.fullmatch(r"[1-9][0-9]*(kB|MB|GB)", str(build_memory)):
            raise InputError(f"build_memory must look like '512MB' or '2GB', got {build_memory!r}")
        dropped = False
        if self.meta.index == "hnsw":
            with self._writing() as conn:
                table = sql.Identifier(self.table)
                if conn.execute(
                    sql.SQL("SELECT NOT EXISTS (SELECT 1 FROM {})").format(table)
                ).fetchone()[0]:
                    for names in vector_indexes(conn, self.table, self.meta).values():
                        for name in names:
                            conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(name)))
                            dropped = True
        if not dropped:
            yield self
            return
        try:
            yield self
        except BaseException:
            with suppress(Exception):  # keep the caller's error; rebuild() can build it later
                self._build_missing_indexes(build_memory)
            raise
        self._build_missing_indexes(build_memory)

    def _build_missing_indexes(self, build_memory: str = BUILD_MEMORY) -> None:
        """Build the vector indexes the table lacks, in one transaction holding the collection's row
        (writers wait; readers go on, with exact scans until the commit)."""
        with self._writing() as conn:
            present = vector_indexes(conn, self.table, self.meta)
            missing = [
                statement
                for field, statement in vector_index_statements(self.table, self.meta).items()
                if not present[field]
            ]
            if missing:
                conn.execute(
                    f"SET LOCAL maintenance_work_mem = '{build_memory}'"
                )  # checked by bulk_load's pattern
                for statement in missing:
                    conn.execute(statement)

    def info(self) -> CollectionInfo:
        disk = self._primary.fetch("SELECT pg_total_relation_size(%s)", (self.table,))[0][0]
        dim = self.meta.fields[self.meta.default_field]
        first_stage = {"none": 4 * dim + 8, "half": 2 * dim + 8, "binary": dim / 8 + 8}[
            self.meta.quantize
        ]
        count = len(self)
        return CollectionInfo(
            path=self.path,
            count=count,
            model=self.meta.model,
            fingerprint=self.meta.fingerprint,
            fields=dict(self.meta.fields),
            index=self.meta.index,
            quantize=self.meta.quantize,
            index_params=dict(self.meta.index_params),
            bytes_per_vector=float(first_stage) if count else float("nan"),
            disk_bytes=int(disk),
            version=self.version,
            payload_fields=self.payload_fields,
        )

    def _configure_search(self, conn) -> None:
        """Session settings for this collection's searches: the HNSW candidate list, and iterative
        scans, so a filtered search keeps walking the graph until k rows match."""
        if self.meta.index != "hnsw":
            return
        ef = int(self.search_params.get("ef_search", DEFAULT_PARAMS["ef_search"]))
        conn.execute(
            f"SET hnsw.ef_search = {ef}"
        )  # an int we checked on create: safe to inline (SET takes no parameters)
        conn.execute("SET hnsw.iterative_scan = strict_order")
