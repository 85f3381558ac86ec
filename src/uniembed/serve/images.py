"""Images in requests: a data URI (`data:image/png;base64,...`) or bare base64, nothing else.

The server never fetches a URL and never reads a path it is sent: either would let any client
make the server reach its own network (server-side request forgery: cloud metadata endpoints,
internal services) or read its files. Clients send the bytes. Decoding runs off the event loop,
under the server's limits (`--max-image-pixels`, and the request body limit for bytes): past them
the answer is 413; a damaged or unreadable image is 400, naming the item.
"""

from __future__ import annotations

from uniembed.errors import InputError
from uniembed.images.decode import ImageLimits, decode_base64, decode_data_uri, is_data_uri, to_rgb


def request_image_bytes(value: str, where: str) -> bytes:
    """The bytes of an image sent as a data URI or bare base64; URLs and paths are refused."""
    if is_data_uri(value):
        return decode_data_uri(value, where)
    if value[:8].lower().startswith(("http://", "https://", "ftp://", "file:")) or value.startswith(
        ("/", "./", "../")
    ):
        raise InputError(
            f"{where}: send the image itself (a data URI or base64), not a URL or a path: "
            "the server never fetches URLs or reads paths it is sent"
        )
    return decode_base64(value, where)


def decode_request_images(
    values: list[str], labels: list[str], limits: ImageLimits, preprocessing=None
) -> list:
    """Decoded RGB images (PIL) of request images; InputError (400) or ImageTooLarge (413) naming the item.

    preprocessing: the model's (ImagePreprocessing); each image is then reduced to what the model
    sees as soon as it is decoded, so a request of many large images holds one full-size image at
    a time, not all of them (the vectors are the same to the bit, see `ImagePreprocessing.resized`)."""
    decoded = []
    for value, where in zip(values, labels):
        image = to_rgb(request_image_bytes(value, where), where, limits)
        decoded.append(preprocessing.resized(image, where) if preprocessing is not None else image)
        del image  # the full-size image goes before the next one is decoded
    return decoded
