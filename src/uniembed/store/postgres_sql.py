"""The SQL of the PostgreSQL home (store/postgres.py): its constants, parameter checks, tables,
vector indexes, payload columns, filters compiled to SQL with bound parameters, rows copied in."""

from __future__ import annotations

import json
import re

import numpy as np

from uniembed.errors import ConflictError, InputError
from uniembed.store.backend import ARROW_TYPES, ID, PAYLOAD, TEXT, payload_column, vector_column
from uniembed.store.filters import Condition
from uniembed.store.meta import CollectionMeta

META_TABLE = "uniembed_collections"
TABLE_PREFIX = "uniembed_items_"
NAME = re.compile(r"[a-z_][a-z0-9_]{0,46}")  # the table name stays within PostgreSQL's 63 bytes
TEXT_CONFIG = "english"
INDEXES = {("exact", "none"), ("hnsw", "none"), ("hnsw", "half"), ("hnsw", "binary")}
DEFAULT_PARAMS = {"m": 16, "ef_construction": 64, "ef_search": 100, "rescore": 4}
PARAM_RANGES = {
    "m": (2, 100),
    "ef_construction": (4, 1000),
    "ef_search": (1, 1000),
    "rescore": (1, 100),
}
BUILD_MEMORY = "1GB"  # maintenance_work_mem for an index built after a bulk load
MAX_INDEXED_DIM = {"none": 2000, "half": 4000, "binary": 64000}  # pgvector's HNSW limits per type
SQL_TYPES = {"string": "text", "int": "bigint", "float": "double precision", "bool": "boolean"}
KINDS = {"text": "string", "bigint": "int", "double precision": "float", "boolean": "bool"}
OPERATORS = {"=": "=", "!=": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">="}


def compile_filter(conditions: list[Condition]):
    """The conditions as a psycopg SQL expression with placeholders, and its parameters. Column
    names are quoted identifiers of known payload fields; values only ever travel as parameters."""
    from psycopg import sql

    if not conditions:
        return None, []
    parts, params = [], []
    for c in conditions:
        column = sql.Identifier(payload_column(c.field))
        if c.op == "exists":
            parts.append(sql.SQL("{} IS NOT NULL" if c.value else "{} IS NULL").format(column))
        elif c.op == "in":
            if not c.value:
                parts.append(sql.SQL("FALSE"))
            else:
                parts.append(sql.SQL("{} = ANY(%s)").format(column))
                params.append(list(c.value))
        else:
            parts.append(sql.SQL("{} {} %s").format(column, sql.SQL(OPERATORS[c.op])))
            params.append(c.value)
    return sql.SQL(" AND ").join(parts), params


def check_params(index: str, given: dict | None) -> dict:
    if given is not None and not isinstance(given, dict):
        raise InputError(f"index_params must be a dict, got {type(given).__name__}")
    given = dict(given or {})
    if index == "exact" and given:
        raise InputError(f"index 'exact' takes no parameters, got {sorted(given)}")
    unknown = sorted(set(given) - set(PARAM_RANGES))
    if unknown:
        raise InputError(
            f"unknown index parameter(s) {unknown} for the postgresql backend; known: {sorted(PARAM_RANGES)}"
        )
    for key, value in given.items():
        low, high = PARAM_RANGES[key]
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise InputError(
                f"index parameter {key} must be an integer in [{low}, {high}], got {value!r}"
            )
    merged = {**DEFAULT_PARAMS, **given} if index == "hnsw" else {}
    if index == "hnsw" and merged["ef_construction"] < 2 * merged["m"]:
        raise InputError(
            f"ef_construction ({merged['ef_construction']}) must be at least 2 * m ({2 * merged['m']})"
        )
    return merged


SEARCH_TIME = ("ef_search", "rescore")


def check_search_params(index: str, given: dict | None) -> dict:
    if not given:
        return {}
    if index != "hnsw":
        raise InputError(f"search_params tune an hnsw index; this collection's index is {index!r}")
    unknown = sorted(set(given) - set(SEARCH_TIME)) if isinstance(given, dict) else None
    if unknown is None or unknown:
        raise InputError(f"search_params may set {list(SEARCH_TIME)}, got {given!r}")
    return {key: value for key, value in check_params(index, given).items() if key in given}


def create_tables(conn, name: str, meta: CollectionMeta) -> None:
    """The collection's row, table, text index and vector indexes, in one transaction."""
    import dataclasses

    import psycopg
    from psycopg import sql

    table = sql.Identifier(TABLE_PREFIX + name)
    with conn.transaction():
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {META_TABLE} (name text PRIMARY KEY, meta jsonb NOT NULL, "
            "version bigint NOT NULL DEFAULT 0)"
        )
        try:
            conn.execute(
                f"INSERT INTO {META_TABLE} (name, meta) VALUES (%s, %s)",
                (name, json.dumps(dataclasses.asdict(meta))),
            )
        except psycopg.errors.UniqueViolation:
            raise ConflictError(f"collection {name!r} already exists in this database") from None
        vectors = sql.SQL(", ").join(
            sql.SQL("{} vector({})").format(sql.Identifier(vector_column(f)), sql.Literal(d))
            for f, d in meta.fields.items()
        )
        conn.execute(
            sql.SQL("DROP TABLE IF EXISTS {}").format(table)
        )  # a leftover of a dropped row
        conn.execute(
            sql.SQL(
                "CREATE TABLE {t} (id text PRIMARY KEY, text text, payload text, {v}, "
                "tsv tsvector GENERATED ALWAYS AS (to_tsvector({c}, coalesce(text, ''))) STORED)"
            ).format(t=table, v=vectors, c=sql.Literal(TEXT_CONFIG))
        )
        conn.execute(sql.SQL("CREATE INDEX ON {} USING gin (tsv)").format(table))
        for statement in vector_index_statements(TABLE_PREFIX + name, meta).values():
            conn.execute(statement)


def vector_index_statements(table: str, meta: CollectionMeta) -> dict:
    """{field: CREATE INDEX statement} for the collection's HNSW indexes (none for exact)."""
    from psycopg import sql

    if meta.index != "hnsw":
        return {}
    options = sql.SQL("WITH (m = {}, ef_construction = {})").format(
        sql.Literal(meta.index_params["m"]), sql.Literal(meta.index_params["ef_construction"])
    )
    statements = {}
    for field, dim in meta.fields.items():
        column, d = sql.Identifier(vector_column(field)), sql.Literal(dim)
        target = {
            "none": sql.SQL("{} vector_ip_ops").format(column),
            "half": sql.SQL("(({}::halfvec({}))) halfvec_ip_ops").format(column, d),
            "binary": sql.SQL("((binary_quantize({})::bit({}))) bit_hamming_ops").format(column, d),
        }
        statements[field] = sql.SQL("CREATE INDEX ON {} USING hnsw ({}) {}").format(
            sql.Identifier(table), target[meta.quantize], options
        )
    return statements


def vector_indexes(conn, table: str, meta: CollectionMeta) -> dict[str, list[str]]:
    """{field: names of the HNSW indexes on its column} as the database has them now."""
    rows = conn.execute(
        "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s", (table,)
    ).fetchall()
    return {
        field: [
            name
            for name, definition in rows
            if "USING hnsw" in definition and re.search(rf"\b{vector_column(field)}\b", definition)
        ]
        for field in meta.fields
    }


def read_payload_columns(conn, table: str) -> dict[str, str]:
    rows = conn.execute(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_name = %s AND column_name LIKE 'p\\_%%' ORDER BY ordinal_position",
        (table,),
    )
    return {column[len("p_") :]: KINDS[kind] for column, kind in rows}


def add_payload_column(conn, table: str, key: str, kind: str) -> None:
    from psycopg import sql

    conn.execute(
        sql.SQL("ALTER TABLE {} ADD COLUMN {} {}").format(
            sql.Identifier(table), sql.Identifier(payload_column(key)), sql.SQL(SQL_TYPES[kind])
        )
    )


def arrow_schema(meta: CollectionMeta, types: dict[str, str]):
    import pyarrow as pa

    columns = [
        pa.field(ID, pa.string()),
        pa.field(TEXT, pa.string()),
        pa.field(PAYLOAD, pa.string()),
    ]
    columns += [
        pa.field(vector_column(f), pa.list_(pa.float32(), d)) for f, d in meta.fields.items()
    ]
    columns += [pa.field(payload_column(key), ARROW_TYPES[kind]) for key, kind in types.items()]
    return pa.schema(columns)


def copy_rows(
    conn, table: str, rows, meta: CollectionMeta, types: dict[str, str], *, upsert: bool
) -> None:
    """COPY the rows (binary) into a temporary table, then one INSERT ... SELECT into the
    collection's table; upsert replaces matched rows whole (ON CONFLICT DO UPDATE)."""
    from psycopg import sql

    names = rows.column_names
    kinds = [
        "text",
        "text",
        "text",
        *("vector" for _ in meta.fields),
        *(SQL_TYPES[types[n[len("p_") :]]] for n in names[3 + len(meta.fields) :]),
    ]
    staging = sql.Identifier("uniembed_staging")
    columns = sql.SQL(", ").join(map(sql.Identifier, names))
    conn.execute(
        sql.SQL("CREATE TEMP TABLE {} ({}) ON COMMIT DROP").format(
            staging,
            sql.SQL(", ").join(
                sql.SQL("{} {}").format(sql.Identifier(n), sql.SQL(k)) for n, k in zip(names, kinds)
            ),
        )
    )
    values = [
        rows.column(n).to_pylist()
        if not n.startswith("vec_")
        else rows.column(n).combine_chunks().flatten().to_numpy().reshape(len(rows), -1)
        for n in names
    ]
    with conn.cursor().copy(
        sql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT BINARY)").format(staging, columns)
    ) as copy:
        copy.set_types(kinds)
        for i in range(len(rows)):
            copy.write_row([column[i] for column in values])
    insert = sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {}").format(
        sql.Identifier(table), columns, columns, staging
    )
    if upsert:
        updates = sql.SQL(", ").join(
            sql.SQL("{} = EXCLUDED.{}").format(sql.Identifier(n), sql.Identifier(n))
            for n in names
            if n != ID
        )
        insert = insert + sql.SQL(" ON CONFLICT (id) DO UPDATE SET ") + updates
    conn.execute(insert)


def as_array(value) -> np.ndarray:
    """A float32 array from what psycopg returns for a vector column (pgvector's Vector, or numpy)."""
    return np.asarray(value.to_numpy() if hasattr(value, "to_numpy") else value, dtype=np.float32)
