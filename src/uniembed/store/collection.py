"""The collection contract: what every home (a folder, PostgreSQL + pgvector, Milvus) offers, what
each declares it can do, and the helpers every home shares. Users hold a `Collection`:

    col = Collection.create("./docs", model="default", index="hnsw", quantize="binary")
    col.add(["a", "b"], ["first text", "second text"], payloads=[{"lang": "en"}, {"lang": "fr"}])
    col.search("a question", k=10, filter="lang=en")      # -> [Hit(id, score, payload), ...]

`Collection.create` and `Collection.open` pick the home from the location (store/homes.py: a
folder path, "postgresql://...#name", "milvus://host:port/name"); the homes implement this class
and import nothing from each other. Callers ask `col.supports("map")`, never which home they hold.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np

from uniembed.encoders.base import Encoder
from uniembed.encoders.registry import lasting_reference
from uniembed.errors import InputError
from uniembed.store.meta import CollectionMeta
from uniembed.store.rows import lexical_query
from uniembed.types import CollectionInfo, Hit, Item

SEARCH_MODES = ("dense", "text", "hybrid")

# What a home may declare (Collection.features). The folder home has them all.
FEATURES = {
    "text_search": "search modes 'text' and 'hybrid' (a lexical index over the stored texts)",
    "multivector": "multi-vector collections (token vectors, MUVERA, MaxSim)",
    "images": "image collections (images kept and embedded by an image model)",
    "relative_anchors": "relative collections (vectors as cosines to anchor texts)",
    "map": "a 2-D map of the collection (the web page), drawn from an in-memory snapshot",
    "rebuild": "rebuild(): compact the store and rebuild its indexes",
    "store_backend": "backend=: the folder's store of record (LanceDB)",
    "read_replicas": "read_from=: searches spread over read replicas of the server",
}

# The options of `create` that make a collection hold a part beyond its vectors (or choose the
# folder's store), each with its neutral value and the feature a home needs to take it. One table:
# a home without the feature refuses the option, by name, unless it is left at its neutral value.
PART_OPTIONS: dict[str, tuple[object, str]] = {
    "multivector": (None, "multivector"),
    "fde": (None, "multivector"),
    "token_storage": ("float16", "multivector"),
    "images": (None, "images"),
    "image_root": (None, "images"),
    "max_image_bytes": (None, "images"),
    "relative_anchors": (None, "relative_anchors"),
    "backend": ("lance", "store_backend"),
}


class Collection(ABC):
    """Ids, texts, payloads and vectors, searchable by vector, text or both, on some home."""

    home: ClassVar[str] = ""  # "folder", "postgresql", "milvus"
    features: ClassVar[frozenset[str]] = frozenset()  # keys of FEATURES this home has
    # parts a collection may hold (None when it holds none): set by homes that have them
    images = None
    multivector = None
    relative_anchors = None
    path: object
    meta: CollectionMeta

    # -- one entry point for every home --------------------------------------------------------
    @classmethod
    def create(cls, path, **options) -> Collection:
        """Make a new collection at `path` (a folder, or a database URL: see each home's create
        for its options: uniembed.store.folder, .postgres, .milvus)."""
        from uniembed.store.homes import home_of

        return home_of(path).create(path, **options)

    @classmethod
    def open(cls, path, *, model: Encoder | None = None) -> Collection:
        """Open an existing collection. Text queries load the collection's model on first use,
        or use `model`, which must have made the collection's vectors (same fingerprint)."""
        from uniembed.store.homes import home_of

        return home_of(path).open(path, model=model)

    @classmethod
    def supports(cls, feature: str) -> bool:
        """Whether this home can do `feature` (a key of FEATURES)."""
        if feature not in FEATURES:
            raise ValueError(f"unknown feature {feature!r}; features are: {sorted(FEATURES)}")
        return feature in cls.features

    # -- what every home implements ----------------------------------------------------------
    @abstractmethod
    def add(self, ids, data=None, *, payloads=None, texts=None, images=None) -> int:
        """Insert new items; ids already in the collection are refused (use upsert). Returns the
        committed version. `data`: texts to embed or vectors; `texts`: the text kept per item
        (for text search and get), embedded when no `data` is given."""

    @abstractmethod
    def upsert(self, ids, data=None, *, payloads=None, texts=None, images=None) -> int:
        """Insert new items and replace existing ones whole. Returns the committed version."""

    @abstractmethod
    def delete(self, ids) -> int:
        """Remove items by id (unknown ids are ignored). Returns the committed version."""

    @abstractmethod
    def get(self, ids) -> list[Item | None]:
        """The stored items, in the order of `ids` (None for an unknown id)."""

    @abstractmethod
    def search(self, query=None, k: int = 10, **options) -> list[Hit]:
        """The k best items for a text or a vector (see each home for its options)."""

    @abstractmethod
    def __len__(self) -> int: ...

    @property
    @abstractmethod
    def version(self) -> int:
        """The latest committed version a reader may see."""

    @property
    @abstractmethod
    def payload_fields(self) -> dict[str, str]:
        """Filterable payload field -> type."""

    @property
    @abstractmethod
    def model(self) -> Encoder:
        """The collection's model (loaded on first use and checked against its fingerprint)."""

    @abstractmethod
    def info(self) -> CollectionInfo: ...

    @abstractmethod
    def bulk_load(self):
        """`with col.bulk_load(): col.add(...)`: a loop of adds, made fast where the home can."""

    @abstractmethod
    def check_model(self, encoder: Encoder) -> None:
        """InputError unless `encoder` makes the vectors this collection holds."""


# -- helpers every home shares --------------------------------------------------------------------
def refuse_parts(home: type[Collection], options: dict) -> None:
    """InputError naming the create options `home` cannot take (see PART_OPTIONS)."""
    refused = sorted(
        name
        for name, value in options.items()
        if name not in PART_OPTIONS
        or (value != PART_OPTIONS[name][0] and PART_OPTIONS[name][1] not in home.features)
    )
    if "relative_anchors" in refused:
        raise InputError(
            "relative_anchors= is for folder collections; a collection on a server stores its "
            "model's own vectors"
        )
    if refused:
        raise InputError(
            f"{refused} not supported by the {home.home} backend (multi-vector and image "
            "collections are folder collections for now)"
        )


def load_model(model) -> Encoder | None:
    """The encoder a collection is created with: a name or path loaded, an Encoder as is, None."""
    if model is None or isinstance(model, Encoder):
        return model
    if not isinstance(model, str):
        raise InputError(
            f"model must be a name, a path, an Encoder or None, got {type(model).__name__}"
        )
    from uniembed.encoders.load import load

    return load(None if model == "default" else model)


def model_name(model, encoder: Encoder | None) -> str | None:
    """How a collection records its model: a name that loads it again later, from anywhere."""
    if encoder is None:
        return None
    if isinstance(model, str):
        return encoder.name if model == "default" else lasting_reference(model)
    return encoder.name


def vector_dim(encoder: Encoder | None, dim: int | None) -> int:
    """The stored vectors' dimension: `dim` (checked) or the model's."""
    if dim is not None and (isinstance(dim, bool) or not isinstance(dim, int) or dim < 1):
        raise InputError(f"dim must be a positive integer, got {dim!r}")
    if encoder is None:
        if dim is None:
            raise InputError("a collection without a model needs dim= (the vector dimension)")
        return dim
    if dim is not None and dim > encoder.dim:
        raise InputError(f"dim={dim} exceeds the model's {encoder.dim} dimensions")
    return dim or encoder.dim


def own_model(collection: Collection) -> Encoder:
    """The model named in a collection's meta, loaded and checked against its fingerprint (any
    home: the caller caches it)."""
    if collection.meta.model is None:
        raise InputError(
            f"collection {collection.path} holds vectors only (no model): pass vectors, not texts"
        )
    encoder = load_model(collection.meta.model)
    collection.check_model(encoder)
    return encoder


def check_fingerprint(where: str, meta: CollectionMeta, name: str, made: str) -> None:
    """InputError unless the model `name` (fingerprint `made`) makes the vectors the collection holds."""
    if meta.fingerprint is not None and made != meta.fingerprint:
        raise InputError(
            f"collection {where} was made by model {meta.model} (fingerprint {meta.fingerprint[:12]}); "
            f"{name} (fingerprint {made[:12]}) makes different vectors and cannot be used with it"
        )


def check_search(collection: Collection, query, k, mode: str, field: str | None) -> tuple[str, int]:
    """(the vector field, k as an int) after the checks every home's search makes, or InputError.
    `query` is None only for an image search (the home checks that it has an image)."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise InputError(f"k must be a positive integer, got {k!r}")
    if mode not in SEARCH_MODES:
        raise InputError(f"mode must be one of {list(SEARCH_MODES)}, got {mode!r}")
    field = field or collection.meta.default_field
    if field not in collection.meta.fields:
        raise InputError(
            f"unknown vector field {field!r}; this collection has {list(collection.meta.fields)}"
        )
    return field, int(k)


def check_text_query(query, mode: str) -> None:
    """Text and hybrid searches take a text (checked as the lexical index will read it)."""
    if mode != "dense" and not isinstance(query, str):
        raise InputError(f"mode {mode!r} needs a text query, got {type(query).__name__}")
    if mode != "dense":
        lexical_query(query)
