"""Relative representations (Moschella et al., 2023): each vector stored as its cosines to a fixed
set of anchor texts, embedded by the same model. Two models that embed the same anchors give
vectors in one space, so a collection created with `relative_anchors=` can be searched by any later
model at once, with no adapter and no re-index: `Collection.open(path, model=new)`.

The price is quality: a vector described by its similarities to a few hundred or thousand texts
loses what those texts do not span, and two models agree on which anchors are near what only
roughly (bench/upgrade.py measures both). So it is an option for new collections, not the default.
"""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path

import numpy as np

from uniembed.compress.truncate import l2_normalize
from uniembed.encoders.base import Encoder
from uniembed.errors import CollectionDamagedError, InputError

ANCHORS_FILE = "anchors.json"  # inside the collection folder
MAX_ANCHORS = 100_000
ANCHOR_PROMPT = "document"  # anchors are gallery-like texts; queries keep their own prompt


def relative_vectors(vectors: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """Each of `vectors` as its cosines to `anchors` (vectors of the same model), L2-normalised."""

    def unit(x):
        return l2_normalize(np.asarray(x, dtype=np.float32))

    return unit(unit(vectors) @ unit(anchors).T)


def checked_anchors(anchors) -> list[str]:
    """The anchor texts as a list; InputError names what is wrong (not a list of distinct,
    non-empty strings, or more than MAX_ANCHORS)."""
    if isinstance(anchors, (str, bytes)) or not isinstance(anchors, (list, tuple)):
        raise InputError(f"relative_anchors must be a list of texts, got {type(anchors).__name__}")
    if len(anchors) < 2:
        raise InputError(f"relative_anchors needs at least 2 texts, got {len(anchors)}")
    if len(anchors) > MAX_ANCHORS:
        raise InputError(f"relative_anchors takes at most {MAX_ANCHORS} texts, got {len(anchors)}")
    for i, text in enumerate(anchors):
        if not isinstance(text, str) or not text.strip():
            raise InputError(f"relative_anchors[{i}] must be a non-empty string, got {text!r:.60}")
    seen: dict[str, int] = {}
    for i, text in enumerate(anchors):
        if text in seen:
            raise InputError(
                f"relative_anchors[{i}] repeats relative_anchors[{seen[text]}] ({text!r:.60}): "
                "a repeated anchor adds a dimension that says nothing new"
            )
        seen[text] = i
    return list(anchors)


def anchors_digest(anchors: list[str]) -> str:
    return hashlib.sha256(json.dumps(anchors, ensure_ascii=False).encode("utf-8")).hexdigest()


def write_anchors(folder: Path, anchors: list[str]) -> dict:
    """Writes the anchors file into `folder` (a collection being created: its staging folder) and
    returns what collection.json records of them."""
    (Path(folder) / ANCHORS_FILE).write_text(
        json.dumps(anchors, ensure_ascii=False), encoding="utf-8"
    )
    return {"anchors": len(anchors), "sha256": anchors_digest(anchors)}


def read_anchors(folder: Path, recorded: dict) -> list[str]:
    """The collection's anchors, checked against what collection.json recorded of them."""
    path = Path(folder) / ANCHORS_FILE
    try:
        anchors = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CollectionDamagedError(
            f"{folder}: collection damaged: its {ANCHORS_FILE} cannot be read "
            f"({type(exc).__name__})"
        ) from None
    if not isinstance(anchors, list) or anchors_digest(anchors) != recorded.get("sha256"):
        raise CollectionDamagedError(
            f"{folder}: collection damaged: its {ANCHORS_FILE} is not the anchor set "
            "the collection was made with"
        )
    return anchors


class RelativeEncoder(Encoder):
    """`base`'s vectors as cosines to `base`'s vectors of the anchors: len(anchors) dimensions.
    The anchors are embedded once, on first use."""

    def __init__(self, base: Encoder, anchors: list[str]):
        anchors = checked_anchors(anchors)
        if "text" not in base.modalities:
            raise InputError(
                f"relative representations embed anchor texts; {base.name} embeds no text"
            )
        super().__init__(f"{base.name} (relative to {len(anchors)} anchors)", len(anchors))
        self.base, self.anchors, self.space = base, anchors, anchors_digest(anchors)
        self.source = base.source
        self._anchor_vectors: np.ndarray | None = None
        self._lock = threading.Lock()

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(f"relative/{self.space}/{self.base.fingerprint}".encode()).hexdigest()

    def anchor_vectors(self) -> np.ndarray:
        with self._lock:
            if self._anchor_vectors is None:
                self._anchor_vectors = self.base.encode(
                    self.anchors, prompt=ANCHOR_PROMPT, show_progress=False
                )
            return self._anchor_vectors

    def encode(
        self,
        texts,
        *,
        prompt=None,
        normalize=True,
        dim=None,
        batch_size=32,
        long="truncate",
        show_progress=None,
    ) -> np.ndarray:
        if dim is not None and dim != self.dim:
            raise InputError(
                f"relative vectors have one dimension per anchor ({self.dim}); dim={dim!r} cannot cut them"
            )
        vectors = self.base.encode(
            texts, prompt=prompt, batch_size=batch_size, long=long, show_progress=show_progress
        )
        return relative_vectors(vectors, self.anchor_vectors())

    def encode_batch(self, texts, *, long="truncate") -> np.ndarray:
        return relative_vectors(self.base.encode_batch(texts, long=long), self.anchor_vectors())
