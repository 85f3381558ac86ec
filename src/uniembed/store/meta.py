"""collection.json: what a collection is (model fingerprint, vector fields, index), with numbered
migrations. Payload field types are not kept here: the table's own schema is their truth."""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from uniembed._atomic import replace_file
from uniembed.errors import CollectionDamagedError, InputError, NotFoundError

META_FILE = "collection.json"
SCHEMA_VERSION = 5
DATA_DIR_NAME = re.compile(
    r"data(-[0-9a-f]{8})?"
)  # where the rows live, inside the collection folder


def _add_multivector(data: dict) -> dict:
    """1 -> 2: multi-vector collections arrived; every older collection is single-vector."""
    return {**data, "multivector": None, "schema_version": 2}


def _add_images(data: dict) -> dict:
    """2 -> 3: image collections arrived; every older collection keeps no images."""
    return {**data, "images": None, "schema_version": 3}


def _add_data_dir(data: dict) -> dict:
    """3 -> 4: a model upgrade writes the re-embedded rows beside the old ones and switches by
    rewriting this file (upgrade/finish.py); every older collection keeps its rows in data/."""
    return {**data, "data_dir": "data", "schema_version": 4}


def _add_relative(data: dict) -> dict:
    """4 -> 5: collections of relative vectors arrived (upgrade/relative.py); every older one keeps
    its model's vectors as they are."""
    return {**data, "relative": None, "schema_version": 5}


# version n -> function upgrading a version-n dict to version n+1 (applied in order on open)
MIGRATIONS: dict[int, callable] = {
    1: _add_multivector,
    2: _add_images,
    3: _add_data_dir,
    4: _add_relative,
}


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
    images: dict | None = (
        None  # ImageSpec fields (store/images.py); None: the collection keeps no images
    )
    data_dir: str = (
        "data"  # the folder (inside the collection's) holding the rows: "data" or "data-<8 hex>"
    )
    relative: dict | None = (
        None  # {"anchors": count, "sha256": of anchors.json}; None: the model's own vectors
    )
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
    replace_file(tmp, target)


def read_meta(folder: Path) -> tuple[CollectionMeta, bool]:
    """(meta, migrated): migrated is True when the file was older and must be written back."""
    path = Path(folder) / META_FILE
    if not Path(folder).is_dir():
        raise NotFoundError(f"{folder}: no such collection (not a directory)")
    if not path.is_file():
        raise NotFoundError(f"{folder} is not a uniembed collection (no {META_FILE})")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CollectionDamagedError(
            f"{folder}: collection damaged: {META_FILE} is not valid JSON ({exc})"
        ) from None
    if not isinstance(data, dict):
        raise CollectionDamagedError(
            f"{folder}: collection damaged: {META_FILE} holds {type(data).__name__}, not an object"
        )
    version = data.get("schema_version", 0)
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise CollectionDamagedError(
            f"{folder}: collection damaged: {META_FILE} has schema_version {version!r}"
        )
    if version > SCHEMA_VERSION:
        raise InputError(
            f"{folder} was made by a newer uniembed (schema {version}, this one reads up to {SCHEMA_VERSION})"
        )
    migrated = version < SCHEMA_VERSION
    try:
        while version < SCHEMA_VERSION:
            data = MIGRATIONS.get(version, _unknown_schema)(data)
            version = data["schema_version"]
        return _checked(data), migrated
    except CollectionDamagedError as exc:
        raise CollectionDamagedError(f"{folder}: {exc}") from None


def _unknown_schema(data: dict) -> dict:
    raise CollectionDamagedError(
        f"collection damaged: {META_FILE} has unknown schema_version {data.get('schema_version')!r}"
    )


# field -> (accepted types, whether None is allowed): what a hand-edited file must still respect
_TYPES = {
    "model": (str, True),
    "fingerprint": (str, True),
    "fields": (dict, False),
    "index": (str, False),
    "index_params": (dict, False),
    "quantize": (str, False),
    "dim": (int, True),
    "backend": (str, False),
    "multivector": (dict, True),
    "images": (dict, True),
    "data_dir": (str, False),
    "relative": (dict, True),
    "schema_version": (int, False),
}


def _checked(data: dict) -> CollectionMeta:
    """CollectionMeta from the file's dict; CollectionDamagedError names the first bad key."""
    unknown = sorted(set(data) - set(_TYPES))
    missing = sorted(name for name in ("model", "fingerprint", "fields") if name not in data)
    if unknown or missing:
        raise CollectionDamagedError(
            f"collection damaged: {META_FILE} has unknown key(s) {unknown}, missing {missing}"
        )
    for name, (kind, nullable) in _TYPES.items():
        value = data.get(name)
        if (value is None and not nullable and name in data) or (
            value is not None
            and (not isinstance(value, kind) or (kind is int and isinstance(value, bool)))
        ):
            raise CollectionDamagedError(
                f"collection damaged: {META_FILE} key {name!r} is {value!r:.60}, "
                f"expected {kind.__name__}"
            )
    fields = data["fields"]
    if not fields or not all(
        isinstance(f, str)
        and f.isidentifier()
        and isinstance(d, int)
        and not isinstance(d, bool)
        and 1 <= d <= MAX_STORED_DIM
        for f, d in fields.items()
    ):
        raise CollectionDamagedError(
            f"collection damaged: {META_FILE} key 'fields' is {fields!r:.80}"
        )
    if not DATA_DIR_NAME.fullmatch(data.get("data_dir", "data")):
        raise CollectionDamagedError(
            f"collection damaged: {META_FILE} key 'data_dir' is {data['data_dir']!r:.60}"
        )
    return CollectionMeta(**data)


MAX_STORED_DIM = 1 << 20  # vectors or FDEs wider than this cannot have been written by uniembed


def read_checked_meta(path: Path) -> tuple[CollectionMeta, bool]:
    """collection.json, checked as create checks it: a hand-edited bad index parameter must not
    reach FAISS (which aborts the process) on the first search after a restart."""
    from uniembed.index.base import check_index_params
    from uniembed.store.multivector import MultiVectorSpec

    meta, migrated = read_meta(
        path
    )  # InputError: not a collection; CollectionDamagedError: bad file
    try:
        check_index_params(meta.index, meta.index_params, next(iter(meta.fields.values())))
        if meta.multivector is not None:
            spec = MultiVectorSpec(**meta.multivector)
            MultiVectorSpec.make(spec.method, spec.token_dim, spec.storage, spec.fde)
        if meta.images is not None:
            from uniembed.store.images import ImageSpec

            images = ImageSpec(**meta.images)
            ImageSpec.make(
                images.storage, images.max_bytes, None
            )  # the root may be gone: that is checked on use
    except (InputError, TypeError) as exc:
        raise CollectionDamagedError(
            f"{path}: collection damaged: {META_FILE} holds bad settings: {exc}"
        ) from None
    return meta, migrated
