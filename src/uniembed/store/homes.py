"""Which home a collection location names: dispatch above the homes, as lancedb's `connect()` does
above its tables. `Collection.create/open`, the CLI and the service all come through `home_of`.

    "postgresql://user@host/db#name", "postgres://..."   PostgreSQL + pgvector (store/postgres.py)
    "milvus://host:port/name"                            Milvus 2.3 (store/milvus.py)
    anything else                                        a folder (store/folder.py)
"""

from __future__ import annotations

POSTGRES_SCHEMES = ("postgresql", "postgres")
MILVUS_SCHEMES = ("milvus",)


def scheme_of(location: object) -> str | None:
    """The URL scheme of a collection location, lower-cased; None for a folder path."""
    if not isinstance(location, str) or "://" not in location:
        return None
    return location.split("://", 1)[0].lower()


def is_server_location(location: object) -> bool:
    """Whether `location` names a collection on a database server (not a folder)."""
    return scheme_of(location) in POSTGRES_SCHEMES + MILVUS_SCHEMES


def home_of(location: object) -> type:
    """The Collection class (the home) for `location`."""
    scheme = scheme_of(location)
    if scheme in POSTGRES_SCHEMES:
        from uniembed.store.postgres import PgCollection

        return PgCollection
    if scheme in MILVUS_SCHEMES:
        from uniembed.store.milvus import MilvusCollection

        return MilvusCollection
    from uniembed.store.folder import FolderCollection

    return FolderCollection
