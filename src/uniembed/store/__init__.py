"""Collections: the embedded vector store (LanceDB underneath) with in-memory ANN search, or a
PostgreSQL or Milvus database. Every home's rows are Arrow tables, so one of the three extras must
be installed before anything here is imported; the error names them."""
from uniembed._extras import require

require("store", "postgres", "milvus")

from uniembed.store.collection import Collection
from uniembed.store.lock import CollectionLockedError

__all__ = ["Collection", "CollectionLockedError"]
