"""Adding a file of records (jsonl, csv, parquet) to a collection, in batches of one commit each."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

import numpy as np

from uniembed.errors import InputError
from uniembed.io.records import columns_hint, iter_records
from uniembed.store.collection import Collection


@dataclass(frozen=True)
class IngestReport:
    rows: int
    batches: int
    version: int


def add_file(
    collection: Collection,
    path: str | Path,
    *,
    id_field: str = "id",
    text_fields: list[str] | None = None,
    payload_fields: list[str] | None = None,
    image_field: str | None = None,
    upsert: bool = False,
    batch_rows: int = 2048,
    show_progress: bool = True,
    vectors: Mapping[str, np.ndarray] | None = None,
) -> IngestReport:
    """Embed and add every record of `path`. The text is the `text_fields` joined by a space (as
    BEIR joins title and text); the payload is `payload_fields` (default: every other field).
    Each batch is one atomic commit: a failure keeps the batches already committed, and names
    the file and line of a bad record.

    Image collections: `path` may be a folder of images (ids are their relative paths), or a
    record file whose `image_field` (default "image") holds each item's image (a path relative
    to the file, a data URI or bytes); the text fields are then optional captions.

    vectors: the records' vectors by id, made elsewhere (e.g. by a Ray cluster): nothing is
    encoded here; a record whose id has no vector is an error."""
    text_fields = text_fields or ["text"]
    if isinstance(batch_rows, bool) or not isinstance(batch_rows, int) or batch_rows < 1:
        raise InputError(f"batch_rows must be a positive integer, got {batch_rows!r}")
    path = Path(path)
    if path.is_dir():
        records = _folder_records(collection, path)
    else:
        image_key = _image_key(collection, path, image_field)
        records = _parsed(
            iter_records(path),
            id_field,
            text_fields,
            payload_fields,
            image_key,
            path.resolve().parent,
        )
    from tqdm.auto import tqdm

    rows = batches = 0
    version = collection.version
    # bulk_load: an empty PostgreSQL collection builds its HNSW indexes once, after the last batch
    with collection.bulk_load(), tqdm(desc="adding", unit="rows", disable=not show_progress) as bar:
        while batch := list(islice(records, batch_rows)):
            ids, texts, payloads, images, wheres = (list(column) for column in zip(*batch))
            write = collection.upsert if upsert else collection.add
            if vectors is not None:
                missing = [id_ for id_ in ids if id_ not in vectors]
                if missing:
                    raise InputError(
                        f"{path}: no vector for id(s) {missing[:5]} among the vectors given"
                    )
            try:
                if vectors is not None:
                    version = write(
                        ids, np.stack([vectors[id_] for id_ in ids]), payloads=payloads, texts=texts
                    )
                elif any(image is not None for image in images):
                    version = write(ids, payloads=payloads, texts=texts, images=images)
                else:
                    version = write(ids, texts, payloads=payloads)
            except InputError as exc:
                raise type(exc)(_located(str(exc), wheres)) from None
            rows, batches = rows + len(batch), batches + 1
            bar.update(len(batch))
    if rows == 0:
        raise InputError(f"{path}: no records to add")
    return IngestReport(rows, batches, version)


_ITEM = re.compile(r"(?:id|text|payload|image) (\d+)\b")


def _located(message: str, wheres: list[str]) -> str:
    """A collection's message about item N of a batch, led by that item's file and line (the
    collection counts items within the batch it was given)."""
    match = _ITEM.match(message)
    if match and int(match.group(1)) < len(wheres):
        return f"{wheres[int(match.group(1))]}: {message}"
    return f"{wheres[0]} to {wheres[-1]} (one batch): {message}"


def _image_key(collection: Collection, path: Path, image_field: str | None) -> str | None:
    """The record field holding images: `image_field`, or "image" when an image collection's file has it."""
    if image_field is not None:
        if collection.images is None:
            raise InputError(
                f"--image-field {image_field!r}: collection {collection.path} keeps no images "
                "(create it with --images bytes or --images path)"
            )
        return image_field
    if collection.images is None:
        return None
    from uniembed.io.items import has_image_column

    return "image" if has_image_column(path, None) else None


def _folder_records(
    collection: Collection, folder: Path
) -> Iterator[tuple[str, str | None, dict, str, str]]:
    """(relative path as id, no caption, no payload, absolute path, where) per image file of `folder`."""
    from uniembed.images.files import walk_images

    if collection.images is None:
        raise InputError(
            f"{folder} is a folder of images, but collection {collection.path} keeps no images "
            "(create it with --images bytes or --images path and an image model)"
        )
    found = walk_images(folder)
    if found.skipped or found.outside:
        import warnings

        warnings.warn(f"{folder}: {found.summary()}", UserWarning, stacklevel=3)
    for id_, file in zip(found.ids, found.files):
        yield id_, None, {}, str(file), str(file)


def _parsed(
    records,
    id_field: str,
    text_fields: list[str],
    payload_fields: list[str] | None,
    image_key: str | None = None,
    base: Path | None = None,
) -> Iterator[tuple[str, str | None, dict, object, str]]:
    from uniembed.io.items import image_value

    for where, record in records:
        if not isinstance(record, dict):
            raise InputError(f"{where}: expected a record with fields, got {type(record).__name__}")
        required = [id_field, image_key] if image_key else [id_field, *text_fields]
        missing = [f for f in required if f not in record]
        if missing:
            raise InputError(f"{where}: no field(s) {missing}; fields are: {columns_hint(record)}")
        if record[id_field] is None or record[id_field] == "":
            raise InputError(f"{where}: empty id in field {id_field!r}")
        parts = []
        for name in text_fields:
            value = record.get(name)
            if value is not None and not isinstance(value, str):
                raise InputError(
                    f"{where}: text field {name!r} is {type(value).__name__}, expected text"
                )
            parts.append(value or "")
        text = " ".join(parts).strip()
        image = None
        if image_key:
            image = image_value(where, record[image_key], base)
            if image is None:
                raise InputError(f"{where}: empty image in field {image_key!r}")
        skipped = (id_field, *text_fields, *([image_key] if image_key else []))
        chosen = (
            payload_fields
            if payload_fields is not None
            else [k for k in record if k not in skipped]
        )
        payload = {k: record.get(k) for k in chosen}
        yield str(record[id_field]), (text or None) if image_key else text, payload, image, where
