"""Collections: the embedded vector store (LanceDB underneath) with in-memory ANN search, or a
PostgreSQL or Milvus database. Every home's rows are Arrow tables: pyarrow, which each home's
extra brings, must be there before anything here is imported (the error names the three extras);
each home checks its own extra when it is used."""

from uniembed._extras import require_module

require_module("pyarrow", "store", "postgres", "milvus")

from uniembed.store.collection import Collection
from uniembed.store.lock import CollectionLockedError

__all__ = ["Collection", "CollectionLockedError"]
