"""Collections: the embedded vector store (LanceDB underneath) with in-memory ANN search."""
from uniembed.store.collection import Collection
from uniembed.store.lock import CollectionLockedError

__all__ = ["Collection", "CollectionLockedError"]
