"""A 2D map of a collection: its vectors projected to the plane, for the web page (and for Python).

    project(collection, method="pca", max_points=20_000) -> Projection

Sampling: a collection larger than `max_points` is drawn through the items whose id hashes
(BLAKE2b, 8 bytes) are the smallest `max_points`. The sample depends on the ids alone, so it is the
same every time, and adding items changes it only where a new id hashes low: the map does not jump
between versions. PCA (the default) is two SVD components of the centred sample, computed in
float64 on at most `max_points` x dim numbers: under a second for 20,000 x 384. UMAP (`umap-learn`,
optional) keeps local neighbourhoods better and takes tens of seconds; both are cached by
`ProjectionCache` per collection version, so only the first request pays.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from uniembed.errors import InputError, MissingExtraError

METHODS = ("pca", "umap")
MAX_POINTS = 20_000
MAX_POINTS_LIMIT = 200_000  # a page cannot draw more usefully; the JSON would be tens of MB


@dataclass(frozen=True)
class Projection:
    version: int
    method: str
    field: str
    total: int  # live items in the collection at this version
    ids: list[str]
    xy: np.ndarray  # (n, 2) float32, scaled into [-1, 1]

    @property
    def sampled(self) -> bool:
        return len(self.ids) < self.total


def check_method(method: str) -> str:
    if method not in METHODS:
        raise InputError(f"method must be one of {list(METHODS)}, got {method!r}")
    return method


def check_max_points(max_points) -> int:
    if (
        isinstance(max_points, bool)
        or not isinstance(max_points, int)
        or not 2 <= max_points <= MAX_POINTS_LIMIT
    ):
        raise InputError(
            f"max_points must be an integer in [2, {MAX_POINTS_LIMIT}], got {max_points!r}"
        )
    return max_points


def stable_sample(ids: list[str], size: int) -> np.ndarray:
    """Positions of the `size` ids with the smallest BLAKE2b hashes, in their original order."""
    if len(ids) <= size:
        return np.arange(len(ids))
    keys = np.fromiter(
        (
            int.from_bytes(hashlib.blake2b(i.encode(), digest_size=8).digest(), "little")
            for i in ids
        ),
        dtype=np.uint64,
        count=len(ids),
    )
    return np.sort(np.argpartition(keys, size - 1)[:size])


def project(
    collection, *, method: str = "pca", field: str | None = None, max_points: int = MAX_POINTS
) -> Projection:
    """The map of `collection` (a folder collection) at its latest version."""
    check_method(method)
    check_max_points(max_points)
    field = field or collection.meta.default_field
    if field not in collection.meta.fields:
        raise InputError(
            f"collection has no vector field {field!r}; its fields: {list(collection.meta.fields)}"
        )
    snapshot = collection.snapshot()
    live = np.flatnonzero(snapshot.alive)
    chosen = live[stable_sample([snapshot.ids[r] for r in live], max_points)]
    vectors = np.asarray(snapshot.vectors(field)[chosen], dtype=np.float64)
    xy = _umap(vectors) if method == "umap" else pca_2d(vectors)
    return Projection(
        version=snapshot.version,
        method=method,
        field=field,
        total=len(live),
        ids=[snapshot.ids[r] for r in chosen],
        xy=_scaled(xy),
    )


def pca_2d(vectors: np.ndarray) -> np.ndarray:
    """The first two principal components of the rows (zeros where fewer than 2 rows or no spread);
    each axis's sign fixed so that its largest loading is positive (the same map on every call)."""
    out = np.zeros((len(vectors), 2))
    if len(vectors) < 2:
        return out
    centred = vectors - vectors.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    axes = vt[:2]
    axes *= np.sign(axes[np.arange(len(axes)), np.abs(axes).argmax(axis=1)])[:, None]
    out[:, : len(axes)] = centred @ axes.T
    return out


def _umap(vectors: np.ndarray) -> np.ndarray:
    try:
        import umap
    except ImportError:
        raise MissingExtraError(
            'the UMAP map needs umap-learn: pip install "uniembed[map]" (or pip install '
            "umap-learn), or use method=pca"
        ) from None
    if len(vectors) < 4:  # UMAP needs a few neighbours; a tiny collection is drawn by PCA
        return pca_2d(vectors)
    reducer = umap.UMAP(
        n_components=2, n_neighbors=min(15, len(vectors) - 1), metric="cosine", random_state=0
    )
    return np.asarray(reducer.fit_transform(vectors), dtype=np.float64)


def _scaled(xy: np.ndarray) -> np.ndarray:
    """Into [-1, 1] on the longer axis, centred, keeping the aspect ratio."""
    if len(xy) == 0:
        return xy.astype(np.float32)
    low, high = xy.min(axis=0), xy.max(axis=0)
    span = float((high - low).max()) or 1.0
    return ((xy - (low + high) / 2) * (2 / span)).astype(np.float32)


class ProjectionCache:
    """The last few maps, keyed by (collection key, version, method, field, max_points): a map is
    computed once per collection version; concurrent first requests compute it once."""

    def __init__(self, size: int = 16):
        self._size = size
        self._maps: OrderedDict[tuple, Projection] = OrderedDict()
        self._lock = threading.Lock()
        self._computing: dict[tuple, threading.Lock] = {}

    def forget(self, key: object) -> None:
        """Drop every map of `key` (its collection was dropped: a new one may reuse its versions)."""
        with self._lock:
            for entry in [entry for entry in self._maps if entry[0] == key]:
                del self._maps[entry]

    def get(
        self, key: object, collection, *, method: str, field: str | None, max_points: int
    ) -> Projection:
        field = field or collection.meta.default_field
        entry = (key, collection.version, method, field, max_points)
        with self._lock:
            if entry in self._maps:
                self._maps.move_to_end(entry)
                return self._maps[entry]
            gate = self._computing.setdefault(entry, threading.Lock())
        with gate:
            with self._lock:
                if entry in self._maps:
                    return self._maps[entry]
            try:
                projection = project(collection, method=method, field=field, max_points=max_points)
            finally:  # a failed computation (UMAP missing, a bad field) leaves no gate behind
                with self._lock:
                    self._computing.pop(entry, None)
            with self._lock:
                self._maps[entry] = projection
                while len(self._maps) > self._size:
                    self._maps.popitem(last=False)
            return projection
