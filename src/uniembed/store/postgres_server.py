"""Connections of the PostgreSQL home (store/postgres.py): collection URLs, a connection per
server reopened after it breaks, and one write transaction with the collection's row locked first,
database errors turned into uniembed's."""

from __future__ import annotations

import threading
from urllib.parse import urlsplit, urlunsplit

from uniembed._extras import require
from uniembed.errors import ConflictError, InputError, NotFoundError, StoreUnavailableError
from uniembed.store.postgres_sql import META_TABLE, NAME


def parse_url(url: str) -> tuple[str, str, str]:
    """(connection URL without the fragment, collection name, the URL to show: no password)."""
    parts = urlsplit(url)
    name = parts.fragment
    if not name:
        raise InputError(
            f"a PostgreSQL collection URL names the collection after '#', e.g. "
            f"postgresql://user@host/db#docs; got {shown_url(url)!r}"
        )
    if not NAME.fullmatch(name):
        raise InputError(
            f"collection name {name!r} in the URL must be lower-case letters, digits and _ "
            "(starting with a letter or _, at most 47 characters)"
        )
    dsn = urlunsplit((parts.scheme, parts.netloc, parts.path, parts.query, ""))
    return dsn, name, shown_url(url)


def shown_url(url: str) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password is not None:
        netloc = netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit((parts.scheme, netloc, parts.path, "", parts.fragment))


def connect(dsn: str, shown: str, *, vector_types: bool = True):
    """A psycopg connection in autocommit mode (with pgvector's types unless `vector_types` is
    False: before CREATE EXTENSION); StoreUnavailableError names the server and PostgreSQL's
    reason when it cannot be had."""
    require("postgres")
    import psycopg
    from pgvector.psycopg import register_vector

    server = shown.split("#")[0]
    try:
        conn = psycopg.connect(dsn, autocommit=True, connect_timeout=10)
    except psycopg.Error as exc:
        raise StoreUnavailableError(
            f"cannot connect to PostgreSQL at {server}: {reason(exc)}"
        ) from None
    if vector_types:
        try:
            register_vector(conn)
        except (psycopg.ProgrammingError, TypeError):
            conn.close()
            raise StoreUnavailableError(
                f"PostgreSQL at {server} has no pgvector extension "
                "(CREATE EXTENSION vector, once, by a superuser)"
            ) from None
    return conn


def reason(exc: Exception) -> str:
    return " ".join(str(exc).split())[:300]


class Server:
    """One connection to one server, used by one thread at a time, reopened after it breaks (a
    server restart): the failed call raises StoreUnavailableError, the next one reconnects."""

    def __init__(self, dsn: str, shown: str, configure):
        self.dsn, self.shown, self.configure = dsn, shown, configure
        self.lock = threading.Lock()
        self._conn = None

    def connection(self):
        if self._conn is None or self._conn.broken or self._conn.closed:
            self._conn = connect(self.dsn, self.shown)
            self.configure(self._conn)
        return self._conn

    def call(self, work):
        import psycopg

        with self.lock:
            try:
                return work(self.connection())
            except psycopg.OperationalError as exc:
                raise StoreUnavailableError(
                    f"PostgreSQL at {self.shown.split('#')[0]} failed: {reason(exc)}"
                ) from None

    def fetch(self, query, params) -> list[tuple]:
        return self.call(lambda conn: conn.execute(query, params).fetchall())

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()


class WriteTransaction:
    """`with WriteTransaction(server, name, where) as conn:` one transaction on the primary, the collection's row
    locked first; database errors become uniembed's errors, and any error rolls everything back."""

    def __init__(self, server: Server, name: str, where: str):
        self.server, self.name, self.where = server, name, where

    def __enter__(self):
        self.server.lock.acquire()
        try:
            conn = self.server.connection()
            self._transaction = conn.transaction()
            self._transaction.__enter__()
        except BaseException:
            self.server.lock.release()
            raise
        try:
            row = conn.execute(
                f"SELECT version FROM {META_TABLE} WHERE name = %s FOR UPDATE",
                (self.name,),
            ).fetchone()
        except BaseException as exc:
            self.__exit__(type(exc), exc, exc.__traceback__)
            raise
        if row is None:
            missing = NotFoundError(f"collection {self.where} no longer exists (dropped)")
            self.__exit__(NotFoundError, missing, None)
            raise missing
        return conn

    def __exit__(self, kind, exc, traceback):
        import psycopg

        where = self.where
        try:
            self._transaction.__exit__(kind, exc, traceback)
        except psycopg.Error as commit_error:  # the commit itself failed
            exc = commit_error
        finally:
            self.server.lock.release()
        if isinstance(exc, psycopg.errors.ReadOnlySqlTransaction):
            raise InputError(
                f"{where} is a read-only server (a replica): write to the primary"
            ) from None
        if isinstance(
            exc, psycopg.errors.UniqueViolation
        ):  # another writer inserted the same id meanwhile
            raise ConflictError(
                f"an id is already in the collection (written concurrently): {exc.diag.message_detail}"
            ) from None
        if isinstance(exc, psycopg.OperationalError):
            raise StoreUnavailableError(
                f"PostgreSQL at {where.split('#')[0]} failed during a write "
                f"(nothing of it was committed): {reason(exc)}"
            ) from None
        if isinstance(exc, psycopg.Error) and kind is None:
            raise StoreUnavailableError(
                f"PostgreSQL at {where.split('#')[0]} refused the commit: {reason(exc)}"
            ) from None
        return False
