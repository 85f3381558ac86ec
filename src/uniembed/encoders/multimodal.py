"""Images and image+text items for encoders that have an image tower.

`ImageTower` is mixed into an Encoder that also implements `encode_image_batch(pixel_values)`; it
owns what every image model shares: input checks, decoding in batches (memory stays bounded on
long lists: at most one batch of decoded images exists at a time), the model's preprocessing, the
progress bar, normalisation and Matryoshka truncation, as `Encoder.encode` does for texts.

Items (`encode_items`) are dicts with an "image", a "text", or both. An item with both is fused by
one documented rule: the weighted sum of its normalised image and text vectors,
`image_weight * image + (1 - image_weight) * text`, renormalised. The text part takes the
prompt (query/document instruction) as a text input would.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from uniembed.compress.truncate import l2_normalize, truncate
from uniembed.errors import InputError

ITEM_KEYS = ("image", "text")


def check_images(images: object) -> list:
    """`images` as a list, or InputError naming what is wrong with it (or its first bad item)."""
    if isinstance(images, (str, bytes, Path)) or type(images).__module__.startswith("PIL."):
        raise InputError(
            f"expected a list of images, got a single {type(images).__name__}; wrap it in a list"
        )
    if isinstance(images, np.ndarray) and images.dtype != object:
        raise InputError(
            "expected a list of images, got one array; pass [array] for one image, list(array) for a stack"
        )
    if not isinstance(images, (Sequence, np.ndarray)):
        raise InputError(f"expected a list of images, got {type(images).__name__}")
    items = list(images)
    if not items:
        raise InputError("expected at least one image, got an empty list")
    for index, item in enumerate(items):
        if isinstance(item, dict):
            raise InputError(
                f"image {index} is a dict: use encode_items for {{'image': ..., 'text': ...}} items"
            )
        if item is None:
            raise InputError(f"image {index} is None")
    return items


def check_items(items: object, labels: Sequence[str] | None = None) -> list[dict]:
    """`items` as a list of {"image"?, "text"?} dicts, or InputError naming the first bad item
    (by `labels[i]` when given, e.g. "file.jsonl:12", else "item i")."""
    if isinstance(items, dict):
        raise InputError("expected a list of items, got a single dict; wrap it in a list")
    if isinstance(items, (str, bytes)) or not isinstance(items, Sequence):
        raise InputError(
            f"expected a list of {{'image': ..., 'text': ...}} items, got {type(items).__name__}"
        )
    out = list(items)
    if not out:
        raise InputError("expected at least one item, got an empty list")
    for index, item in enumerate(out):
        where = labels[index] if labels is not None else f"item {index}"
        if not isinstance(item, dict):
            raise InputError(
                f"{where} is {type(item).__name__}, expected a dict with 'image' and/or 'text'"
            )
        unknown = sorted(set(item) - set(ITEM_KEYS))
        if unknown:
            raise InputError(
                f"{where} has unknown key(s) {unknown}; an item holds 'image' and/or 'text'"
            )
        if all(item.get(key) is None for key in ITEM_KEYS):
            raise InputError(f"{where} has neither an image nor a text")
        text = item.get("text")
        if text is not None and (not isinstance(text, str) or not text):
            raise InputError(f"{where}: 'text' must be a non-empty string, got {text!r:.40}")
    return out


def check_image_weight(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise InputError(f"image_weight must be a number in [0, 1], got {value!r}")
    return float(value)


def fuse(image: np.ndarray, text: np.ndarray, image_weight: float) -> np.ndarray:
    """The item rule: the weighted sum of normalised image and text vectors, renormalised."""
    return l2_normalize(
        image_weight * l2_normalize(image) + (1 - image_weight) * l2_normalize(text)
    )


def encode_items(
    encoder,
    items,
    *,
    image_weight: float = 0.5,
    prompt: str | None = None,
    dim: int | None = None,
    batch_size: int = 32,
    show_progress: bool | None = None,
    base: Path | None = None,
    labels: Sequence[str] | None = None,
) -> np.ndarray:
    """(n, dim) unit vectors of image / text / image+text items (see the module docstring).
    labels: how errors name each item (default "item <index>")."""
    if encoder.fuses_items:  # a VLM reads image and text as one sequence
        return encoder.encode_items(
            items,
            image_weight=image_weight,
            prompt=prompt,
            dim=dim,
            batch_size=batch_size,
            show_progress=show_progress,
            labels=labels,
            base=base,
        )
    items = check_items(items, labels)
    names = list(labels) if labels is not None else [f"item {i}" for i in range(len(items))]
    weight = check_image_weight(image_weight)
    with_image = [i for i, item in enumerate(items) if item.get("image") is not None]
    with_text = [i for i, item in enumerate(items) if item.get("text") is not None]
    if with_image and "image" not in encoder.modalities:
        raise InputError(
            f"{names[with_image[0]]} holds an image, but model {encoder.name} embeds text only"
        )
    encoder.check_dim(dim)
    out = np.zeros((len(items), encoder.dim), dtype=np.float32)
    has_text = np.zeros(len(items), dtype=bool)
    if with_text:
        out[with_text] = encoder.encode(
            [items[i]["text"] for i in with_text],
            prompt=prompt,
            batch_size=batch_size,
            show_progress=show_progress,
        )
        has_text[with_text] = True
    if with_image:
        images = encoder.encode_images(
            [items[i]["image"] for i in with_image],
            batch_size=batch_size,
            show_progress=show_progress,
            base=base,
            labels=[names[i] for i in with_image],
        )
        both = has_text[with_image]
        out[with_image] = np.where(both[:, None], fuse(images, out[with_image], weight), images)
    return out if dim is None else truncate(out, dim, normalize=True)


class ImageTower:
    """Mixin for an Encoder with an image tower; the class sets `preprocessing` and `limits`."""

    modalities = ("text", "image")

    @abstractmethod
    def encode_image_batch(self, pixel_values: np.ndarray) -> np.ndarray:
        """(n, dim) float32 raw image embeddings of (n, 3, H, W) float32 preprocessed pixels."""

    def encode_images(
        self,
        images,
        *,
        normalize: bool = True,
        dim: int | None = None,
        batch_size: int = 32,
        show_progress: bool | None = None,
        base: Path | None = None,
        labels: Sequence[object] | None = None,
    ) -> np.ndarray:
        """Embed images (paths, bytes, data URIs, PIL images, arrays) into (n, dim) float32.

        base: relative paths are read from this folder and may not leave it.
        labels: how errors name each image (default: "image <index>")."""
        from uniembed.encoders.base import check_model_output, check_positive_int, progress_bar
        from uniembed.images.decode import to_rgb

        items = check_images(images)
        check_positive_int("batch_size", batch_size)
        self.check_dim(dim)
        names = list(labels) if labels is not None else [f"image {i}" for i in range(len(items))]
        out = np.empty((len(items), self.dim), dtype=np.float32)
        starts = np.arange(0, len(items), batch_size)
        for start in progress_bar(starts, len(items), batch_size, show_progress):
            stop = min(start + batch_size, len(items))
            # one decoded image at a time, kept only as the model's pixels: memory stays flat
            # however large the images are (a 40 Mpx image decodes to 120 MB of RGB)
            pixels = [
                self.preprocessing.pixels(
                    to_rgb(items[i], names[i], self.limits, base=base), names[i]
                )
                for i in range(start, stop)
            ]
            out[start:stop] = self.encode_image_batch(self.preprocessing.stack(pixels))
        check_model_output(out, self.name)
        if dim is not None:
            return truncate(out, dim, normalize=normalize)
        return l2_normalize(out) if normalize else out
