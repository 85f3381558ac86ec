"""Image and image+text items out of record files (jsonl, csv/tsv, parquet) and folders.

A record becomes {"image": ..., "text": ...}: the image column holds a path (relative paths are
read from the file's own folder), a data URI, raw bytes (a parquet binary column), or the
{"bytes", "path"} struct Hugging Face datasets write for images; the text column is optional per
row (an image-only row), an empty or missing image makes a text-only row, and a row with neither
is an error naming the file and line.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from uniembed.errors import InputError
from uniembed.io.records import columns_hint, iter_records

DEFAULT_IMAGE_COLUMN = "image"


def image_value(where: str, value: object, base: Path) -> object | None:
    """What the decoder takes for one record's image cell; None for an empty cell."""
    if value is None or value == "" or value == b"":
        return None
    if isinstance(value, dict):  # Hugging Face datasets' Image feature: {"bytes": ..., "path": ...}
        if value.get("bytes"):
            return bytes(value["bytes"])
        value = value.get("path")
        if not value:
            return None
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, str):
        from uniembed.images.decode import is_data_uri

        if (
            is_data_uri(value)
            or value.lower().startswith(("http://", "https://", "ftp://"))
            or Path(value).is_absolute()
        ):
            return value  # URLs are refused by the decoder, with the reason
        return str(base / value)
    raise InputError(
        f"{where}: the image cell is {type(value).__name__}; expected a path, a data URI or bytes"
    )


def read_items(
    path: str | Path, image_column: str | None = None, text_column: str | None = None
) -> Iterator[tuple[str, dict]]:
    """(location, item) pairs of a record file, in order."""
    path = Path(path)
    image_key = image_column or DEFAULT_IMAGE_COLUMN
    text_key = text_column or "text"
    base = path.resolve().parent
    first = True
    for where, record in iter_records(path):
        if not isinstance(record, dict):
            raise InputError(
                f"{where}: an item row must be an object with {image_key!r} and/or {text_key!r}"
            )
        if first and image_key not in record and text_key not in record:
            raise InputError(
                f"{where}: neither column {image_key!r} nor {text_key!r}; columns are: {columns_hint(record)} "
                "(choose them with --image-column and --column)"
            )
        first = False
        text = record.get(text_key)
        if text is not None and not isinstance(text, str):
            raise InputError(
                f"{where}: column {text_key!r} must hold text, got {type(text).__name__}"
            )
        item = {"image": image_value(where, record.get(image_key), base), "text": text or None}
        yield where, {key: value for key, value in item.items() if value is not None}


def has_image_column(path: str | Path, image_column: str | None) -> bool:
    """Whether the first record of a record file has the image column (default "image")."""
    for _, record in iter_records(path):
        return isinstance(record, dict) and (image_column or DEFAULT_IMAGE_COLUMN) in record
    return False
