"""Adding a file of records (jsonl, csv, parquet) to a collection, in batches of one commit each."""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

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
    upsert: bool = False,
    batch_rows: int = 2048,
    show_progress: bool = True,
) -> IngestReport:
    """Embed and add every record of `path`. The text is the `text_fields` joined by a space (as
    BEIR joins title and text); the payload is `payload_fields` (default: every other field).
    Each batch is one atomic commit: a failure keeps the batches already committed, and names
    the file and line of a bad record."""
    text_fields = text_fields or ["text"]
    if isinstance(batch_rows, bool) or not isinstance(batch_rows, int) or batch_rows < 1:
        raise InputError(f"batch_rows must be a positive integer, got {batch_rows!r}")
    records = _parsed(iter_records(path), id_field, text_fields, payload_fields)
    from tqdm.auto import tqdm

    rows = batches = 0
    version = collection.backend.version
    with tqdm(desc="adding", unit="rows", disable=not show_progress) as bar:
        while batch := list(islice(records, batch_rows)):
            ids, texts, payloads = (list(column) for column in zip(*batch))
            write = collection.upsert if upsert else collection.add
            version = write(ids, texts, payloads=payloads)
            rows, batches = rows + len(batch), batches + 1
            bar.update(len(batch))
    if rows == 0:
        raise InputError(f"{path}: no records to add")
    return IngestReport(rows, batches, version)


def _parsed(records, id_field: str, text_fields: list[str], payload_fields: list[str] | None) -> Iterator[tuple[str, str, dict]]:
    for where, record in records:
        if not isinstance(record, dict):
            raise InputError(f"{where}: expected a record with fields, got {type(record).__name__}")
        missing = [f for f in [id_field, *text_fields] if f not in record]
        if missing:
            raise InputError(f"{where}: no field(s) {missing}; fields are: {columns_hint(record)}")
        if record[id_field] is None or record[id_field] == "":
            raise InputError(f"{where}: empty id in field {id_field!r}")
        parts = []
        for name in text_fields:
            value = record[name]
            if value is not None and not isinstance(value, str):
                raise InputError(f"{where}: text field {name!r} is {type(value).__name__}, expected text")
            parts.append(value or "")
        chosen = payload_fields if payload_fields is not None else [k for k in record if k not in (id_field, *text_fields)]
        payload = {k: record.get(k) for k in chosen}
        yield str(record[id_field]), " ".join(parts).strip(), payload
