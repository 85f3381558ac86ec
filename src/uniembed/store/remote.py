"""What the two server homes (PostgreSQL + pgvector, Milvus) share beyond the collection contract
(store/collection.py): the write entry points, payload fields remembered between writes, and the
search checks a collection without images or token vectors makes."""

from __future__ import annotations

import numpy as np

from uniembed.encoders.base import Encoder
from uniembed.errors import InputError
from uniembed.store.collection import (
    Collection,
    check_fingerprint,
    check_search,
    check_text_query,
    own_model,
)
from uniembed.store.filters import Condition, parse_filter
from uniembed.store.rows import query_vector


class RemoteCollection(Collection):
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
        field, k = check_search(self, query, k, mode, field)
        if image is not None:
            raise InputError(
                f"image= needs an image collection; the {self.backend_name} backend keeps no images"
            )
        if any(value is not None for value in multivector.values()):
            raise InputError(
                f"{sorted(multivector)} apply to multi-vector collections; this one is single-vector"
            )
        if query is None:
            raise InputError("a search needs a query: a text or a vector")
        check_text_query(query, mode)
        return field, k

    def _query_vector(self, query, field: str) -> np.ndarray:
        if isinstance(query, str):
            return self._encode([query], prompt="query")[0]
        return query_vector(query, self.meta.fields[field], field)

    @property
    def model(self) -> Encoder:
        if self._model is None:
            self._model = own_model(self)
        return self._model

    def check_model(self, encoder: Encoder) -> None:
        """InputError unless `encoder` makes this collection's vectors."""
        check_fingerprint(self.path, self.meta, encoder.name, encoder.fingerprint)

    def _encode(self, texts: list[str], prompt: str) -> np.ndarray:
        return self.model.encode(texts, prompt=prompt, dim=self.meta.dim, show_progress=False)
