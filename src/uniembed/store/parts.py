"""What a folder collection holds beyond ids, texts and payloads, as parts it is composed of.

Every collection has one vector part, which says how items become stored vectors and how a query
finds them: `SingleVectors` (one vector per item and field) or `TokenVectors` (multi-vector: each
item's token vectors, searched through their MUVERA FDE and ranked by exact MaxSim). It may also
have an `ImagePart` (images kept with the items, embedded by an image model, searched by image)
or a `RelativePart` (vectors stored as cosines to anchor texts, so any model can search). Which
parts combine is one table, `EXCLUSIVE`, checked when a collection is created.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from uniembed.encoders.base import Encoder
from uniembed.errors import InputError
from uniembed.store.backend import IMAGE, TOKENS
from uniembed.store.collection import PART_OPTIONS, vector_dim
from uniembed.store.images import ImageSpec
from uniembed.store.multivector import (
    MultiVectorSpec,
    check_stage,
    check_token_sets,
    make_fde,
    pack_tokens,
    query_tokens,
    rerank,
    token_heuristic_rows,
    unpack_tokens,
)
from uniembed.store.rows import (
    is_texts,
    query_vector,
    stored_texts,
    texts_as_data,
    vectors_and_texts,
)
from uniembed.threads import search_math

# Parts (or create options) that cannot be held together, with the reason users are told. None of
# them combine today: each changes what one stored vector is.
RELATIVE_ALONE = (
    "relative_anchors= and {what} do not combine: a relative collection stores one text vector "
    "per item, one dimension per anchor"
)
EXCLUSIVE: dict[frozenset[str], str] = {
    frozenset({"images", "multivector"}): (
        "image collections are single-vector: multivector= and images= do not combine"
    ),
    frozenset({"relative_anchors", "dim"}): RELATIVE_ALONE.format(what="dim="),
    frozenset({"relative_anchors", "multivector"}): RELATIVE_ALONE.format(what="multivector="),
    frozenset({"relative_anchors", "images"}): RELATIVE_ALONE.format(what="images="),
}
# What to say when a part's option comes without the part (which option needs which part is
# PART_OPTIONS, store/collection.py).
WITHOUT_PART = {
    "multivector": "fde= and token_storage= belong to multi-vector collections (multivector='muvera')",
    "images": "image_root= and max_image_bytes= belong to image collections (images='bytes' or 'path')",
}


def check_combination(given: set[str]) -> None:
    """InputError when the create options `given` (the names set away from their defaults) ask for
    parts that do not combine, or for a part's option without the part."""
    for pair, reason in EXCLUSIVE.items():
        if pair <= given:
            raise InputError(reason)
    for option in sorted(given):
        part = PART_OPTIONS.get(option, (None, None))[1]
        if part in WITHOUT_PART and option != part and part not in given:
            raise InputError(WITHOUT_PART[part])


# -- the vector parts -----------------------------------------------------------------------------
class SingleVectors:
    """One vector per item and field: texts embedded by the model, or vectors given."""

    columns: tuple[str, ...] = ()
    spec = None

    def __init__(self, collection):
        self.collection = collection

    def fingerprint(self, encoder: Encoder) -> str:
        return encoder.fingerprint

    def rows(self, ids: list[str], data, texts):
        """(vectors per field, stored texts, packed tokens: None)."""
        c = self.collection
        vectors, kept = vectors_and_texts(c.meta.fields, ids, data, texts, c.encode_texts)
        return vectors, kept, None

    def check_stage(self, first_stage, candidates, token_hits) -> None:
        if (first_stage, candidates, token_hits) != (None, None, None):
            raise InputError(
                "first_stage, candidates and token_hits apply to multi-vector collections; this "
                "one is single-vector"
            )

    def check_query(self, query, field: str, stage: tuple) -> None:
        """Refuse a bad query even when nothing could match (a vector of the wrong size)."""
        if query is not None and not isinstance(query, str):
            self.query_vector(query, field)

    def query_vector(self, query, field: str) -> np.ndarray:
        c = self.collection
        if isinstance(query, str):
            return c.encode_query(query)
        return query_vector(query, c.meta.fields[field], field)

    def search(self, snapshot, query, given_vector, depth: int, field: str, allowed, stage: tuple):
        """(scores, rows) of the `depth` best allowed items; `given_vector`: the query's vector
        when the caller made it already (an image query, the service's batched encoding)."""
        vector = self.query_vector(query if given_vector is None else given_vector, field)
        scores, rows = snapshot.search(vector[None, :], depth, field, allowed)
        return scores[0], rows[0]

    def image_query(self, query, image, image_weight: float, mode: str) -> np.ndarray:
        """The vector of an image (or image + text) query, made by the collection's model: any
        single-vector collection whose model embeds images (an image part or not) is searched so."""
        c = self.collection
        if mode == "text":
            raise InputError(
                "mode 'text' ranks stored captions by BM25: it takes a text query, not an image"
            )
        if query is not None and not isinstance(query, str):
            raise InputError(f"an image query may come with a text, not a {type(query).__name__}")
        model = c.model
        if "image" not in model.modalities:
            raise InputError(
                f"collection {c.path} was made by {model.name}, which embeds text only: it cannot "
                "search by image"
            )
        if query is None:
            return model.encode_images(
                [image], dim=c.meta.dim, show_progress=False, labels=["the query image"]
            )[0]
        from uniembed.encoders.multimodal import encode_items

        return encode_items(
            model,
            [{"image": image, "text": query}],
            image_weight=image_weight,
            prompt="query",
            dim=c.meta.dim,
            show_progress=False,
            labels=["the query"],
        )[0]

    def tokens_of(self, row: dict):
        return None

    def token_bytes(self, snapshot, count: int) -> float | None:
        return None


class TokenVectors(SingleVectors):
    """Multi-vector items: token vectors kept packed, their FDE indexed, exact MaxSim ranking."""

    columns = (TOKENS,)

    def __init__(self, collection, spec: MultiVectorSpec):
        super().__init__(collection)
        self.spec = spec
        self.fde = make_fde(spec)

    @staticmethod
    def make_spec(method, encoder: Encoder | None, dim, names: list[str], fde, storage: str):
        """The spec of a new multi-vector collection, or InputError."""
        if len(names) != 1:
            raise InputError(f"a multi-vector collection has one vector field, got {names}")
        if encoder is None:
            if dim is None:
                raise InputError(
                    "a multi-vector collection without a model needs dim= (the token vectors' "
                    "dimension)"
                )
            token_dim = vector_dim(None, dim)
        else:
            if not encoder.gives_token_vectors:
                raise InputError(
                    f"model {encoder.name} gives no token vectors; multi-vector collections need a "
                    "transformer model"
                )
            if dim is not None:
                raise InputError(
                    "dim= truncates single vectors; a multi-vector collection with a model takes "
                    "its token dimension"
                )
            token_dim = encoder.token_dim
        return MultiVectorSpec.make(method, token_dim, storage, fde)

    def image_query(self, query, image, image_weight: float, mode: str) -> np.ndarray:
        raise InputError(
            "multi-vector collections are searched by text or token vectors, not by image"
        )

    def fingerprint(self, encoder: Encoder) -> str:
        return encoder.token_fingerprint if encoder.gives_token_vectors else encoder.fingerprint

    def rows(self, ids: list[str], data, texts):
        """(the FDE per field, stored texts, packed token vectors)."""
        c, spec, n = self.collection, self.spec, len(ids)
        field = c.meta.default_field
        data = texts_as_data(data, texts)
        if isinstance(data, dict):
            if set(data) != {field}:
                raise InputError(
                    f"this multi-vector collection has one field, {field!r}; got {sorted(data)}"
                )
            data = data[field]
        if is_texts(data):
            items = list(data)
            if len(items) != n:
                raise InputError(f"got {len(items)} texts for {n} ids")
            token_sets = c.model.encode_tokens(items, prompt="document", show_progress=False)
            source = items
        else:
            if data is None:
                raise InputError(
                    f"no data: pass {n} texts to embed (data=[...] or texts=[...]) or {n} "
                    f"(tokens, {spec.token_dim}) arrays of token vectors (data=...)"
                )
            token_sets, source = check_token_sets(data, n, spec.token_dim, spec.storage), None
        blobs = [pack_tokens(t, spec.storage) for t in token_sets]
        return {field: self.fde.documents(token_sets)}, stored_texts(texts, source, n), blobs

    def check_stage(self, first_stage, candidates, token_hits) -> None:
        return None  # checked with the query (check_query, search)

    def check_query(self, query, field: str, stage: tuple) -> None:
        if query is not None and not isinstance(query, str):
            check_stage(*stage)
            query_tokens(query, self.spec.token_dim)

    def search(self, snapshot, query, given_vector, depth: int, field: str, allowed, stage: tuple):
        """(scores, rows) ranked by exact MaxSim; token queries are made here (`given_vector`,
        a single vector, has no use in a multi-vector search)."""
        first_stage, candidates, token_hits = stage
        chosen = check_stage(first_stage, candidates, token_hits)
        if isinstance(query, str):
            tokens = self.collection.model.encode_tokens([query], prompt="query")[0]
        else:
            tokens = query_tokens(query, self.spec.token_dim)
        with search_math():  # after the query's encoding: see uniembed.threads
            return self._rank(snapshot, tokens, chosen, stage, depth, allowed)

    def _rank(self, snapshot, tokens, chosen, stage, depth, allowed):
        _, candidates, token_hits = stage
        if chosen == "fde":
            _, rows = snapshot.search(
                self.fde.queries([tokens]),
                candidates or max(depth, 100),
                self.collection.meta.default_field,
                allowed,
            )
            rows = rows[0][rows[0] >= 0]
        elif chosen == "exact":
            rows = np.flatnonzero(allowed) if allowed is not None else np.arange(len(snapshot.ids))
        else:
            rows = token_heuristic_rows(tokens, snapshot.tokens, token_hits or 10, allowed)
        return rerank(tokens, rows, snapshot.tokens, depth)

    def tokens_of(self, row: dict):
        return unpack_tokens(row[TOKENS], self.spec.token_dim, self.spec.storage)

    def token_bytes(self, snapshot, count: int) -> float | None:
        return float(np.mean([len(b) for b in snapshot.tokens.blobs])) if count else None


# -- the image part ------------------------------------------------------------------------------
class ImagePart:
    """Images kept with the items (bytes, or paths under a root), embedded by an image model."""

    columns = (IMAGE,)

    def __init__(self, collection, spec: ImageSpec):
        self.collection, self.spec = collection, spec

    def rows(self, ids: list[str], data, texts, images) -> tuple[list | None, object]:
        """(what the image column keeps per row, the vectors to store): images given without
        `data` are embedded here, each one decoded (and so checked) before anything is written."""
        c = self.collection
        if images is None:
            data = texts_as_data(data, texts)
            if data is None:
                raise InputError(
                    "no data: pass images=[...] for this image collection, or the texts to embed "
                    "(data=[...] or texts=[...]), or vectors (data=...)"
                )
            return [None] * len(ids), data
        from uniembed.encoders.multimodal import check_images

        if not isinstance(images, (list, tuple)):
            raise InputError(
                f"images must be a list (one image, or None, per id), got {type(images).__name__}"
            )
        given = list(images)
        if len(given) != len(ids):
            raise InputError(f"got {len(given)} images for {len(ids)} ids")
        labels = [f"image {i} (id {id_!r})" for i, id_ in enumerate(ids)]
        present = [i for i, image in enumerate(given) if image is not None]
        if present:
            check_images([given[i] for i in present])  # dict items and the like, named
        kept = [None] * len(ids)
        stored = self.spec.stored([given[i] for i in present], c.path, [labels[i] for i in present])
        for i, value in zip(present, stored):
            kept[i] = value
        readable = [self.spec.readable(kept[i], c.path) for i in present]
        if data is not None:
            from uniembed.images.decode import to_rgb

            for i, value in zip(present, readable):
                to_rgb(value, labels[i])  # kept images must decode even when vectors are given
            return kept, data
        if len(present) != len(ids):
            missing = next(i for i in range(len(ids)) if given[i] is None)
            raise InputError(
                f"image {missing} (id {ids[missing]!r}) is None: without data=, every item needs "
                "an image"
            )
        if len(c.meta.fields) != 1:
            raise InputError(
                f"images= embeds into one vector field; this collection has {list(c.meta.fields)}: "
                "pass data="
            )
        vectors = c.model.encode_images(
            readable, dim=c.meta.dim, show_progress=False, labels=labels
        )
        return kept, vectors

    def check_model(self, encoder: Encoder) -> None:
        """Same texts, another image tower: refused."""
        recorded, c = self.spec.image_fingerprint, self.collection
        if recorded is not None and encoder.image_fingerprint != recorded:
            raise InputError(
                f"collection {c.path} holds image vectors made by {c.meta.model} "
                f"(image fingerprint {recorded[:12]}); "
                f"{encoder.name} embeds texts alike but images differently (image fingerprint "
                f"{encoder.image_fingerprint[:12]}), so it cannot be used with it"
            )


# -- the relative part ---------------------------------------------------------------------------
class RelativePart:
    """Vectors stored as cosines to anchor texts (uniembed.spaces.relative): any model that embeds
    the anchors searches the collection."""

    def __init__(self, collection, anchors: list[str]):
        self.collection, self.anchors = collection, anchors

    @staticmethod
    def read(path: Path, meta) -> list[str] | None:
        if meta.relative is None:
            return None
        from uniembed.spaces.relative import read_anchors

        return read_anchors(path, meta.relative)

    @staticmethod
    def checked(anchors, encoder: Encoder | None) -> list[str] | None:
        """The anchor texts of a collection to be created, or None."""
        if anchors is None:
            return None
        from uniembed.spaces.relative import checked_anchors

        anchors = checked_anchors(anchors)
        if encoder is None:
            raise InputError(
                "relative_anchors= needs a model to embed the anchors (a vectors-only collection "
                "has none)"
            )
        return anchors

    def wrap(self, encoder: Encoder) -> Encoder:
        """`encoder` as this collection stores vectors: its relative vectors to the anchors."""
        from uniembed.spaces.relative import RelativeEncoder

        c = self.collection
        if isinstance(encoder, RelativeEncoder):  # already relative: to these anchors, or useless
            if encoder.space != c.meta.relative["sha256"]:
                raise InputError(
                    f"{encoder.name} is relative to other anchors than collection {c.path}'s"
                )
            return encoder
        return RelativeEncoder(encoder, self.anchors)
