"""Image inputs: every accepted form decodes to the same RGB pixels, every bad one is an InputError
naming the item; preprocessing equals transformers' own processors on real photos; folders."""

from __future__ import annotations

import base64
import io
import struct
import zlib

import numpy as np
import pytest

pytest.importorskip("PIL")
from PIL import Image

from uniembed.errors import InputError
from uniembed.images.decode import ImageLimits, to_rgb
from uniembed.images.files import walk_images
from uniembed.images.preprocess import ImagePreprocessing


def png_bytes(image: Image.Image, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", **options)
    return buffer.getvalue()


@pytest.fixture
def photo() -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, size=(12, 20, 3), dtype=np.uint8))


def pixels(image) -> np.ndarray:
    return np.asarray(image)


def test_every_input_form_decodes_to_the_same_pixels(photo, tmp_path):
    data = png_bytes(photo)
    (tmp_path / "a.png").write_bytes(data)
    uri = "data:image/png;base64," + base64.b64encode(data).decode()
    forms = [
        str(tmp_path / "a.png"),
        tmp_path / "a.png",
        data,
        bytearray(data),
        uri,
        photo,
        np.asarray(photo),
        np.asarray(photo).astype(np.float32) / 255,
    ]
    for form in forms:
        decoded = to_rgb(form, "image 0")
        assert decoded.mode == "RGB" and decoded.size == (20, 12)
        assert np.array_equal(pixels(decoded), np.asarray(photo)), type(form)


def test_grey_arrays_and_modes_become_rgb():
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4)
    for form in (grey, grey[:, :, None], Image.fromarray(grey)):
        out = pixels(to_rgb(form, "x"))
        assert (
            out.shape == (3, 4, 3)
            and np.array_equal(out[:, :, 0], grey)
            and np.array_equal(out[:, :, 2], grey)
        )


def test_transparency_is_composited_on_white():
    rgba = np.zeros((2, 2, 4), dtype=np.uint8)
    rgba[0, 0] = (255, 0, 0, 255)  # opaque red stays red; the transparent rest becomes white
    out = pixels(to_rgb(Image.fromarray(rgba), "x"))
    assert tuple(out[0, 0]) == (255, 0, 0) and tuple(out[1, 1]) == (255, 255, 255)
    palette = Image.fromarray(np.array([[0, 1]], dtype=np.uint8), "P")
    palette.putpalette([0, 0, 0, 0, 255, 0] + [0] * 762)
    palette.info["transparency"] = 0
    decoded = pixels(to_rgb(png_bytes(palette, transparency=0), "x"))
    assert tuple(decoded[0, 0]) == (255, 255, 255) and tuple(decoded[0, 1]) == (0, 255, 0)


def test_sixteen_bit_greyscale_is_scaled_by_its_depth():
    deep = Image.fromarray(np.array([[0, 65535, 32896]], dtype=np.uint16))
    out = pixels(to_rgb(png_bytes(deep), "x"))
    assert out[0, :, 0].tolist() == [0, 255, 128]


def test_exif_orientation_is_applied(photo):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    buffer = io.BytesIO()
    photo.save(buffer, format="JPEG", exif=exif, quality=95)
    decoded = to_rgb(buffer.getvalue(), "x")
    assert decoded.size == (12, 20)  # width and height swapped


def _huge_png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height (no pixel data to speak of)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body))
            + kind
            + body
            + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 10))
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "empty"),
        (b"this is plain text, not a jpeg", "not an image"),
        (None, "damaged or truncated"),  # filled in below: a truncated PNG
        (_huge_png_header(20000, 20000), "too large to decode safely"),
    ],
)
def test_bad_image_bytes_are_input_errors_naming_the_item(photo, data, message):
    if data is None:
        data = png_bytes(photo)[:60]
    with pytest.raises(InputError, match=message) as caught:
        to_rgb(data, "image 7")
    assert "image 7" in str(caught.value)


def test_bad_forms_are_input_errors(tmp_path):
    (tmp_path / "notes.jpg").write_text("hello")
    cases = [
        ("data:image/png;base64,@@@not-base64@@@", "base64"),
        ("data:image/png,rawdata", "base64"),
        ("https://example.com/cat.jpg", "never fetches"),
        (str(tmp_path / "missing.png"), "no image file"),
        (str(tmp_path / "notes.jpg"), "not an image"),
        (np.zeros((2, 2, 2), dtype=np.uint8), "shape"),
        (np.full((2, 2), 2.0), r"\[0, 1\]"),
        (np.zeros((2, 2), dtype=np.int32), "uint8 or float"),
        (42, "int"),
    ]
    for item, message in cases:
        with pytest.raises(InputError, match=message):
            to_rgb(item, "image 3")


def test_limits_apply_before_decoding(photo, tmp_path):
    small = ImageLimits(max_bytes=100, max_pixels=50)
    with pytest.raises(InputError, match="bytes"):
        to_rgb(png_bytes(photo), "x", small)
    with pytest.raises(InputError, match="pixels"):
        to_rgb(np.zeros((10, 10), dtype=np.uint8), "x", small)
    with pytest.raises(InputError, match="max_pixels"):
        ImageLimits(max_pixels=0)


def test_relative_paths_stay_inside_their_base(photo, tmp_path):
    base = tmp_path / "pics"
    base.mkdir()
    (base / "in.png").write_bytes(png_bytes(photo))
    (tmp_path / "out.png").write_bytes(png_bytes(photo))
    assert to_rgb("in.png", "x", base=base).size == (20, 12)
    with pytest.raises(InputError, match="outside"):
        to_rgb("../out.png", "x", base=base)
    (base / "link.png").symlink_to(tmp_path / "out.png")
    with pytest.raises(InputError, match="outside"):
        to_rgb("link.png", "x", base=base)


# -- preprocessing against transformers' processors, on real photos ----------------------------
def _sample_photos() -> list[Image.Image]:
    from sklearn.datasets import load_sample_images

    return [Image.fromarray(image) for image in load_sample_images().images]  # two 427x640 photos


@pytest.mark.parametrize(
    "processor_name, options",
    [
        ("clip", {}),
        (
            "clip",
            {"size": {"shortest_edge": 100}, "crop_size": {"height": 91, "width": 120}},
        ),  # odd margins
        (
            "clip",
            {"size": {"shortest_edge": 50}, "crop_size": {"height": 80, "width": 80}},
        ),  # crop larger: zero padding
        ("siglip", {}),
        ("siglip", {"size": {"height": 64, "width": 96}, "resample": 2}),
    ],
)
def test_preprocessing_equals_transformers_processor(processor_name, options):
    pytest.importorskip("sklearn")
    if processor_name == "clip":
        from transformers.models.clip.image_processing_pil_clip import (
            CLIPImageProcessorPil as Processor,
        )
    else:
        from transformers.models.siglip.image_processing_pil_siglip import (
            SiglipImageProcessorPil as Processor,
        )
    processor = Processor(**options)
    photos = _sample_photos() + [_sample_photos()[0].rotate(90, expand=True)]  # a portrait one too
    expected = processor(images=photos, return_tensors="np")["pixel_values"]
    ours = ImagePreprocessing.from_config(processor.to_dict()).batch(photos)
    assert ours.dtype == np.float32 and ours.shape == expected.shape
    np.testing.assert_allclose(ours, expected, atol=1e-6, rtol=0)


def test_preprocessing_config_round_trips_and_rejects_nonsense():
    from uniembed.errors import ModelLoadError

    settings = ImagePreprocessing.from_config(
        {"size": {"shortest_edge": 64}, "do_center_crop": True, "crop_size": 60}
    )
    assert (
        settings.crop == (60, 60)
        and ImagePreprocessing.from_config(settings.to_config()) == settings
    )
    for bad in (
        {"size": {"width": 3}},
        {"size": 32, "image_mean": [0.5], "image_std": [0.5]},
        {"do_resize": False},
        {"size": 32, "image_std": [0, 1, 1]},
    ):
        with pytest.raises(ModelLoadError):
            ImagePreprocessing.from_config(bad)


# -- folders ---------------------------------------------------------------------------------------
def test_folders_walk_sorted_skip_others_and_stay_inside(photo, tmp_path):
    root = tmp_path / "photos"
    (root / "b").mkdir(parents=True)
    for name in ("b/2.png", "a.JPG", "b/1.png"):
        (root / name).write_bytes(png_bytes(photo))
    (root / "notes.txt").write_text("x")
    (tmp_path / "secret.png").write_bytes(png_bytes(photo))
    (root / "escape.png").symlink_to(tmp_path / "secret.png")
    (root / "inner.png").symlink_to(root / "a.JPG")
    found = walk_images(root)
    assert found.ids == ["a.JPG", "b/1.png", "b/2.png", "inner.png"]
    assert found.skipped == 1 and found.outside == 1
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.md").write_text("x")
    with pytest.raises(InputError, match="no image files"):
        walk_images(tmp_path / "empty")
    with pytest.raises(InputError, match="not a folder"):
        walk_images(tmp_path / "secret.png")


SETTINGS = [
    ImagePreprocessing(),
    ImagePreprocessing(shortest_edge=None, resize=(20, 30), crop=None),
    ImagePreprocessing(shortest_edge=24, crop=None),
    ImagePreprocessing(shortest_edge=None, crop=(40, 40)),
    ImagePreprocessing(shortest_edge=16, crop=(12, 20), resample=2),
]


@pytest.mark.parametrize("settings", SETTINGS, ids=range(len(SETTINGS)))
@pytest.mark.parametrize("size", [(1, 1), (7, 300), (300, 7), (64, 48), (500, 500), (33, 17)])
def test_a_reduced_image_gives_the_same_pixels_to_the_bit(settings, size):
    # issue 30: requests hold images reduced as soon as they are decoded; the vectors must not change
    image = Image.fromarray(
        np.random.default_rng(size[0]).integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    )
    reduced = settings.resized(image)
    np.testing.assert_array_equal(settings.pixels(reduced), settings.pixels(image))
    np.testing.assert_array_equal(settings.batch([reduced]), settings.batch([image]))
    if settings == ImagePreprocessing() and size == (500, 500):
        assert reduced.size == (224, 224)


def test_encode_images_holds_one_decoded_image_at_a_time(clip_model, monkeypatch):
    # issue 30: a batch of 32 large images used to be decoded all at once before preprocessing
    import weakref

    import uniembed.images.decode as decode

    decoded, most = (
        [],
        [0],
    )  # weak references to every decoded image (PIL images are unhashable: no WeakSet)
    real = decode.to_rgb

    def counting(*args, **kwargs):
        image = real(*args, **kwargs)
        decoded.append(weakref.ref(image))
        most[0] = max(most[0], sum(ref() is not None for ref in decoded))
        return image

    monkeypatch.setattr(decode, "to_rgb", counting)
    images = [np.full((60 + i, 50, 3), 10 * i, np.uint8) for i in range(12)]
    vectors = clip_model.encode_images(images, batch_size=8)
    assert most[0] == 1
    monkeypatch.setattr(decode, "to_rgb", real)
    np.testing.assert_array_equal(vectors, clip_model.encode_images(images, batch_size=8))


def test_an_extreme_aspect_ratio_is_refused_before_the_resize_allocates_it():
    # issue 30 hostile round: a 1 x 39,000,000 PNG is under the decode limit, but its shortest-edge
    # resize would be 224 x 8.7e9 pixels (a MemoryError, HTTP 500)
    from uniembed.images.decode import ImageTooLarge

    tall = Image.new("L", (1, 39_000_000 // 100), 0).convert(
        "RGB"
    )  # 1 x 390,000: 224 x 87,360,000 resized
    with pytest.raises(
        ImageTooLarge, match=r"image 3 is 1x390000: resized for this model it would be 224x87360000"
    ):
        ImagePreprocessing().pixels(tall, "image 3")
    banner = Image.new("RGB", (20_000, 200))  # a panorama resizes to 22,400 x 224: fine
    assert ImagePreprocessing().pixels(banner).shape == (224, 224, 3)
