"""The write path of a folder collection: add, upsert and delete, each one atomic commit under
the collection's writer lock, every row built (and so checked) before the first commit, and the
in-memory snapshot kept current with our own writes. A mixin of FolderCollection (store/folder.py),
which owns the state it uses (backend, meta, parts, snapshot)."""

from __future__ import annotations

import pyarrow as pa

from uniembed.errors import ConflictError, InputError
from uniembed.store import pending
from uniembed.store.backend import ARROW_TYPES, ID, IMAGE, TEXT, payload_column
from uniembed.store.rows import build_rows, check_ids, check_payloads, dump_payloads, payload_types

LOCK_FILE = "writer.lock"
SHORT_ID_LOOKUP = (
    1000  # ids per insert checked with one IN query; larger batches use an in-memory id set
)


class FolderWrites:
    # -- writing ------------------------------------------------------------------------------
    def add(self, ids, data=None, *, payloads=None, texts=None, images=None) -> int:
        """Insert new items; ids already in the collection are refused (use upsert). Returns the
        committed version. `data`: texts to embed, an (n, dim) array for the default field, or a
        dict field -> texts or array. `texts`: the text kept for each item (text search, `get`);
        given alone, without `data`, they are also what is embedded.
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
        with self.writing() as before:
            version = self.backend.delete(ids)
            self._after_write(before, version, deleted=ids)
        return version

    def _write(self, mode: str, ids, data, payloads, texts, images=None) -> int:
        ids = check_ids(ids)
        payloads = check_payloads(payloads, len(ids))
        payload_json = dump_payloads(payloads)
        image_values = None
        if self.image_part is not None:
            image_values, data = self.image_part.rows(ids, data, texts, images)
        elif images is not None:
            raise InputError(
                f"collection {self.path} keeps no images; create it with images='bytes' or 'path'"
            )
        vectors, kept_texts, blobs = self.vectors.rows(ids, data, texts)
        with self.writing() as before:
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
