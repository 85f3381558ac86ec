"""The folder home: a collection in a folder on disk (the contract is store/collection.py).

The store of record is a backend (LanceDB by default): every write is one atomic commit, and an
acknowledged write survives a crash. Search runs on an in-memory Snapshot rebuilt from it.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from uniembed.encoders.base import Encoder
from uniembed.errors import CollectionDamagedError, InputError
from uniembed.store import lance_backend, pending  # noqa: F401  (lance_backend registers the "lance" backend)
from uniembed.store.backend import (
    FIELD_PREFIX,
    ID,
    IMAGE,
    PAYLOAD,
    TEXT,
    StoreBackend,
    backend_class,
    payload_column,
    vector_column,
)
from uniembed.store.collection import (
    Collection,
    check_fingerprint,
    check_search,
    check_text_query,
    own_model,
)
from uniembed.store.filters import parse_filter, to_sql
from uniembed.store.folder_create import create_folder
from uniembed.store.folder_writes import LOCK_FILE, FolderWrites
from uniembed.store.fusion import fuse
from uniembed.store.images import ImageSpec
from uniembed.store.lock import WriterLock
from uniembed.store.meta import META_FILE, CollectionMeta, read_checked_meta, write_meta
from uniembed.store.multivector import (
    MultiVectorSpec,
)
from uniembed.store.parts import (
    ImagePart,
    RelativePart,
    SingleVectors,
    TokenVectors,
)
from uniembed.store.rows import (
    check_ids,
)
from uniembed.store.snapshot import Snapshot
from uniembed.types import CollectionInfo, Hit, Item


class FolderCollection(FolderWrites, Collection):
    home = "folder"
    features = frozenset(
        {"text_search", "multivector", "images", "relative_anchors", "map", "rebuild"}
    )

    def __init__(
        self, path: Path, meta: CollectionMeta, backend: StoreBackend, model: Encoder | None
    ):
        self.path = Path(path)
        self.meta = meta
        self.backend = backend
        self._model = model
        self._query_model = (
            None  # during a model upgrade: the new model through its adapter (queries only)
        )
        self._meta_stamp = _stamp(
            self.path / META_FILE
        )  # to notice an upgrade's finish in another process
        self._snapshot: Snapshot | None = None
        self._id_set: tuple[int, set[str]] | None = (
            None  # (version, every id), for batch writers without a snapshot
        )
        self._checked_at = 0.0
        self.refresh_seconds = 1.0  # how stale a reader may be before it looks for new commits
        # the parts this collection is composed of (store/parts.py)
        spec = MultiVectorSpec(**meta.multivector) if meta.multivector else None
        self.vectors = TokenVectors(self, spec) if spec else SingleVectors(self)
        self.image_part = ImagePart(self, ImageSpec(**meta.images)) if meta.images else None
        anchors = RelativePart.read(self.path, meta)  # None: the model's own vectors
        self.relative_part = RelativePart(self, anchors) if anchors is not None else None
        if model is not None:
            self._model = self._as_stored(model)

    @property
    def multivector(self) -> MultiVectorSpec | None:
        return self.vectors.spec

    @property
    def images(self) -> ImageSpec | None:
        return self.image_part.spec if self.image_part else None

    @property
    def relative_anchors(self) -> list[str] | None:
        return self.relative_part.anchors if self.relative_part else None

    # -- creating and opening ----------------------------------------------------------------
    create = classmethod(create_folder)  # store/folder_create.py

    @classmethod
    def open(cls, path: str | Path, *, model: Encoder | None = None) -> FolderCollection:
        """Open an existing collection. Text queries load the collection's model on first use,
        or use `model`, which must have made the collection's vectors (same fingerprint).
        """
        path = Path(path)
        meta, migrated = read_checked_meta(path)
        if not (
            path / meta.data_dir
        ).is_dir():  # never let the store create an empty table in its place
            raise CollectionDamagedError(
                f"{path}: collection damaged: its {meta.data_dir}/ folder is missing"
            )
        if migrated:
            with WriterLock(path / LOCK_FILE):
                write_meta(path, meta)
        try:
            backend = backend_class(meta.backend).open(path / meta.data_dir)
        except (
            OSError,
            ValueError,
            RuntimeError,
        ) as exc:  # what LanceDB raises for a missing or broken table
            raise CollectionDamagedError(
                f"{path}: collection damaged: its {meta.data_dir}/ cannot be opened "
                f"({type(exc).__name__}: {str(exc).splitlines()[0][:200]})"
            ) from None
        collection = cls(path, meta, backend, None)
        collection._reader_version()  # never start on a column-only commit (see store/pending.py)
        if model is not None and collection.relative_anchors is not None:
            if model.fingerprint == meta.fingerprint:
                collection._model = collection._as_stored(model)
            else:  # another model: its relative vectors share the space; writes keep the collection's model
                collection._query_model = collection._as_stored(model)
        elif model is not None:
            adapter = None
            if model.fingerprint != meta.fingerprint and meta.multivector is None:
                from uniembed.store.upgrade_state import query_adapter

                adapter = query_adapter(
                    path, meta.fingerprint, model.fingerprint
                )  # an upgrade to this model
            if adapter is not None:
                from uniembed.store.upgrade_state import AdaptedQueries

                collection._query_model = AdaptedQueries(model, adapter)
            else:
                collection.check_model(model)
                collection._model = model
        return collection

    def _follow_meta(self) -> None:
        """Reopen when collection.json was replaced since we read it: a model upgrade finished
        (upgrade/finish.py), so the rows, the model and the dimension may all have changed."""
        stamp = _stamp(self.path / META_FILE)
        if stamp == self._meta_stamp or stamp is None:
            return
        meta, _ = read_checked_meta(self.path)
        self._meta_stamp = stamp
        if meta == self.meta:
            return
        self.backend = backend_class(meta.backend).open(self.path / meta.data_dir)
        self.meta, self._snapshot, self._id_set = meta, None, None
        models = [
            m for m in (self._model, getattr(self._query_model, "model", None)) if m is not None
        ]
        self._model = next((m for m in models if m.fingerprint == meta.fingerprint), None)
        self._query_model = None

    @contextlib.contextmanager
    def writing(self):
        """Hold this collection's writer lock (other writers are refused until it is released) and
        yield the latest committed version: the seam for work that changes a collection beyond
        add/upsert/delete, such as a model upgrade's finish (uniembed.upgrade)."""
        with WriterLock(self.path / LOCK_FILE):
            yield self._writer_version()

    def refresh(self) -> None:
        """Re-read collection.json now: another process (or an upgrade's finish) may have switched
        the collection to a new model and data folder. Reads and writes do this by themselves."""
        self._follow_meta()

    def _writer_version(self) -> int:
        """The latest version, after undoing a column-only commit a crashed writer left (we hold
        the writer lock: nobody else is writing)."""
        self._follow_meta()
        latest = self.backend.refresh()
        before = pending.version_before(self.path)
        if before is not None:
            if latest == before + 1:
                latest = self.backend.restore(before)
            pending.end(self.path)
        return latest

    def _reader_version(self) -> int:
        """The latest version a reader may see: never a new column without its rows."""
        self._follow_meta()
        latest = self.backend.refresh()
        before = pending.version_before(self.path)
        if before is not None and latest == before + 1:
            self.backend.checkout(before)
            return before
        return latest

    # -- reading ------------------------------------------------------------------------------
    def get(self, ids) -> list[Item | None]:
        """The stored items, in the order of `ids` (None for an unknown id)."""
        ids = check_ids(ids)
        self._reader_version()
        columns = [ID, TEXT, PAYLOAD, *(vector_column(f) for f in self.meta.fields)]
        columns += [*self.vectors.columns, *(self.image_part.columns if self.image_part else ())]
        table = self.backend.get(ids, columns)
        found = {}
        for row in table.to_pylist():
            vectors = {f: np.asarray(row[vector_column(f)], np.float32) for f in self.meta.fields}
            tokens = self.vectors.tokens_of(row)
            found[row[ID]] = Item(
                row[ID], row[TEXT], _loads(row[PAYLOAD]), vectors, tokens, row.get(IMAGE)
            )
        return [found.get(id_) for id_ in ids]

    def search(
        self,
        query=None,
        k: int = 10,
        *,
        filter=None,
        field: str | None = None,
        mode: str = "dense",
        first_stage: str | None = None,
        candidates: int | None = None,
        token_hits: int | None = None,
        query_vector: np.ndarray | None = None,
        image=None,
        image_weight: float = 0.5,
    ) -> list[Hit]:
        """The k best items for a text or a vector. mode: "dense" (vectors), "text" (BM25 over the
        stored text) or "hybrid" (both, fused by reciprocal rank). `filter` restricts to items whose
        payload matches (see uniembed.store.filters), inside the search: k hits come back when k exist.

        Multi-vector collections take a text or a (tokens, dim) array, rank by exact MaxSim, and
        find what to rank with `first_stage`: "fde" (default: the FDE index's `candidates` best,
        default max(k, 100)), "exact" (every item: the oracle) or "tokens" (the items holding each
        query token's `token_hits` nearest document tokens, default 10).

        query_vector: the text query's vector when the caller has already encoded it (the service
        encodes through its micro-batcher), exactly as the collection's model would have.

        image: search by an image (a path, bytes, a data URI, a PIL image or an array) with an
        image model; with a text `query` too, by both (the item rule of `encode_items`:
        `image_weight` * image + (1 - image_weight) * text, renormalised). Hybrid mode ranks the
        text part by BM25 over the stored captions as well."""
        field, k = check_search(self, query, k, mode, field)
        if image is not None:
            query_vector = self.vectors.image_query(query, image, image_weight, mode)
        elif query is None:
            raise InputError("a search needs a query: a text, a vector, or image=")
        check_text_query(query, mode)
        stage = (first_stage, candidates, token_hits)
        self.vectors.check_stage(*stage)
        snapshot = self.snapshot()  # first: the payload fields are those of the snapshot's version
        conditions = parse_filter(filter, self.payload_fields) if filter else []
        allowed = snapshot.allowed_rows(conditions)
        if (
            snapshot.count_allowed(allowed) == 0
        ):  # the one empty-result path: empty, all deleted, nothing matches
            self.vectors.check_query(query, field, stage)
            return []
        if mode == "text":
            return self._text_hits(snapshot, query, k, conditions)
        depth = max(k, 100) if mode == "hybrid" else k
        # BM25 first: LanceDB's worker threads then run before the encoder's pool wakes, not
        # against its spinning workers (uniembed.threads; measured 15% off a hybrid query on 2 cores)
        text_hits = self._text_hits(snapshot, query, depth, conditions) if mode == "hybrid" else []
        scores, rows = self.vectors.search(
            snapshot, query, query_vector, depth, field, allowed, stage
        )
        ids, payload = snapshot.ids, snapshot.payload
        dense = [
            Hit(ids[r], s, payload(r)) for s, r in zip(scores.tolist(), rows.tolist()) if r >= 0
        ]
        if mode == "dense":
            return dense
        return fuse([dense, text_hits], k)

    def _text_hits(self, snapshot: Snapshot, query: str, k: int, conditions) -> list[Hit]:
        where = to_sql(conditions, payload_column)
        hits = []
        for id_, score in self.backend.text_search(query, k, where):
            row = snapshot.row_of.get(id_)
            hits.append(Hit(id_, float(score), snapshot.payload(row) if row is not None else {}))
        return hits

    def encode_query(self, text: str) -> np.ndarray:
        """A text query's vector: by the collection's model, or during an upgrade (or from another
        model of a relative collection) by the query model."""
        if self._query_model is not None:
            return self._query_model.encode([text], prompt="query")[0]
        return self.encode_texts([text], prompt="query")[0]

    def snapshot(self) -> Snapshot:
        """The in-memory search state at the latest committed version (rebuilt when stale)."""
        now = time.monotonic()
        if self._snapshot is None or now - self._checked_at >= self.refresh_seconds:
            version = self._reader_version()
            self._checked_at = now
            if (
                self._snapshot is None
                or self._snapshot.version != version
                or self._snapshot.dead_fraction > 0.5
            ):
                self._snapshot = self._build_snapshot(version)
        return self._snapshot

    def _build_snapshot(self, version: int) -> Snapshot:
        columns = [
            ID,
            PAYLOAD,
            *(vector_column(f) for f in self.meta.fields),
            *(payload_column(f) for f in self.payload_fields),
        ]
        columns += list(self.vectors.columns)
        return Snapshot.from_table(
            version,
            self.backend.scan(columns),
            self.meta.fields,
            self.meta.index,
            self.meta.index_params,
            self.multivector,
        )

    # -- model -----------------------------------------------------------------------------------
    @property
    def model(self) -> Encoder:
        if self._model is None:
            self._model = self._as_stored(own_model(self))
        return self._model

    def _as_stored(self, encoder: Encoder) -> Encoder:
        """`encoder` as this collection stores vectors: relative to its anchors when it has them."""
        return self.relative_part.wrap(encoder) if self.relative_part else encoder

    def check_model(self, encoder: Encoder) -> None:
        """InputError unless `encoder` makes this collection's vectors (token and image vectors too)."""
        check_fingerprint(
            str(self.path), self.meta, encoder.name, self.vectors.fingerprint(encoder)
        )
        if self.image_part is not None:
            self.image_part.check_model(encoder)

    def encode_texts(self, texts: list[str], prompt: str) -> np.ndarray:
        """Texts embedded as this collection stores them (its model, its dim)."""
        return self.model.encode(texts, prompt=prompt, dim=self.meta.dim, show_progress=False)

    # -- maintenance and facts -----------------------------------------------------------------
    @property
    def payload_fields(self) -> dict[str, str]:
        """Filterable payload field -> type, read from the table's schema (its single truth)."""
        kinds = {
            pa.string(): "string",
            pa.int64(): "int",
            pa.float64(): "float",
            pa.bool_(): "bool",
        }
        return {
            f.name[len(FIELD_PREFIX) :]: kinds[f.type]
            for f in self.backend.schema
            if f.name.startswith(FIELD_PREFIX)
        }

    def __len__(self) -> int:
        self._reader_version()
        return self.backend.count()

    @property
    def version(self) -> int:
        """The latest committed version a reader may see."""
        return self._reader_version()

    def bulk_load(self):
        """`with col.bulk_load(): col.add(...)`: the same loop on every home; a folder needs nothing
        special (its index is built at the first search after the adds)."""
        return contextlib.nullcontext(self)

    def rebuild(self) -> int:
        """Compact the store (drop deleted rows, merge small files, refresh the text index) and
        rebuild the in-memory indexes."""
        with self.writing():
            version = self.backend.compact()
        self._snapshot = None
        return version

    def info(self) -> CollectionInfo:
        self._reader_version()
        snapshot = self.snapshot()
        count = self.backend.count()
        bytes_per_vector = (
            snapshot.index(self.meta.default_field).bytes_per_vector if count else float("nan")
        )
        token_bytes = self.vectors.token_bytes(snapshot, count)
        return CollectionInfo(
            path=str(self.path),
            count=count,
            model=self.meta.model,
            fingerprint=self.meta.fingerprint,
            fields=dict(self.meta.fields),
            index=self.meta.index,
            quantize=self.meta.quantize,
            index_params=dict(self.meta.index_params),
            bytes_per_vector=bytes_per_vector,
            disk_bytes=self.backend.disk_bytes(),
            version=self.backend.version,
            payload_fields=self.payload_fields,
            multivector=self.meta.multivector,
            token_bytes_per_item=token_bytes,
            images=self.meta.images,
            relative=self.meta.relative,
        )


def _stamp(path: Path) -> tuple[int, int] | None:
    """(inode, mtime) of a file: a replaced collection.json gets a new inode (write, then rename)."""
    try:
        status = path.stat()
    except OSError:
        return None
    return status.st_ino, status.st_mtime_ns


def _loads(text: str | None) -> dict:
    import json

    return json.loads(text) if text else {}
