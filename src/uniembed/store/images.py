"""Images kept by a collection: the bytes themselves, or a path reference.

storage "bytes": the image's encoded file (as given: PNG, JPEG...; PIL images and arrays are
written as PNG) in the row, up to `max_bytes` each (default 4 MiB: a photo, not a raw scan); the
collection is self-contained and survives moving its folder.
storage "path": the image's path relative to `root` (default: the collection's own folder), for
large images that live elsewhere; a path that resolves outside the root (through `..` or a
symlink) is refused, so a collection cannot be made to serve arbitrary files of the machine.

Every image is decoded before anything is written (a broken image never reaches the store).
"""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass
from pathlib import Path

from uniembed.errors import InputError

IMAGE_STORAGES = ("bytes", "path")
DEFAULT_MAX_IMAGE_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class ImageSpec:
    storage: str
    max_bytes: int = DEFAULT_MAX_IMAGE_BYTES
    root: str | None = (
        None  # path storage: folder the paths are relative to; None: the collection folder
    )
    # the image_fingerprint of the model that made the image vectors (a bound model's differs from
    # its text fingerprint); None in collections made before it was recorded
    image_fingerprint: str | None = None

    @classmethod
    def make(
        cls, storage: str, max_bytes: int | None = None, root: str | Path | None = None
    ) -> ImageSpec:
        if storage not in IMAGE_STORAGES:
            raise InputError(f"images must be one of {list(IMAGE_STORAGES)}, got {storage!r}")
        limit = DEFAULT_MAX_IMAGE_BYTES if max_bytes is None else max_bytes
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise InputError(f"max_image_bytes must be a positive integer, got {max_bytes!r}")
        if root is not None and storage != "path":
            raise InputError("image_root applies to path-reference collections (images='path')")
        if root is not None and not Path(root).is_dir():
            raise InputError(f"image_root {root} is not a folder")
        return cls(storage, limit, str(Path(root).resolve()) if root is not None else None)

    def to_dict(self) -> dict:
        return asdict(self)

    def root_of(self, collection: Path) -> Path:
        return Path(self.root) if self.root else Path(collection).resolve()

    def stored(self, images: list, collection: Path, labels: list[str]) -> list[bytes | str]:
        """What each image's row keeps (bytes, or a path relative to the root); InputError names
        the first image that cannot be kept."""
        return [self._one(image, collection, where) for image, where in zip(images, labels)]

    def _one(self, image, collection: Path, where: str) -> bytes | str:
        from uniembed.images.decode import decode_data_uri, is_data_uri, read_image_file

        if self.storage == "path":
            if not isinstance(image, (str, Path)) or (
                isinstance(image, str) and is_data_uri(image)
            ):
                raise InputError(
                    f"{where}: this collection keeps image paths (images='path'); got "
                    f"{'a data URI' if isinstance(image, str) else type(image).__name__}"
                )
            root = self.root_of(collection)
            path = Path(image) if Path(image).is_absolute() else root / image
            try:
                relative = path.resolve().relative_to(root)
            except ValueError:
                raise InputError(
                    f"{where}: {image} is outside the collection's image folder {root}"
                ) from None
            return relative.as_posix()
        if isinstance(image, (bytes, bytearray, memoryview)):
            data = bytes(image)
        elif isinstance(image, str) and is_data_uri(image):
            data = decode_data_uri(image, where)
        elif isinstance(image, (str, Path)):
            data = read_image_file(image, where)
        else:  # a PIL image or an array: kept as PNG
            from uniembed.images.decode import to_rgb

            buffer = io.BytesIO()
            to_rgb(image, where).save(buffer, format="PNG")
            data = buffer.getvalue()
        if len(data) > self.max_bytes:
            raise InputError(
                f"{where}: the image is {len(data)} bytes, over this collection's limit of {self.max_bytes}; "
                "create the collection with a larger max_image_bytes, or images='path'"
            )
        return data

    def readable(self, value: bytes | str | None, collection: Path) -> bytes | str | None:
        """A stored value as the decoder takes it: bytes, or the absolute path of a reference."""
        if value is None or self.storage == "bytes":
            return value
        return str(self.root_of(collection) / value)
