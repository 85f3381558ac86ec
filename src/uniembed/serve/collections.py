"""Collections behind the HTTP API: one sub-folder of the collections root per collection, and
collections on database servers (PostgreSQL, Milvus) mounted under a name (`--remote-collection
NAME=URL`): searched, read and written like the others, but created and dropped with the CLI only
(the server never drops a database's collection on an HTTP request).

Names are full-matched against a strict pattern before they touch the filesystem (no path
traversal, no trailing newline). Each name has a readers-writer lock: searches and reads run in
parallel, writes, creates and drops run alone. Collections are opened (and cached) only under
their name's lock and only after checking the folder is there, so a drop racing a first search
can never leave a stale cached object or a half-recreated folder; opening never creates files.
"""

from __future__ import annotations

import re
import shutil
import threading
import uuid
from contextlib import contextmanager
from pathlib import Path

from uniembed.serve.api_errors import ApiError
from uniembed.serve.rwlock import ReadWriteLock

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
META_FILE = "collection.json"


def check_name(name: str) -> str:
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise ApiError(
            400,
            f"collection name {name!r} is not allowed: use 1-64 letters, digits, '_' or '-', "
            "starting with a letter or digit",
            param="name",
            code="invalid_collection_name",
        )
    return name


def _not_found(name: str) -> ApiError:
    return ApiError(404, f"no collection named {name!r}", param="name", code="collection_not_found")


def _mounted(name: str, url: str, action: str) -> ApiError:
    return ApiError(
        409,
        f"collection {name!r} is mounted from a database server: {action} it with the CLI "
        f"(uniembed collection {action} URL), not over HTTP",
        param="name",
        code="collection_mounted",
    )


class CollectionRegistry:
    def __init__(self, root: Path | None, encoder_provider, remote: dict[str, str] | None = None):
        self.root = Path(root) if root is not None else None  # None: mounted collections only
        self.remote = dict(remote or {})  # name -> collection URL
        if self.root is not None:
            clashes = sorted(
                name for name in self.remote if (self.root / name / META_FILE).is_file()
            )
            if clashes:
                from uniembed.errors import InputError

                raise InputError(
                    f"remote collection name(s) {clashes} are also folders in {self.root}: rename one"
                )
        self._encoder = encoder_provider  # () -> the served Encoder, or None while it loads
        self._open: dict[str, object] = {}
        self._locks: dict[str, ReadWriteLock] = {}
        self._guard = threading.Lock()  # for the two dicts above only; never held while waiting

    def names(self) -> list[str]:
        folders = []
        if self.root is not None and self.root.is_dir():
            folders = [
                p.name
                for p in self.root.iterdir()
                if NAME.fullmatch(p.name) and (p / META_FILE).is_file()
            ]
        return sorted({*folders, *self.remote})

    def _lock(self, name: str) -> ReadWriteLock:
        with self._guard:
            return self._locks.setdefault(name, ReadWriteLock())

    @contextmanager
    def reading(self, name: str):
        """The open collection, for searches and reads (in parallel with other readers)."""
        lock = self._lock(check_name(name))
        with lock.reading():
            yield self._opened(name)

    @contextmanager
    def writing(self, name: str):
        """The open collection, for writes (alone)."""
        lock = self._lock(check_name(name))
        with lock.writing():
            yield self._opened(name)

    def _opened(self, name: str):
        """The cached collection, opened on first use; the caller holds the name's lock."""
        from uniembed.store.collection import Collection
        from uniembed.store.meta import read_meta

        if name in self.remote:
            return self._opened_remote(name)
        if self.root is None:
            raise _not_found(name)
        path = self.root / name
        if not (path / META_FILE).is_file():  # gone from disk, whatever the cache says
            with self._guard:
                self._open.pop(name, None)
            raise _not_found(name)
        with self._guard:
            cached = self._open.get(name)
        if cached is not None:
            return cached
        encoder = self._encoder()
        if encoder is not None and read_meta(path)[0].fingerprint != encoder.fingerprint:
            encoder = (
                None  # made by another model: the collection loads its own on first text query
            )
        collection = Collection.open(path, model=encoder)  # the served model made it: share it
        with self._guard:
            return self._open.setdefault(name, collection)

    def _opened_remote(self, name: str):
        """The cached server collection; a collection the database no longer has is 404."""
        from uniembed.errors import NotFoundError
        from uniembed.store.collection import Collection

        with self._guard:
            cached = self._open.get(name)
        if cached is not None:
            return cached
        url = self.remote[name]
        try:
            collection = Collection.open(url)
        except NotFoundError:
            raise _not_found(name) from None
        encoder = self._encoder()
        if encoder is not None and collection.meta.fingerprint == encoder.fingerprint:
            collection = Collection.open(url, model=encoder)  # the served model made it: share it
        with self._guard:
            return self._open.setdefault(name, collection)

    def create(
        self,
        name: str,
        *,
        index: str,
        quantize: str,
        dim: int | None,
        vectors_only: bool,
        fields: list[str] | None,
        index_params: dict | None,
        describe=lambda collection: collection,
        **multivector,
    ):
        """Create the collection and return `describe(collection)`, computed under the name's
        lock: a drop waiting for that lock cannot delete the folder while it is being described."""
        from uniembed.store.collection import Collection

        check_name(name)
        if name in self.remote:
            raise _mounted(name, self.remote[name], "create")
        if self.root is None:
            raise ApiError(
                400,
                "this server has no collections folder (serve --collections DIR): it serves mounted "
                "collections only",
                param="name",
                code="no_collections_folder",
            )
        path = self.root / name
        model = None
        if not vectors_only:
            model = self._encoder()
            if model is None:
                raise ApiError(
                    503,
                    "the model is still loading; retry when /ready answers 200",
                    code="not_ready",
                )
        elif dim is None:
            raise ApiError(400, "a vectors-only collection needs dim", param="dim")
        with self._lock(name).writing():
            if (
                path.exists()
            ):  # checked under the lock: of two concurrent creates, the loser gets 409
                raise ApiError(
                    409,
                    f"collection {name!r} already exists",
                    param="name",
                    code="collection_exists",
                )
            self.root.mkdir(parents=True, exist_ok=True)
            collection = Collection.create(
                path,
                model=model,
                dim=dim,
                fields=fields,
                index=index,
                quantize=quantize,
                index_params=index_params,
                **multivector,
            )
            with self._guard:
                self._open[name] = collection
            return describe(collection)

    def drop(self, name: str) -> None:
        check_name(name)
        if name in self.remote:
            raise _mounted(name, self.remote[name], "drop")
        if self.root is None:
            raise _not_found(name)
        path = self.root / name
        with self._lock(name).writing():  # waits for searches in flight
            with self._guard:
                self._open.pop(name, None)
            if not (path / META_FILE).is_file():
                raise _not_found(name)
            # rename first, so a crash mid-delete never leaves a half-deleted collection under its
            # name; a unique name, so a leftover from an earlier crash is never in the way
            doomed = path.with_name(f".deleting-{name}-{uuid.uuid4().hex[:8]}")
            path.rename(doomed)
        shutil.rmtree(doomed, ignore_errors=True)
