"""Writing vectors to .npy or .parquet, streaming and atomically.

Rows go to a temporary file beside the target, which is renamed into place only when all rows
are written: an interrupted run leaves no half-written output (and the old file, if any, intact).
"""

from __future__ import annotations

import ast
import os
from pathlib import Path

import numpy as np

from uniembed._atomic import replace_file
from uniembed.errors import InputError

VECTOR_FORMATS = ("npy", "parquet")
# Reserved header size: the real shape is written over the placeholder when the row count is known.
_NPY_HEADER_BYTES = 128


# Temporary files not yet committed or aborted: an interrupt can land before a writer's `with`
# block is entered, so the CLI removes whatever is left here when it stops on a signal.
PENDING: set[Path] = set()


class _AtomicFile:
    """A temporary path beside `target`; `commit()` renames it into place, `abort()` removes it."""

    def __init__(self, target: Path):
        self.target = target
        self.tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        PENDING.add(self.tmp)

    def commit(self) -> None:
        replace_file(self.tmp, self.target)
        PENDING.discard(self.tmp)

    def abort(self) -> None:
        self.tmp.unlink(missing_ok=True)
        PENDING.discard(self.tmp)


def remove_pending() -> None:
    """Delete every temporary file still pending (called when the process is interrupted)."""
    for tmp in list(PENDING):
        tmp.unlink(missing_ok=True)
        PENDING.discard(tmp)


class VectorWriter:
    """Append (n, dim) float32 blocks; `close()` publishes the file, `abort()` discards it."""

    def __init__(self, path: Path, dim: int):
        self.path = path
        self.dim = dim
        self.rows = 0
        self._file = _AtomicFile(path)

    def write(self, vectors: np.ndarray, ids: list[str] | None = None) -> None:
        """Append rows; `ids` name them (parquet keeps them in an `id` column, .npy keeps order only)."""
        if vectors.ndim != 2 or vectors.shape[1] != self.dim:
            raise InputError(f"expected vectors of shape (n, {self.dim}), got {vectors.shape}")
        self._write(np.ascontiguousarray(vectors, dtype=np.float32), ids)
        self.rows += len(vectors)

    def close(self) -> None:
        self._finish()
        self._file.commit()

    def abort(self) -> None:
        self._discard()
        self._file.abort()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def _write(
        self, vectors: np.ndarray, ids: list[str] | None
    ) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _finish(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _discard(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


class NpyWriter(VectorWriter):
    """.npy in one pass: a fixed-size header, rewritten with the final row count at the end."""

    def __init__(self, path: Path, dim: int):
        super().__init__(path, dim)
        self._fh = open(self._file.tmp, "wb")
        self._fh.write(_npy_header((0, dim)))

    def _write(self, vectors: np.ndarray, ids: list[str] | None) -> None:
        self._fh.write(vectors.astype("<f4", copy=False).tobytes())

    def _finish(self) -> None:
        self._fh.seek(0)
        self._fh.write(_npy_header((self.rows, self.dim)))
        self._fh.close()

    def _discard(self) -> None:
        self._fh.close()


def _npy_header(shape: tuple[int, int]) -> bytes:
    """A version 1.0 .npy header for little-endian float32 C-order data, padded to a fixed size."""
    body = repr({"descr": "<f4", "fortran_order": False, "shape": shape})
    prefix = b"\x93NUMPY\x01\x00"
    room = _NPY_HEADER_BYTES - len(prefix) - 2  # 2 bytes: little-endian header length
    text = body.ljust(room - 1) + "\n"
    assert ast.literal_eval(body)["shape"] == shape and len(text) == room  # internal invariant
    return prefix + len(text).to_bytes(2, "little") + text.encode("latin1")


class ParquetVectorWriter(VectorWriter):
    """.parquet with columns `row` (int64), `id` (string; only when the rows have ids, e.g. the
    relative paths of a folder of images) and `embedding` (fixed-size list of float32)."""

    def __init__(self, path: Path, dim: int, with_ids: bool = False):
        super().__init__(path, dim)
        from uniembed._extras import require

        require("parquet")
        import pyarrow as pa
        import pyarrow.parquet as pq

        self._pa = pa
        self.with_ids = with_ids
        fields = (
            [("row", pa.int64())]
            + ([("id", pa.string())] if with_ids else [])
            + [("embedding", pa.list_(pa.float32(), dim))]
        )
        self._schema = pa.schema(fields)
        self._writer = pq.ParquetWriter(self._file.tmp, self._schema)

    def _write(self, vectors: np.ndarray, ids: list[str] | None) -> None:
        pa = self._pa
        flat = pa.array(vectors.reshape(-1), type=pa.float32())
        columns = [pa.array(np.arange(self.rows, self.rows + len(vectors), dtype=np.int64))]
        if self.with_ids:
            if ids is None or len(ids) != len(vectors):
                raise InputError(f"{self.path}: every row needs an id")
            columns.append(pa.array(ids, type=pa.string()))
        columns.append(pa.FixedSizeListArray.from_arrays(flat, self.dim))
        self._writer.write_table(pa.Table.from_arrays(columns, schema=self._schema))

    def _finish(self) -> None:
        self._writer.close()

    def _discard(self) -> None:
        self._writer.close()


def open_vector_writer(path: str | Path, dim: int, *, with_ids: bool = False) -> VectorWriter:
    """A writer for `path` by its extension (.npy or .parquet; `with_ids`: parquet gets an id column)."""
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower()
    if fmt not in VECTOR_FORMATS:
        raise InputError(
            f"{path}: unsupported output format {fmt or '(no extension)'!r}; use one of {list(VECTOR_FORMATS)}"
        )
    if not path.parent.is_dir():
        raise InputError(f"{path}: the folder {path.parent} does not exist")
    if path.is_dir():  # found now, not after all the work
        raise InputError(f"{path} is a folder; -o needs a file name ending in .npy or .parquet")
    return (
        NpyWriter(path, dim) if fmt == "npy" else ParquetVectorWriter(path, dim, with_ids=with_ids)
    )
