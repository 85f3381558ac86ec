"""What collections on a server (PostgreSQL + pgvector, Milvus) share: the model they were made
with, query vectors, and the checks on a search's arguments. Folder collections
(store/collection.py) keep their own, tied to snapshots and multi-vector search."""

from __future__ import annotations

import numpy as np

from uniembed.encoders.base import Encoder
from uniembed.errors import InputError
from uniembed.store.filters import Condition, parse_filter
from uniembed.store.rows import lexical_query, query_vector

SEARCH_MODES = ("dense", "text", "hybrid")


class RemoteCollection:
    """Base of PgCollection and MilvusCollection: subclasses set `meta`, `path`, `_model`, a
    `backend_name` and implement `_write` and the searches."""

    images = None  # image and multi-vector collections are folder collections for now
    multivector = None
    relative_anchors = None  # relative collections too (upgrade/relative.py)
    backend_name = "remote"

    def add(self, ids, data=None, *, payloads=None, texts=None, images=None) -> int:
        """Insert new items; ids already in the collection are refused (use upsert). Returns the version."""
        return self._write("insert", ids, data, payloads, texts, images)

    def upsert(self, ids, data=None, *, payloads=None, texts=None, images=None) -> int:
        """Insert new items and replace existing ones whole."""
        return self._write("upsert", ids, data, payloads, texts, images)

    def _write(
        self, mode: str, ids, data, payloads, texts, images
    ) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def _read_payload_fields(self) -> dict[str, str]:  # pragma: no cover - abstract
        """Filterable payload field -> type, as the server has them now."""
        raise NotImplementedError

    def _known_fields(self) -> dict[str, str]:
        """The payload field types, remembered until a write (`self._fields = None`) or an unknown field."""
        if self._fields is None:
            self._fields = self._read_payload_fields()
        return self._fields

    def _conditions(self, filter) -> list[Condition]:
        if not filter:
            return []
        try:
            return parse_filter(filter, self._known_fields())
        except InputError:
            self._fields = None  # another writer may have added the field: look once more
            return parse_filter(filter, self._known_fields())

    def _check_search(
        self, query, k, mode: str, field: str | None, image, multivector: dict
    ) -> tuple[str, int]:
        """(the vector field, k as an int) after the checks every search makes, or InputError."""
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise InputError(f"k must be a positive integer, got {k!r}")
        if mode not in SEARCH_MODES:
            raise InputError(f"mode must be one of {list(SEARCH_MODES)}, got {mode!r}")
        if image is not None:
            raise InputError(
                f"image= needs an image collection; the {self.backend_name} backend keeps no images"
            )
        if any(value is not None for value in multivector.values()):
            raise InputError(
                f"{sorted(multivector)} apply to multi-vector collections; this one is single-vector"
            )
        field = field or self.meta.default_field
        if field not in self.meta.fields:
            raise InputError(
                f"unknown vector field {field!r}; this collection has {list(self.meta.fields)}"
            )
        if query is None:
            raise InputError("a search needs a query: a text or a vector")
        if mode != "dense" and not isinstance(query, str):
            raise InputError(f"mode {mode!r} needs a text query, got {type(query).__name__}")
        if mode != "dense":
            lexical_query(query)
        return field, int(k)

    def _query_vector(self, query, field: str) -> np.ndarray:
        if isinstance(query, str):
            return self._encode([query], prompt="query")[0]
        return query_vector(query, self.meta.fields[field], field)

    @property
    def model(self) -> Encoder:
        from uniembed.store.collection import own_model

        if self._model is None:
            self._model = own_model(self)
        return self._model

    def _check_model(self, encoder: Encoder) -> None:
        from uniembed.store.collection import check_fingerprint

        check_fingerprint(self.path, self.meta, encoder.name, encoder.fingerprint)

    def _encode(self, texts: list[str], prompt: str) -> np.ndarray:
        return self.model.encode(texts, prompt=prompt, dim=self.meta.dim, show_progress=False)
