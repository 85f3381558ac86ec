"""Collections that keep images: bytes or path references, searched by text, image or both, with
filters and hybrid; bad images write nothing."""

from __future__ import annotations

import io

import numpy as np
import pytest

pytest.importorskip("PIL")
from PIL import Image

from uniembed.errors import InputError
from uniembed.store import Collection


def photo(seed: int) -> Image.Image:
    return Image.fromarray(
        np.random.default_rng(seed).integers(0, 256, size=(30, 40, 3), dtype=np.uint8)
    )


def png(seed: int) -> bytes:
    buffer = io.BytesIO()
    photo(seed).save(buffer, format="PNG")
    return buffer.getvalue()


CAPTIONS = ["a red cat", "a blue dog", None, "the sun and rain", "money in the bank"]


@pytest.fixture
def pics(tmp_path, clip_model):
    col = Collection.create(tmp_path / "pics", model=clip_model, images="bytes")
    col.add(
        [f"p{i}" for i in range(5)],
        images=[png(i) for i in range(5)],
        texts=CAPTIONS,
        payloads=[{"n": i} for i in range(5)],
    )
    return col


def test_images_are_kept_and_embedded(pics, clip_model):
    item = pics.get(["p1"])[0]
    assert item.image == png(1) and item.text == "a blue dog"
    np.testing.assert_allclose(
        item.vectors["default"], clip_model.encode_images([png(1)])[0], atol=1e-6
    )


def test_search_by_image_text_and_both(pics, clip_model):
    assert pics.search(image=png(3), k=1)[0].id == "p3"  # an image finds itself
    by_text = pics.search("a red cat", k=5)
    expected = (
        clip_model.encode_images([png(i) for i in range(5)])
        @ clip_model.encode(["a red cat"], prompt="query")[0]
    )
    assert [h.id for h in by_text] == [f"p{i}" for i in np.argsort(-expected)]
    both = pics.search("a red cat", image=png(2), image_weight=0.7, k=5)
    query = clip_model.encode_items(
        [{"image": png(2), "text": "a red cat"}], image_weight=0.7, prompt="query"
    )[0]
    scores = clip_model.encode_images([png(i) for i in range(5)]) @ query
    assert [h.id for h in both] == [f"p{i}" for i in np.argsort(-scores)]
    np.testing.assert_allclose([h.score for h in both], np.sort(scores)[::-1], atol=1e-5)


def test_filters_and_hybrid_work_with_image_queries(pics):
    assert {h.id for h in pics.search(image=png(0), k=5, filter="n>=3")} == {"p3", "p4"}
    hybrid = pics.search("bank", image=png(0), k=2, mode="hybrid")
    assert "p4" in {h.id for h in hybrid}  # the caption matched by BM25
    assert pics.search("bank", k=1, mode="text")[0].id == "p4"
    with pytest.raises(InputError, match="mode 'text'"):
        pics.search("bank", image=png(0), mode="text")
    with pytest.raises(InputError, match="needs a query"):
        pics.search(k=3)


def test_path_references_stay_inside_the_image_root(tmp_path, clip_model):
    root = tmp_path / "photos"
    root.mkdir()
    for i in range(3):
        (root / f"{i}.png").write_bytes(png(i))
    (tmp_path / "secret.png").write_bytes(png(9))
    col = Collection.create(tmp_path / "refs", model=clip_model, images="path", image_root=root)
    col.add(["a", "b"], images=[root / "0.png", "1.png"])
    assert col.get(["a", "b"])[0].image == "0.png" and col.search(image=png(1), k=1)[0].id == "b"
    for outside in (tmp_path / "secret.png", "../secret.png"):
        with pytest.raises(InputError, match="outside"):
            col.add(["c"], images=[outside])
    (root / "link.png").symlink_to(tmp_path / "secret.png")
    with pytest.raises(InputError, match="outside"):
        col.add(["d"], images=["link.png"])
    with pytest.raises(InputError, match="keeps image paths"):
        col.add(["e"], images=[png(1)])
    assert len(col) == 2


@pytest.mark.parametrize(
    "images, message",
    [
        ([png(0), b"not an image"], "image 1 \\(id 'y'\\)"),
        ([png(0), png(1)[: len(png(1)) // 2]], "truncated"),
        ([png(0), b""], "empty"),
        ([png(0), "data:image/png;base64,%%%"], "base64"),
        ([png(0), None], "image 1 \\(id 'y'\\) is None"),
        ([png(0)], "1 images for 2 ids"),
        (png(0), "must be a list"),
    ],
)
def test_a_bad_image_writes_nothing(pics, images, message):
    before = (len(pics), pics.backend.version)
    with pytest.raises(InputError, match=message):
        pics.add(["x", "y"], images=images)
    assert (len(pics), pics.backend.version) == before


def test_the_size_limit_and_the_model_are_checked(tmp_path, clip_model, tiny_model, pics):
    small = Collection.create(
        tmp_path / "small", model=clip_model, images="bytes", max_image_bytes=100
    )
    with pytest.raises(InputError, match="over this collection's limit"):
        small.add(["a"], images=[png(0)])
    with pytest.raises(InputError, match="embeds text only"):
        Collection.create(tmp_path / "t", model=tiny_model, images="bytes")
    text_only = Collection.create(tmp_path / "texts", model=tiny_model)
    text_only.add(["a"], ["hello world"])
    with pytest.raises(InputError, match="keeps no images"):
        text_only.add(["b"], images=[png(0)])
    with pytest.raises(InputError, match="embeds text only"):
        text_only.search(image=png(0))
    with pytest.raises(InputError, match="images="):
        Collection.create(tmp_path / "m", model=clip_model, images="bytes", multivector="muvera")
    with pytest.raises(InputError, match="image_root"):
        Collection.create(tmp_path / "r", model=clip_model, image_root=tmp_path)
    with pytest.raises(InputError, match="made by model"):
        Collection.open(pics.path, model=tiny_model)


def test_vectors_with_images_and_text_items_in_an_image_collection(tmp_path, clip_model):
    col = Collection.create(tmp_path / "mixed", model=clip_model, images="bytes")
    given = clip_model.encode_images([png(4)])
    col.add(
        ["v"], given, images=[png(4)]
    )  # the caller's vectors; the image is still checked and kept
    col.add(["t"], ["a caption only"])  # a text item, no image
    assert col.get(["t"])[0].image is None and col.get(["v"])[0].image == png(4)
    with pytest.raises(InputError, match="image 0"):
        col.add(["w"], given, images=[b"junk"])
    reopened = Collection.open(col.path, model=clip_model)
    assert reopened.search(image=png(4), k=1)[0].id == "v"
