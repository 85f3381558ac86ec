"""Image inputs in, RGB PIL images out: every form a user may hand us, checked, decoded, upright.

Accepted: a file path (str or Path), encoded bytes (PNG, JPEG, ...), a data URI
(`data:image/png;base64,...`) or bare base64 string where a caller says so, a PIL image, or a numpy
array (H, W) / (H, W, C) with C in 1, 3, 4, uint8 or float in [0, 1].

What every image goes through: the size checks (bytes, then the pixel count read from the header,
before any pixel is decoded: Pillow's decompression-bomb guard, with our own limit), a full decode
(a truncated file fails here, not later in a batch), EXIF orientation, and conversion to 8-bit RGB:
palette and alpha images are composited on white (what a viewer shows), 16-bit and 32-bit greyscale
are scaled to 8 bits, everything else goes through Pillow's own RGB conversion.

URLs are refused, never fetched: a library that fetches what it is handed is a server-side
request forgery hole once it runs behind an API (see the service's docs).
"""

from __future__ import annotations

import base64
import binascii
import io
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from uniembed._extras import require
from uniembed.errors import InputError


class ImageTooLarge(InputError):
    """An image over the byte or pixel limit (the service answers 413)."""


@dataclass(frozen=True)
class ImageLimits:
    """The largest image we decode. 64 MiB of file and 100 million pixels (a 10,000 x 10,000
    photo) are far past any embedding model's input (224-512 px) and far below what would exhaust
    memory (100 Mpx of RGB is 300 MB)."""

    max_bytes: int = 64 * 1024 * 1024
    max_pixels: int = 100_000_000

    def __post_init__(self) -> None:
        for name in ("max_bytes", "max_pixels"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError(f"{name} must be a positive integer, got {value!r}")


DEFAULT_LIMITS = ImageLimits()


def is_data_uri(value: str) -> bool:
    return value[:5].lower() == "data:"


def decode_data_uri(value: str, where: str) -> bytes:
    """The bytes of a `data:[<type>][;base64],<data>` URI; only base64 URIs carry images."""
    header, comma, payload = value.partition(",")
    if not comma:
        raise InputError(f"{where}: a data URI needs a comma between its header and its data")
    if not header.lower().endswith(";base64"):
        raise InputError(f"{where}: only base64 data URIs can hold images (header {header[:60]!r})")
    return decode_base64(payload, where)


def decode_base64(payload: str, where: str) -> bytes:
    try:
        return base64.b64decode("".join(payload.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InputError(f"{where}: the base64 data is malformed ({exc})") from exc


def to_rgb(
    item: Any, where: str, limits: ImageLimits = DEFAULT_LIMITS, *, base: Path | None = None
):
    """`item` as a decoded 8-bit RGB PIL image, or InputError naming `where` (e.g. "image 3").

    base: resolve relative paths against this folder and refuse paths that leave it (used for
    path-reference collections and manifest files)."""
    require("images")
    from PIL import Image

    if isinstance(item, Image.Image):
        return _upright_rgb(_checked_pixels(item, where, limits), where)
    if isinstance(item, np.ndarray):
        return _from_array(item, where, limits)
    if isinstance(item, (bytes, bytearray, memoryview)):
        return _from_bytes(bytes(item), where, limits)
    if isinstance(item, str) and is_data_uri(item):
        return _from_bytes(decode_data_uri(item, where), where, limits)
    if isinstance(item, (str, Path)):
        return _from_bytes(
            read_image_file(item, where, limits, base=base), f"{where} ({item})", limits
        )
    raise InputError(
        f"{where} is {type(item).__name__}; an image is a file path, bytes, a data URI, "
        "a PIL image or a numpy array"
    )


def read_image_file(
    path: str | Path, where: str, limits: ImageLimits = DEFAULT_LIMITS, *, base: Path | None = None
) -> bytes:
    text = str(path)
    if text.lower().startswith(("http://", "https://", "ftp://")):
        raise InputError(
            f"{where} is a URL ({text[:80]}); uniembed never fetches URLs: download the image first"
        )
    file = Path(path)
    if base is not None:
        file = file if file.is_absolute() else base / file
        from uniembed.images.files import inside

        if not inside(file, base):
            raise InputError(f"{where}: {path} is outside the folder {base}")
    if not file.is_file():
        raise InputError(f"{where}: no image file at {file}")
    size = file.stat().st_size
    if size > limits.max_bytes:
        raise ImageTooLarge(
            f"{where}: {file} is {size} bytes, over the limit of {limits.max_bytes}"
        )
    try:
        return file.read_bytes()
    except OSError as exc:
        raise InputError(f"{where}: cannot read {file}: {exc.strerror or exc}") from exc


def _from_bytes(data: bytes, where: str, limits: ImageLimits):
    return _upright_rgb(_opened(data, where, limits, decode=True), where)


def check_image_bytes(data: bytes, where: str, limits: ImageLimits = DEFAULT_LIMITS) -> None:
    """The byte and pixel limits, and that Pillow knows the format, from the header alone (no
    pixel is decoded): for callers that decode later under other limits."""
    require("images")
    _opened(data, where, limits, decode=False)


def _opened(data: bytes, where: str, limits: ImageLimits, *, decode: bool):
    """A PIL image of `data`, checked against `limits` before any pixel is read; decoded when `decode`."""
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise InputError(f"{where}: the image is empty (0 bytes)")
    if len(data) > limits.max_bytes:
        raise ImageTooLarge(
            f"{where}: the image is {len(data)} bytes, over the limit of {limits.max_bytes}"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))  # reads the header only
            _checked_pixels(image, where, limits)
            if decode:
                image.load()
    except InputError:
        raise
    except UnidentifiedImageError as exc:
        raise InputError(
            f"{where}: not an image Pillow can read (not PNG, JPEG, GIF, WebP, BMP, TIFF, ...)"
        ) from exc
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageTooLarge(f"{where}: the image is too large to decode safely ({exc})") from exc
    except (
        Exception
    ) as exc:  # a damaged file raises OSError, SyntaxError, ValueError, EOFError, struct.error...
        raise InputError(
            f"{where}: the image is damaged or truncated ({type(exc).__name__}: {str(exc)[:120]})"
        ) from exc
    return image


def _checked_pixels(image, where: str, limits: ImageLimits):
    width, height = image.size
    if width < 1 or height < 1:
        raise InputError(f"{where}: the image has no pixels ({width}x{height})")
    if width * height > limits.max_pixels:
        raise ImageTooLarge(
            f"{where}: the image is {width}x{height} = {width * height} pixels, "
            f"over the limit of {limits.max_pixels}: too large to decode safely"
        )
    return image


def _upright_rgb(image, where: str):
    from PIL import Image, ImageOps

    try:
        image = ImageOps.exif_transpose(image)  # a photo taken sideways is stored sideways
    except Exception as exc:  # a damaged EXIF block: the pixels are still good, keep them as stored
        warnings.warn(
            f"{where}: EXIF orientation unreadable ({type(exc).__name__}); used as stored",
            RuntimeWarning,
            stacklevel=3,
        )
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        return Image.fromarray(_to_uint8(np.asarray(image), where)).convert("RGB")
    if mode == "P" and "transparency" in image.info or mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image.convert("RGB")


def _to_uint8(values: np.ndarray, where: str) -> np.ndarray:
    """16/32-bit integer or float greyscale pixels to 8 bits: integers by their bit depth (a
    16-bit image spans 0..65535), floats as [0, 1]."""
    if values.dtype.kind == "f":
        if not np.isfinite(values).all() or values.min() < 0 or values.max() > 1:
            raise InputError(f"{where}: float pixel values must be finite and in [0, 1]")
        return np.round(values * 255).astype(np.uint8)
    top = 65535 if values.max(initial=0) <= 65535 else np.iinfo(values.dtype).max
    if values.min(initial=0) < 0:
        raise InputError(f"{where}: negative pixel values")
    return np.round(values.astype(np.float64) * (255 / top)).astype(np.uint8)


def _from_array(array: np.ndarray, where: str, limits: ImageLimits):
    from PIL import Image

    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (3, 4))):
        raise InputError(
            f"{where}: an image array must be (H, W) or (H, W, C) with C in 1, 3, 4; got shape {array.shape}"
        )
    height, width = array.shape[:2]
    _checked_pixels(_Size(width, height), where, limits)
    if array.dtype == np.uint8:
        pixels = array
    elif array.dtype.kind == "f":
        if not np.isfinite(array).all() or array.min() < 0 or array.max() > 1:
            raise InputError(
                f"{where}: a float image array must hold finite values in [0, 1] "
                f"(got min {np.nanmin(array):.3g}, max {np.nanmax(array):.3g})"
            )
        pixels = np.round(array * 255).astype(np.uint8)
    else:
        raise InputError(
            f"{where}: an image array must be uint8 or float in [0, 1], got {array.dtype}"
        )
    return _upright_rgb(
        Image.fromarray(np.ascontiguousarray(pixels)), where
    )  # mode from the shape: L, RGB, RGBA


@dataclass
class _Size:  # what _checked_pixels reads from a PIL image, for arrays
    width: int
    height: int

    @property
    def size(self) -> tuple[int, int]:
        return self.width, self.height
