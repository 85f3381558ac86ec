"""collection.json: what a collection is (model fingerprint, vector fields, index), with numbered
migrations. Payload field types are not kept here: the table's own schema is their truth."""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from uniembed.errors import InputError

META_FILE = "collection.json"
SCHEMA_VERSION = 2


def _add_multivector(data: dict) -> dict:
    """1 -> 2: multi-vector collections arrived; every older collection is single-vector."""
    return {**data, "multivector": None, "schema_version": 2}


# version n -> function upgrading a version-n dict to version n+1 (applied in order on open)
MIGRATIONS: dict[int, callable] = {1: _add_multivector}


@dataclass(frozen=True)
class CollectionMeta:
    model: str | None  # model name to load for texts; None: vectors only
    fingerprint: str | None  # of the model that made the vectors; queries must match it
    fields: dict[str, int]  # vector field -> dimension; the first is the default field
    index: str = "exact"
    index_params: dict = field(default_factory=dict)
    quantize: str = "none"
    dim: int | None = None  # Matryoshka truncation applied when encoding
    backend: str = "lance"  # store of record, see uniembed.store.backend.BACKENDS
    multivector: dict | None = None  # MultiVectorSpec fields; None: one vector per item and field
    schema_version: int = SCHEMA_VERSION

    @property
    def default_field(self) -> str:
        return next(iter(self.fields))


def write_meta(folder: Path, meta: CollectionMeta) -> None:
    """Atomically (temp file, fsync, rename): a crash leaves the old file or the new one."""
    target = Path(folder) / META_FILE
    tmp = target.with_name(f".{META_FILE}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(asdict(meta), f, indent=2)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, target)


def read_meta(folder: Path) -> tuple[CollectionMeta, bool]:
    """(meta, migrated): migrated is True when the file was older and must be written back."""
    path = Path(folder) / META_FILE
    if not Path(folder).is_dir():
        raise InputError(f"{folder}: no such collection (not a directory)")
    if not path.is_file():
        raise InputError(f"{folder} is not a uniembed collection (no {META_FILE})")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"{path} is corrupt: {exc}") from exc
    version = data.get("schema_version", 0)
    if version > SCHEMA_VERSION:
        raise InputError(f"{folder} was made by a newer uniembed (schema {version}, this one reads up to {SCHEMA_VERSION})")
    migrated = version < SCHEMA_VERSION
    while version < SCHEMA_VERSION:
        data = MIGRATIONS[version](data)
        version = data["schema_version"]
    return CollectionMeta(**data), migrated
