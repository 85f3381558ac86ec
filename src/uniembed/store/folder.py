"""The folder home: a collection in a folder on disk (the contract is store/collection.py).

The store of record is a backend (LanceDB by default): every write is one atomic commit, and an
acknowledged write survives a crash. Search runs on an in-memory Snapshot rebuilt from it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from uniembed._atomic import atomic_folder
from uniembed.encoders.base import Encoder
from uniembed.errors import CollectionDamagedError, ConflictError, InputError
from uniembed.index.base import check_index_params
from uniembed.multivector import FDEConfig
from uniembed.store import lance_backend, pending  # noqa: F401  (lance_backend registers the "lance" backend)
from uniembed.store.backend import (
    ARROW_TYPES,
    FIELD_PREFIX,
    ID,
    IMAGE,
    PAYLOAD,
    TEXT,
    StoreBackend,
    backend_class,
    base_schema,
    payload_column,
    vector_column,
)
from uniembed.store.collection import (
    Collection,
    check_fingerprint,
    check_search,
    check_text_query,
    load_model,
    model_name,
    own_model,
    vector_dim,
)
from uniembed.store.filters import parse_filter, to_sql
from uniembed.store.fusion import fuse
from uniembed.store.images import ImageSpec
from uniembed.store.lock import WriterLock
from uniembed.store.meta import META_FILE, CollectionMeta, read_checked_meta, write_meta
from uniembed.store.multivector import (
    MultiVectorSpec,
    make_fde,
)
from uniembed.store.parts import (
    ImagePart,
    RelativePart,
    SingleVectors,
    TokenVectors,
    check_combination,
)
from uniembed.store.rows import (
    build_rows,
    check_ids,
    check_payloads,
    check_vector_fields,
    dump_payloads,
    payload_types,
)
from uniembed.store.snapshot import Snapshot
from uniembed.types import CollectionInfo, Hit, Item

LOCK_FILE = "writer.lock"
SHORT_ID_LOOKUP = (
    1000  # ids per insert checked with one IN query; larger batches use an in-memory id set
)

# (index, quantize) as users say it -> (index kind, its parameters)
INDEX_CHOICES = {
    ("exact", "none"): ("exact", {}),
    ("exact", "int8"): ("int8", {}),
    ("exact", "binary"): ("binary", {}),
    ("hnsw", "none"): ("hnsw", {}),
    ("hnsw", "int8"): ("hnsw", {"quantize": "int8"}),
    ("hnsw", "binary"): ("binary", {"graph": "hnsw"}),
    ("ivfpq", "none"): ("ivfpq", {}),
}


def resolve_index(index: str, quantize: str) -> tuple[str, dict]:
    if (index, quantize) not in INDEX_CHOICES:
        choices = ", ".join(f"{i}+{q}" for i, q in INDEX_CHOICES)
        raise InputError(
            f"unsupported index {index!r} with quantize {quantize!r}; choose one of: {choices}"
        )
    kind, params = INDEX_CHOICES[(index, quantize)]
    return kind, dict(params)


class FolderCollection(Collection):
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
    @classmethod
    def create(
        cls,
        path: str | Path,
        *,
        model: str | Encoder | None = "default",
        dim: int | None = None,
        fields: list[str] | None = None,
        index: str = "exact",
        quantize: str = "none",
        index_params: dict | None = None,
        backend: str = "lance",
        multivector: str | None = None,
        fde: FDEConfig | dict | None = None,
        token_storage: str = "float16",
        images: str | None = None,
        image_root: str | Path | None = None,
        max_image_bytes: int | None = None,
        relative_anchors: list[str] | None = None,
    ) -> FolderCollection:
        """Make a new collection folder. model=None makes a vectors-only collection of `dim` dims;
        with a model, `dim` truncates its vectors (Matryoshka). Built in a temporary folder and
        renamed into place, so a crash never leaves half a collection.

        multivector="muvera": each item keeps its token vectors (token_storage "float16" or "int8")
        and their MUVERA FDE (parameters `fde`), which the index searches for candidates that exact
        MaxSim then ranks. Without a model, `dim` is the token vectors' dimension.

        images="bytes" or "path": the collection keeps each item's image (its bytes, up to
        `max_image_bytes`, default 4 MiB; or its path relative to `image_root`, default the
        collection folder), and `add(ids, images=[...])` embeds them with an image model (CLIP,
        SigLIP, a bound model). Search by text, image or both (see `search`).

        relative_anchors=[texts]: store each vector as its cosines to these anchor texts (relative
        representations, uniembed.spaces.relative; one dimension per anchor). Any later model that
        embeds the same anchors searches the collection at once: `open(path, model=new)`, no adapter."""
        path = Path(path)
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            raise ConflictError(f"{path} already exists and is not empty")
        options = {
            "multivector": multivector,
            "images": images,
            "relative_anchors": relative_anchors,
            "dim": dim,
            "fde": fde,
            "image_root": image_root,
            "max_image_bytes": max_image_bytes,
        }
        given = {name for name, value in options.items() if value is not None}
        kind, params = resolve_index(index, quantize)
        encoder = load_model(model)
        anchors = RelativePart.checked(relative_anchors, encoder)
        check_combination(given | ({"token_storage"} if token_storage != "float16" else set()))
        image_spec = None
        if images is not None:
            image_spec = ImageSpec.make(images, max_image_bytes, image_root)
            if encoder is not None and "image" not in encoder.modalities:
                raise InputError(
                    f"images={images!r} needs an image model (CLIP, SigLIP, a bound model); "
                    f"{encoder.name} embeds text only"
                )
            if encoder is not None:
                image_spec = dataclasses.replace(
                    image_spec, image_fingerprint=encoder.image_fingerprint
                )
        names = check_vector_fields(fields)
        if multivector is None:
            if encoder is not None and encoder.token_head is not None:
                raise InputError(
                    f"model {encoder.name} is a late-interaction (ColBERT) model: it makes token vectors; "
                    "create the collection with multivector='muvera'"
                )
            spec, dims = None, len(anchors) if anchors else vector_dim(encoder, dim)
            fingerprint = encoder.fingerprint if encoder else None
        else:
            spec = TokenVectors.make_spec(multivector, encoder, dim, names, fde, token_storage)
            dims = make_fde(spec).output_dim
            fingerprint = encoder.token_fingerprint if encoder else None
        if index_params is not None and not isinstance(index_params, dict):
            raise InputError(f"index_params must be a dict, got {type(index_params).__name__}")
        given = {**params, **(index_params or {})}
        checked = check_index_params(
            kind, given, dims
        )  # type and range, before anything is written
        meta = CollectionMeta(
            model=model_name(model, encoder),
            fingerprint=fingerprint,
            fields={name: dims for name in names},
            index=kind,
            index_params={k: checked[k] for k in given},
            quantize=quantize,
            dim=dim if encoder and not spec else None,
            backend=backend,
            multivector=spec.to_dict() if spec else None,
            images=image_spec.to_dict() if image_spec else None,
        )
        store = backend_class(backend)
        with atomic_folder(path) as staging:
            store.create(
                staging / meta.data_dir,
                base_schema(
                    meta.fields,
                    tokens=spec is not None,
                    image=image_spec.storage if image_spec else None,
                ),
            )
            if anchors:
                from uniembed.spaces.relative import write_anchors

                meta = dataclasses.replace(meta, relative=write_anchors(staging, anchors))
            write_meta(staging, meta)
        return cls(path, meta, store.open(path / meta.data_dir), encoder)

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

    # -- writing ------------------------------------------------------------------------------
    def add(self, ids, data=None, *, payloads=None, texts=None, images=None) -> int:
        """Insert new items; ids already in the collection are refused (use upsert). Returns the
        committed version. `data`: texts to embed, an (n, dim) array for the default field, or a
        dict field -> texts or array. `texts` (optional) is the source text stored for BM25.
        `images` (image collections): one image per id (a path, bytes, a data URI, a PIL image or
        an array; None for a text-only item), kept and, without `data`, embedded; `texts` are
        then the captions (BM25 and hybrid search)."""
        return self._write("insert", ids, data, payloads, texts, images)

    def upsert(self, ids, data=None, *, payloads=None, texts=None, images=None) -> int:
        """Insert new items and replace existing ones (vectors, text, payload, image), atomically."""
        return self._write("upsert", ids, data, payloads, texts, images)

    def delete(self, ids) -> int:
        """Remove items by id (unknown ids are ignored). Returns the committed version."""
        ids = check_ids(ids)
        with WriterLock(self.path / LOCK_FILE):
            before = self._writer_version()
            version = self.backend.delete(ids)
            self._after_write(before, version, deleted=ids)
        return version

    def _write(self, mode: str, ids, data, payloads, texts, images=None) -> int:
        ids = check_ids(ids)
        payloads = check_payloads(payloads, len(ids))
        payload_json = dump_payloads(payloads)
        image_values = None
        if self.image_part is not None:
            image_values, data = self.image_part.rows(ids, data, images)
        elif images is not None:
            raise InputError(
                f"collection {self.path} keeps no images; create it with images='bytes' or 'path'"
            )
        vectors, kept_texts, blobs = self.vectors.rows(ids, data, texts)
        with WriterLock(self.path / LOCK_FILE):
            before = self._writer_version()
            if mode == "insert":
                present = self._existing_ids(ids, before)
                if present:
                    raise ConflictError(
                        f"{len(present)} id(s) already in the collection, e.g. {sorted(present)[:5]}; use upsert"
                    )
            known = self.payload_fields
            types = payload_types(payloads, known)
            new_columns = {
                payload_column(k): ARROW_TYPES[t] for k, t in types.items() if k not in known
            }
            schema = self.backend.schema
            for name, arrow_type in new_columns.items():
                schema = schema.append(pa.field(name, arrow_type))
            # every row is built (and so checked) before the first commit: a bad row must not leave
            # a new column committed alone
            rows = build_rows(
                ids, vectors, kept_texts, payloads, payload_json, types, schema, blobs, image_values
            )
            version = self._commit_rows(mode, rows, new_columns, before)
            schema_changed = bool(new_columns)
            self._after_write(
                -1 if schema_changed else before,
                version,
                deleted=ids if mode == "upsert" else [],
                added=rows,
            )
            if any(text is not None for text in kept_texts):
                version = self._keep_text_index_fresh(version)
        return version

    def _commit_rows(self, mode: str, rows: pa.Table, new_columns: dict, before: int) -> int:
        """Insert or upsert `rows`, adding their new payload columns first (two commits that
        readers see as one: see store/pending.py)."""
        if not new_columns:
            return self.backend.insert(rows) if mode == "insert" else self.backend.upsert(rows)
        pending.begin(self.path, before)
        try:
            self.backend.add_payload_columns(new_columns)
            version = self.backend.insert(rows) if mode == "insert" else self.backend.upsert(rows)
        except Exception:
            if self.backend.refresh() == before + 1:  # the columns went in, the rows did not
                self.backend.restore(before)
            pending.end(self.path)
            raise
        pending.end(self.path)
        return version

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

    def _keep_text_index_fresh(self, version: int) -> int:
        """Unindexed rows make BM25 slow (a scan: 230 ms instead of 5 ms per query on SciFact), so
        once they pass 1,000 rows and 10% of the collection, index them (a compaction commit)."""
        lag = self.backend.text_index_lag()
        if lag <= max(1000, self.backend.count() // 10):
            return version
        compacted = self.backend.compact()
        if self._snapshot is not None and self._snapshot.version == version:
            self._snapshot.version = compacted  # compaction changes files, not rows
        if self._id_set is not None and self._id_set[0] == version:
            self._id_set = (compacted, self._id_set[1])
        return compacted

    def _existing_ids(self, ids: list[str], version: int) -> set[str]:
        snap = self._snapshot
        if snap is not None and snap.version == version:  # current in memory: no store round trip
            return {id_ for id_ in ids if id_ in snap.row_of}
        if len(ids) <= SHORT_ID_LOOKUP and (self._id_set is None or self._id_set[0] != version):
            return self.backend.existing_ids(ids)  # a short IN list is cheapest
        # a batch writer with no snapshot (the CLI's 2,048-row batches): read every id once, then
        # keep the set current with our own writes, so each batch costs O(batch), not O(collection)
        if self._id_set is None or self._id_set[0] != version:
            self._id_set = (version, set(self.backend.scan([ID]).column(ID).to_pylist()))
        known = self._id_set[1]
        return {id_ for id_ in ids if id_ in known}

    def _after_write(
        self, before: int, version: int, *, deleted=(), added: pa.Table | None = None
    ) -> None:
        """Apply our own write to the snapshot (and the id set) in place when it was current, else drop it."""
        if self._id_set is not None:
            if self._id_set[0] == before:
                known = self._id_set[1]
                known.difference_update(deleted)
                known.update(added.column(ID).to_pylist() if added is not None else ())
                self._id_set = (version, known)
            else:
                self._id_set = None
        snap = self._snapshot
        if snap is None or snap.version != before:
            self._snapshot = None
            return
        snap.delete(list(deleted))
        if added is not None:
            snap.append(
                added.select([c for c in added.column_names if c not in (TEXT, IMAGE)]),
                self.meta.fields,
            )
        snap.version = version

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
        scores, rows = self.vectors.search(
            snapshot, query, query_vector, depth, field, allowed, stage
        )
        ids, payload = snapshot.ids, snapshot.payload
        dense = [
            Hit(ids[r], s, payload(r)) for s, r in zip(scores.tolist(), rows.tolist()) if r >= 0
        ]
        if mode == "dense":
            return dense
        return fuse([dense, self._text_hits(snapshot, query, depth, conditions)], k)

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
