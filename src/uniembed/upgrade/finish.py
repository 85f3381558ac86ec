"""Finishing an upgrade: the new model takes the collection over.

Only when every item has a backfilled vector for its current text. Under the collection's writer
lock (writers wait; a backfill cannot run), the rows are copied into a new data folder
(`data-<8 hex>`) with the new vectors, then collection.json is replaced in one rename: model,
fingerprint, dimension and data folder switch together. A crash before the rename leaves the
collection as it was (the half-built folder is removed by the next finish); after it, the new
collection is whole. Readers notice the new collection.json at their next refresh and reopen
(FolderCollection.refresh); indexes are rebuilt from the new vectors at the first search. Then the
old data folder and the upgrade's files (adapters, backfilled vectors) are deleted.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import uuid

import pyarrow as pa

from uniembed.errors import ConflictError, NotFoundError
from uniembed.store.upgrade_state import read_state, upgrade_dir
from uniembed.upgrade.backfill import backfill_lock, next_vectors, upgrade_status

COPY_ROWS = 10_000
DATA_FOLDER = re.compile(r"data(-[0-9a-f]{8})?")


def finish(collection) -> dict:
    """Switch the collection to the upgrade's target model; returns {items, model, dim, data_dir}."""
    from uniembed.index.base import check_index_params
    from uniembed.store.backend import ID, TOKENS, backend_class, vector_column
    from uniembed.store.meta import write_meta

    state = read_state(collection.path)
    if state is None:
        raise NotFoundError(f"no upgrade in progress for {collection.path}")
    busy = f"a backfill of {collection.path} is running: let it end before finishing"
    with backfill_lock(collection.path, busy):
        with collection.writing():
            status = upgrade_status(collection)
            if not status.complete:
                raise ConflictError(
                    f"finish before backfill completes: {status.remaining} of {status.items} items have no "
                    f"vector from {state.target_name} for their current text yet; run `uniembed upgrade "
                    "backfill` (old vectors are dropped only after every item has a new one)"
                )
            meta = collection.meta
            field = meta.default_field
            check_index_params(
                meta.index, meta.index_params, state.target_dim
            )  # e.g. IVF-PQ's m must divide the dim
            _remove_orphans(collection.path, keep=meta.data_dir)
            new_dir = f"data-{uuid.uuid4().hex[:8]}"
            old_schema = collection.backend.schema
            columns = [
                f.name for f in old_schema if f.name != vector_column(field) and f.name != TOKENS
            ]
            schema = pa.schema(
                [
                    pa.field(vector_column(field), pa.list_(pa.float32(), state.target_dim))
                    if f.name == vector_column(field)
                    else f
                    for f in old_schema
                ]
            )
            rows = collection.backend.scan(columns)
            vectors = next_vectors(
                collection.path, rows.column(ID).to_pylist(), state.target_fingerprint
            )
            backend = backend_class(meta.backend).create(collection.path / new_dir, schema)
            for start in range(0, len(rows), COPY_ROWS):
                part, block = rows.slice(start, COPY_ROWS), vectors[start : start + COPY_ROWS]
                column = pa.FixedSizeListArray.from_arrays(
                    pa.array(block.reshape(-1), pa.float32()), state.target_dim
                )
                backend.insert(
                    part.append_column(vector_column(field), column)
                    .select(schema.names)
                    .cast(schema)
                )
            backend.compact()  # the text index covers every row before anyone reads them
            new_meta = dataclasses.replace(
                meta,
                model=state.target_model,
                fingerprint=state.target_fingerprint,
                fields={field: state.target_dim},
                dim=None,
                data_dir=new_dir,
            )
            write_meta(collection.path, new_meta)  # the switch: one rename
            old_dir = collection.path / meta.data_dir
    shutil.rmtree(old_dir, ignore_errors=True)
    shutil.rmtree(upgrade_dir(collection.path), ignore_errors=True)
    collection.refresh()
    return {
        "items": len(rows),
        "model": state.target_name,
        "dim": state.target_dim,
        "data_dir": new_dir,
    }


def _remove_orphans(path, keep: str) -> None:
    """Data folders a crashed finish left (built, never switched to)."""
    for folder in path.iterdir():
        if folder.is_dir() and DATA_FOLDER.fullmatch(folder.name) and folder.name != keep:
            shutil.rmtree(folder, ignore_errors=True)
