"""Collections behind the HTTP API: one sub-folder of the collections root per collection.

Names are checked against a strict pattern before they touch the filesystem (no path
traversal). Open collections are kept; each has a lock, because one Collection object is not
meant for concurrent writers, and the service runs every collection call on a worker thread.
"""
from __future__ import annotations

import re
import shutil
import threading
from pathlib import Path

from uniembed.serve.api_errors import ApiError

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
META_FILE = "collection.json"


def check_name(name: str) -> str:
    if not isinstance(name, str) or not NAME.match(name):
        raise ApiError(400, f"collection name {name!r} is not allowed: use 1-64 letters, digits, '_' or '-', "
                       "starting with a letter or digit", param="name", code="invalid_collection_name")
    return name


class CollectionRegistry:
    def __init__(self, root: Path, encoder_provider):
        self.root = Path(root)
        self._encoder = encoder_provider  # () -> the served Encoder, or None while it loads
        self._open: dict[str, object] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if NAME.match(p.name) and (p / META_FILE).is_file())

    def lock(self, name: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(name, threading.Lock())

    def create(self, name: str, *, index: str, quantize: str, dim: int | None, vectors_only: bool,
               fields: list[str] | None, index_params: dict | None, **multivector):
        from uniembed.store.collection import Collection

        path = self.root / check_name(name)
        if path.exists():
            raise ApiError(409, f"collection {name!r} already exists", param="name", code="collection_exists")
        model = None
        if not vectors_only:
            model = self._encoder()
            if model is None:
                raise ApiError(503, "the model is still loading; retry when /ready answers 200", code="not_ready")
        elif dim is None:
            raise ApiError(400, "a vectors-only collection needs dim", param="dim")
        self.root.mkdir(parents=True, exist_ok=True)
        with self.lock(name):
            collection = Collection.create(path, model=model, dim=dim, fields=fields, index=index,
                                           quantize=quantize, index_params=index_params, **multivector)
            with self._guard:
                self._open[name] = collection
        return collection

    def get(self, name: str):
        from uniembed.store.collection import Collection
        from uniembed.store.meta import read_meta

        path = self.root / check_name(name)
        with self._guard:
            if name in self._open:
                return self._open[name]
        if not (path / META_FILE).is_file():
            raise ApiError(404, f"no collection named {name!r}", param="name", code="collection_not_found")
        encoder = self._encoder()
        if encoder is not None and read_meta(path)[0].fingerprint != encoder.fingerprint:
            encoder = None  # made by another model: the collection loads its own on first text query
        collection = Collection.open(path, model=encoder)  # the served model made it: share it
        with self._guard:
            return self._open.setdefault(name, collection)

    def drop(self, name: str) -> None:
        path = self.root / check_name(name)
        if not (path / META_FILE).is_file():
            raise ApiError(404, f"no collection named {name!r}", param="name", code="collection_not_found")
        with self.lock(name):
            with self._guard:
                self._open.pop(name, None)
            # rename first, so a crash mid-delete never leaves a half-deleted collection under its name
            doomed = path.with_name(f".deleting-{name}")
            path.rename(doomed)
            shutil.rmtree(doomed, ignore_errors=True)
