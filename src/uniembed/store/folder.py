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
    TOKENS,
    MultiVectorSpec,
    check_stage,
    check_token_sets,
    make_fde,
    pack_tokens,
    query_tokens,
    rerank,
    token_heuristic_rows,
    unpack_tokens,
)
from uniembed.store.rows import (
    build_rows,
    check_ids,
    check_payloads,
    check_vector_fields,
    dump_payloads,
    is_texts,
    payload_types,
    query_vector,
    stored_texts,
    vectors_and_texts,
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
        self.multivector = MultiVectorSpec(**meta.multivector) if meta.multivector else None
        self.images = ImageSpec(**meta.images) if meta.images else None
        self._fde = make_fde(self.multivector) if self.multivector else None
        self.relative_anchors = _relative_anchors(self.path, meta)  # None: the model's own vectors
        if model is not None and self.relative_anchors is not None:
            self._model = self._relative(model)

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
        kind, params = resolve_index(index, quantize)
        encoder = load_model(model)
        image_spec = None
        if images is not None:
            image_spec = ImageSpec.make(images, max_image_bytes, image_root)
            if encoder is not None and "image" in encoder.modalities:
                image_spec = dataclasses.replace(
                    image_spec, image_fingerprint=encoder.image_fingerprint
                )
            if multivector is not None:
                raise InputError(
                    "image collections are single-vector: multivector= and images= do not combine"
                )
            if encoder is not None and "image" not in encoder.modalities:
                raise InputError(
                    f"images={images!r} needs an image model (CLIP, SigLIP, a bound model); "
                    f"{encoder.name} embeds text only"
                )
        elif image_root is not None or max_image_bytes is not None:
            raise InputError(
                "image_root= and max_image_bytes= belong to image collections (images='bytes' or 'path')"
            )
        anchors = _checked_relative(relative_anchors, encoder, dim, multivector, images)
        names = check_vector_fields(fields)
        if multivector is None:
            if fde is not None or token_storage != "float16":
                raise InputError(
                    "fde= and token_storage= belong to multi-vector collections (multivector='muvera')"
                )
            if encoder is not None and encoder.token_head is not None:
                raise InputError(
                    f"model {encoder.name} is a late-interaction (ColBERT) model: it makes token vectors; "
                    "create the collection with multivector='muvera'"
                )
            spec, dims = None, len(anchors) if anchors else vector_dim(encoder, dim)
            fingerprint = encoder.fingerprint if encoder else None
        else:
            spec = _multivector_spec(multivector, encoder, dim, names, fde, token_storage)
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
                collection._model = collection._relative(model)
            else:  # another model: its relative vectors share the space; writes keep the collection's model
                collection._query_model = collection._relative(model)
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
        if images is not None or self.images is not None:
            image_values, data = self._image_rows(ids, data, texts, images)
        if self.multivector is not None:
            vectors, kept_texts, blobs = self._token_rows(ids, data, texts)
        else:
            (vectors, kept_texts), blobs = self._vectors_and_texts(ids, data, texts), None
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

    def _vectors_and_texts(
        self, ids: list[str], data, texts
    ) -> tuple[dict[str, np.ndarray], list[str | None]]:
        return vectors_and_texts(self.meta.fields, ids, data, texts, self._encode)

    def _image_rows(self, ids: list[str], data, texts, images) -> tuple[list | None, object]:
        """(what the image column keeps per row, the vectors to store): images given without
        `data` are embedded here, each one decoded (and so checked) before anything is written."""
        if images is None:
            if data is None:
                raise InputError(
                    "no data: pass texts, vectors, or images= for this image collection"
                )
            return [None] * len(ids), data
        if self.images is None:
            raise InputError(
                f"collection {self.path} keeps no images; create it with images='bytes' or 'path'"
            )
        from uniembed.encoders.multimodal import check_images

        if not isinstance(images, (list, tuple)):
            raise InputError(
                f"images must be a list (one image, or None, per id), got {type(images).__name__}"
            )
        given = list(images)
        if len(given) != len(ids):
            raise InputError(f"got {len(given)} images for {len(ids)} ids")
        labels = [f"image {i} (id {id_!r})" for i, id_ in enumerate(ids)]
        present = [i for i, image in enumerate(given) if image is not None]
        if present:
            check_images([given[i] for i in present])  # dict items and the like, named
        kept = [None] * len(ids)
        for i, value in zip(
            present,
            self.images.stored(
                [given[i] for i in present], self.path, [labels[i] for i in present]
            ),
        ):
            kept[i] = value
        readable = [self.images.readable(kept[i], self.path) for i in present]
        if data is not None:
            from uniembed.images.decode import to_rgb

            for i, value in zip(present, readable):
                to_rgb(
                    value, labels[i]
                )  # kept images must decode even when the caller brings the vectors
            return kept, data
        if len(present) != len(ids):
            missing = next(i for i in range(len(ids)) if given[i] is None)
            raise InputError(
                f"image {missing} (id {ids[missing]!r}) is None: without data=, every item needs an image"
            )
        if len(self.meta.fields) != 1:
            raise InputError(
                f"images= embeds into one vector field; this collection has {list(self.meta.fields)}: pass data="
            )
        vectors = self.model.encode_images(
            readable, dim=self.meta.dim, show_progress=False, labels=labels
        )
        return kept, vectors

    def _token_rows(
        self, ids: list[str], data, texts
    ) -> tuple[dict[str, np.ndarray], list[str | None], list[bytes]]:
        """Multi-vector items: (the FDE per field, stored texts, packed token vectors)."""
        spec, n = self.multivector, len(ids)
        if isinstance(data, dict):
            if set(data) != {self.meta.default_field}:
                raise InputError(
                    f"this multi-vector collection has one field, {self.meta.default_field!r}; got {sorted(data)}"
                )
            data = data[self.meta.default_field]
        if is_texts(data):
            items = list(data)
            if len(items) != n:
                raise InputError(f"got {len(items)} texts for {n} ids")
            token_sets = self.model.encode_tokens(items, prompt="document", show_progress=False)
            source = items
        else:
            if data is None:
                raise InputError(
                    f"no data: pass {n} texts or {n} (tokens, {spec.token_dim}) arrays of token vectors"
                )
            token_sets, source = check_token_sets(data, n, spec.token_dim, spec.storage), None
        fde = self._fde.documents(token_sets)
        blobs = [pack_tokens(t, spec.storage) for t in token_sets]
        return {self.meta.default_field: fde}, stored_texts(texts, source, n), blobs

    # -- reading ------------------------------------------------------------------------------
    def get(self, ids) -> list[Item | None]:
        """The stored items, in the order of `ids` (None for an unknown id)."""
        ids = check_ids(ids)
        self._reader_version()
        columns = [ID, TEXT, PAYLOAD, *(vector_column(f) for f in self.meta.fields)] + (
            [TOKENS] if self.multivector else []
        )
        columns += [IMAGE] if self.images else []
        table = self.backend.get(ids, columns)
        found = {}
        for row in table.to_pylist():
            vectors = {f: np.asarray(row[vector_column(f)], np.float32) for f in self.meta.fields}
            tokens = (
                unpack_tokens(row[TOKENS], self.multivector.token_dim, self.multivector.storage)
                if self.multivector
                else None
            )
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
            query_vector = self._image_query(query, image, image_weight, mode)
        elif query is None:
            raise InputError("a search needs a query: a text, a vector, or image=")
        check_text_query(query, mode)
        if self.multivector is None and (first_stage, candidates, token_hits) != (None, None, None):
            raise InputError(
                "first_stage, candidates and token_hits apply to multi-vector collections; this one is single-vector"
            )
        snapshot = self.snapshot()  # first: the payload fields are those of the snapshot's version
        conditions = parse_filter(filter, self.payload_fields) if filter else []
        allowed = snapshot.allowed_rows(conditions)
        if (
            snapshot.count_allowed(allowed) == 0
        ):  # the one empty-result path: empty, all deleted, nothing matches
            self._check_query(query, field, first_stage, candidates, token_hits)
            return []
        if mode == "text":
            return self._text_hits(snapshot, query, k, conditions)
        depth = max(k, 100) if mode == "hybrid" else k
        if self.multivector is not None:
            scores, rows = self._multivector_search(
                snapshot, query, depth, allowed, first_stage, candidates, token_hits
            )
        else:
            vector = self._query_vector(query if query_vector is None else query_vector, field)
            scores, rows = snapshot.search(vector[None, :], depth, field, allowed)
            scores, rows = scores[0], rows[0]
        ids, payload = snapshot.ids, snapshot.payload
        dense = [
            Hit(ids[r], s, payload(r)) for s, r in zip(scores.tolist(), rows.tolist()) if r >= 0
        ]
        if mode == "dense":
            return dense
        return fuse([dense, self._text_hits(snapshot, query, depth, conditions)], k)

    def _image_query(self, query, image, image_weight: float, mode: str) -> np.ndarray:
        """The vector of an image (or image + text) query, made by the collection's model."""
        if self.multivector is not None:
            raise InputError(
                "multi-vector collections are searched by text or token vectors, not by image"
            )
        if mode == "text":
            raise InputError(
                "mode 'text' ranks stored captions by BM25: it takes a text query, not an image"
            )
        if query is not None and not isinstance(query, str):
            raise InputError(f"an image query may come with a text, not a {type(query).__name__}")
        model = self.model
        if "image" not in model.modalities:
            raise InputError(
                f"collection {self.path} was made by {model.name}, which embeds text only: it cannot search by image"
            )
        if query is None:
            return model.encode_images(
                [image], dim=self.meta.dim, show_progress=False, labels=["the query image"]
            )[0]
        from uniembed.encoders.multimodal import encode_items

        return encode_items(
            model,
            [{"image": image, "text": query}],
            image_weight=image_weight,
            prompt="query",
            dim=self.meta.dim,
            show_progress=False,
            labels=["the query"],
        )[0]

    def _check_query(self, query, field: str, first_stage, candidates, token_hits) -> None:
        """Bad queries are refused even when nothing could match (a vector of the wrong size)."""
        if query is None or isinstance(query, str):
            return
        if self.multivector is None:
            self._query_vector(query, field)
        else:
            check_stage(first_stage, candidates, token_hits)
            query_tokens(query, self.multivector.token_dim)

    def _multivector_search(
        self, snapshot: Snapshot, query, k: int, allowed, first_stage, candidates, token_hits
    ) -> tuple[np.ndarray, np.ndarray]:
        stage = check_stage(first_stage, candidates, token_hits)
        if isinstance(query, str):
            tokens = self.model.encode_tokens([query], prompt="query")[0]
        else:
            tokens = query_tokens(query, self.multivector.token_dim)
        if stage == "fde":
            _, rows = snapshot.search(
                self._fde.queries([tokens]),
                candidates or max(k, 100),
                self.meta.default_field,
                allowed,
            )
            rows = rows[0][rows[0] >= 0]
        else:
            if stage == "exact":
                rows = (
                    np.flatnonzero(allowed) if allowed is not None else np.arange(len(snapshot.ids))
                )
            else:
                rows = token_heuristic_rows(tokens, snapshot.tokens, token_hits or 10, allowed)
        return rerank(tokens, rows, snapshot.tokens, k)

    def _text_hits(self, snapshot: Snapshot, query: str, k: int, conditions) -> list[Hit]:
        where = to_sql(conditions, payload_column)
        hits = []
        for id_, score in self.backend.text_search(query, k, where):
            row = snapshot.row_of.get(id_)
            hits.append(Hit(id_, float(score), snapshot.payload(row) if row is not None else {}))
        return hits

    def _query_vector(self, query, field: str) -> np.ndarray:
        if isinstance(query, str):
            if self._query_model is not None:
                return self._query_model.encode([query], prompt="query")[0]
            return self._encode([query], prompt="query")[0]
        return query_vector(query, self.meta.fields[field], field)

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
        columns += [TOKENS] if self.multivector else []
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
            self._model = self._relative(own_model(self))
        return self._model

    def _relative(self, encoder: Encoder) -> Encoder:
        """`encoder` as this collection stores vectors: its relative vectors when the collection
        keeps anchors, else itself."""
        if self.relative_anchors is None:
            return encoder
        from uniembed.spaces.relative import RelativeEncoder

        if isinstance(
            encoder, RelativeEncoder
        ):  # already relative: to these anchors, or useless here
            if encoder.space != self.meta.relative["sha256"]:
                raise InputError(
                    f"{encoder.name} is relative to other anchors than collection {self.path}'s"
                )
            return encoder
        return RelativeEncoder(encoder, self.relative_anchors)

    def check_model(self, encoder: Encoder) -> None:
        """InputError unless `encoder` makes this collection's vectors (token and image vectors too)."""
        made = (
            encoder.token_fingerprint
            if self.multivector and encoder.gives_token_vectors
            else encoder.fingerprint
        )
        check_fingerprint(str(self.path), self.meta, encoder.name, made)
        recorded = self.images.image_fingerprint if self.images else None
        if (
            recorded is not None and encoder.image_fingerprint != recorded
        ):  # same texts, another image tower
            raise InputError(
                f"collection {self.path} holds image vectors made by {self.meta.model} "
                f"(image fingerprint {recorded[:12]}); "
                f"{encoder.name} embeds texts alike but images differently (image fingerprint "
                f"{encoder.image_fingerprint[:12]}), so it cannot be used with it"
            )

    def _encode(self, texts: list[str], prompt: str) -> np.ndarray:
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
        token_bytes = (
            float(np.mean([len(b) for b in snapshot.tokens.blobs]))
            if self.multivector and count
            else None
        )
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


def _relative_anchors(path: Path, meta: CollectionMeta) -> list[str] | None:
    if meta.relative is None:
        return None
    from uniembed.spaces.relative import read_anchors

    return read_anchors(path, meta.relative)


def _checked_relative(
    anchors, encoder: Encoder | None, dim, multivector, images
) -> list[str] | None:
    """The anchor texts of a collection to be created, or None; InputError for what cannot combine."""
    if anchors is None:
        return None
    from uniembed.spaces.relative import checked_anchors

    anchors = checked_anchors(anchors)
    if encoder is None:
        raise InputError(
            "relative_anchors= needs a model to embed the anchors (a vectors-only collection has none)"
        )
    for given, what in ((dim, "dim="), (multivector, "multivector="), (images, "images=")):
        if given is not None:
            raise InputError(
                f"relative_anchors= and {what} do not combine: a relative collection stores one "
                "text vector per item, one dimension per anchor"
            )
    return anchors


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


def _multivector_spec(
    method: str, encoder: Encoder | None, dim: int | None, names: list[str], fde, storage: str
) -> MultiVectorSpec:
    if len(names) != 1:
        raise InputError(f"a multi-vector collection has one vector field, got {names}")
    if encoder is None:
        if dim is None:
            raise InputError(
                "a multi-vector collection without a model needs dim= (the token vectors' dimension)"
            )
        token_dim = vector_dim(None, dim)
    else:
        if not encoder.gives_token_vectors:
            raise InputError(
                f"model {encoder.name} gives no token vectors; multi-vector collections need a transformer model"
            )
        if dim is not None:
            raise InputError(
                "dim= truncates single vectors; a multi-vector collection with a model takes its token dimension"
            )
        token_dim = encoder.token_dim
    return MultiVectorSpec.make(method, token_dim, storage, fde)
