"""Streaming records out of .txt, .jsonl, .csv/.tsv and .parquet files (optionally .gz).

Each record comes with its location ("file.csv:12") so that errors can name the exact line.
Rows are never all held in memory: files are read line by line, parquet batch by batch.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import zlib
from collections.abc import Iterator
from pathlib import Path

from uniembed.errors import InputError

TEXT_FORMATS = ("txt", "jsonl", "csv", "tsv", "parquet")
_ALIASES = {"ndjson": "jsonl", "text": "txt"}


def file_format(path: Path) -> str:
    """The format of `path` from its extension (a trailing .gz is looked through)."""
    suffixes = [s.lstrip(".").lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == "gz":
        suffixes = suffixes[:-1]
    fmt = _ALIASES.get(suffixes[-1], suffixes[-1]) if suffixes else ""
    if fmt not in TEXT_FORMATS:
        raise InputError(
            f"{path}: unsupported input format {fmt or '(no extension)'!r}; use one of {list(TEXT_FORMATS)}"
        )
    return fmt


def _open_text(path: Path):
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.is_dir():
        raise InputError(f"{path}: is a directory, expected a file")
    try:
        raw = gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    # utf-8-sig: a byte-order mark (Excel writes one) must not become part of the first header
    return io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")


def iter_records(path: str | Path) -> Iterator[tuple[str, dict | str]]:
    """(location, record) pairs; a record is a dict (csv, jsonl objects, parquet) or a str (txt)."""
    path = Path(path)
    fmt = file_format(path)
    reader = {"txt": _txt, "jsonl": _jsonl, "csv": _csv, "tsv": _csv, "parquet": _parquet}[fmt]
    try:
        yield from reader(path)
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:  # truncated or not gzip at all
        raise InputError(f"{path}: not a complete gzip file ({type(exc).__name__}: {exc})") from exc


def _txt(path: Path):
    with _open_text(path) as f:
        for number, line in enumerate(f, start=1):
            yield f"{path}:{number}", line.rstrip("\r\n")


def _jsonl(path: Path):
    with _open_text(path) as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue  # blank lines separate nothing in JSON Lines
            try:
                yield f"{path}:{number}", json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{path}:{number}: invalid JSON ({exc.msg})") from exc


def _csv(path: Path):
    delimiter = "\t" if file_format(path) == "tsv" else ","
    with _open_text(path) as f:
        reader = csv.DictReader(
            f, delimiter=delimiter, strict=True
        )  # strict: an unclosed quote is an error
        try:
            _check_header(path, reader.fieldnames)
            for row in reader:
                # line_num counts physical lines, so quoted multi-line fields still point at the right place
                yield f"{path}:{reader.line_num}", row
        except (
            csv.Error
        ) as exc:  # e.g. a quote opened and never closed, which would swallow the rest
            raise InputError(
                f"{path}:{reader.line_num}: malformed {file_format(path).upper()} ({exc})"
            ) from None


def _check_header(path: Path, names: list[str] | None) -> None:
    duplicates = sorted({name for name in names or [] if (names or []).count(name) > 1})
    if duplicates:
        raise InputError(f"{path}:1: the header names column(s) {duplicates} more than once")


def _parquet(path: Path):
    from uniembed._extras import require

    require("parquet")
    import pyarrow.parquet as pq

    try:
        table = pq.ParquetFile(path)
    except (OSError, Exception) as exc:  # pyarrow raises ArrowInvalid for non-parquet bytes
        raise InputError(f"{path}: not a readable parquet file ({exc})") from exc
    row = 0
    for batch in table.iter_batches(batch_size=4096):
        for record in batch.to_pylist():
            row += 1
            yield f"{path}:row {row}", record


def columns_hint(record: dict) -> str:
    return ", ".join(map(str, record)) or "(none)"


def read_texts(path: str | Path, column: str | None = None) -> Iterator[str]:
    """The texts of a file, one per row, in order. Empty strings are kept (they are valid input).

    txt: one text per line. jsonl: a string per line, or objects with `column` (default "text").
    csv/tsv/parquet: the `column` (default "text"). A missing column, a None or a non-string
    value raises InputError naming the file and line.
    """
    for where, record in iter_records(path):
        yield text_of(where, record, column)


def text_of(where: str, record: dict | str, column: str | None) -> str:
    if isinstance(record, str) and column is None:
        return record
    if isinstance(record, str) and where.rsplit(":", 1)[0].endswith((".txt", ".txt.gz", ".text")):
        raise InputError(
            f"{where}: --column {column!r} applies to jsonl/csv/tsv/parquet files; a .txt file holds "
            "one text per line and has no columns"
        )
    if not isinstance(record, dict):
        raise InputError(f"{where}: expected a JSON string or object, got {type(record).__name__}")
    key = column or "text"
    if key not in record:
        hint = "" if column else " (choose one with --column)"
        raise InputError(f"{where}: no column {key!r}; columns are: {columns_hint(record)}{hint}")
    value = record[key]
    if not isinstance(value, str):
        raise InputError(
            f"{where}: column {key!r} is {'empty (null)' if value is None else type(value).__name__}, expected text"
        )
    return value
