"""The service with an image model: /v1/embeddings image items, image collections, image queries,
and the errors (400 naming the item, 413 past the limits, never a URL fetched)."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("PIL")
from fastapi.testclient import TestClient
from PIL import Image

from uniembed.serve import ServeSettings, create_app


def png(seed: int, size=(30, 40)) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(
        np.random.default_rng(seed).integers(0, 256, size=(*size, 3), dtype=np.uint8)
    ).save(buffer, format="PNG")
    return buffer.getvalue()


def uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


@pytest.fixture(scope="module")
def client(clip_model, tmp_path_factory):
    settings = ServeSettings(
        model="clip", collections=tmp_path_factory.mktemp("collections"), max_image_pixels=5000
    )
    with TestClient(
        create_app(settings, encoder=clip_model), base_url="http://localhost"
    ) as client:
        yield client


@pytest.fixture(scope="module")
def text_client(tiny_model):
    with TestClient(
        create_app(ServeSettings(model="tiny"), encoder=tiny_model), base_url="http://localhost"
    ) as client:
        yield client


def embed(client, model, inputs):
    return client.post("/v1/embeddings", json={"model": model, "input": inputs})


def vectors(response) -> np.ndarray:
    return np.array(
        [row["embedding"] for row in sorted(response.json()["data"], key=lambda d: d["index"])],
        np.float32,
    )


def test_image_items_embed_exactly_as_encode_items(client, clip_model):
    items = [
        {"image": uri(png(1))},
        {"text": "a cat"},
        {"image": base64.b64encode(png(2)).decode(), "text": "a cat"},
    ]
    response = embed(client, clip_model.name, items)
    assert response.status_code == 200, response.text
    expected = clip_model.encode_items(
        [{"image": png(1)}, {"text": "a cat"}, {"image": png(2), "text": "a cat"}]
    )
    np.testing.assert_allclose(vectors(response), expected, atol=1e-5)
    texts = embed(client, clip_model.name, [{"text": "a cat"}, {"text": "the sun"}])
    np.testing.assert_allclose(vectors(texts), clip_model.encode(["a cat", "the sun"]), atol=1e-6)
    short = client.post(
        "/v1/embeddings",
        json={"model": clip_model.name, "input": [{"image": uri(png(1))}], "dimensions": 8},
    )
    assert len(short.json()["data"][0]["embedding"]) == 8


@pytest.mark.parametrize(
    "item, status, fragment",
    [
        ({"image": "https://169.254.169.254/latest/meta-data/"}, 400, "never fetches"),
        ({"image": "/etc/passwd"}, 400, "never fetches"),
        ({"image": "data:image/png;base64,@@@"}, 400, "base64"),
        ({"image": uri(b"not an image at all")}, 400, "input[0]"),
        ({"image": uri(png(3)[:60])}, 400, "input[0]"),
        ({"image": uri(png(4, size=(100, 100)))}, 413, "pixels"),
        ({"picture": "x"}, 400, None),
    ],
)
def test_bad_images_are_400_or_413_naming_the_item(client, clip_model, item, status, fragment):
    response = embed(client, clip_model.name, [item])
    assert response.status_code == status, response.text
    if fragment:
        assert fragment in response.json()["error"]["message"]


def test_a_text_model_refuses_images_with_400(text_client, tiny_model):
    response = embed(text_client, tiny_model.name, [{"image": uri(png(1))}])
    assert response.status_code == 400 and "text only" in response.json()["error"]["message"]
    ok = embed(text_client, tiny_model.name, [{"text": "a cat"}])
    np.testing.assert_allclose(vectors(ok), tiny_model.encode(["a cat"]), atol=1e-6)


def test_image_collections_over_http(client, clip_model):
    assert (
        client.post("/v1/collections", json={"name": "pics", "images": "bytes"}).status_code == 201
    )
    items = [
        {"id": f"p{i}", "image": uri(png(i)), "text": caption, "payload": {"n": i}}
        for i, caption in enumerate(["a red cat", "a blue dog", "money in the bank"])
    ]
    written = client.post("/v1/collections/pics/items", json={"items": items})
    assert written.status_code == 200, written.text
    hit = client.post("/v1/collections/pics/search", json={"image": uri(png(1)), "k": 1}).json()[
        "hits"
    ][0]
    assert hit["id"] == "p1" and hit["score"] == pytest.approx(1.0, abs=1e-5)
    both = client.post(
        "/v1/collections/pics/search",
        json={"image": uri(png(2)), "query": "bank", "k": 3, "mode": "hybrid"},
    )
    assert both.status_code == 200 and both.json()["hits"][0]["id"] == "p2"
    filtered = client.post(
        "/v1/collections/pics/search", json={"image": uri(png(0)), "k": 3, "filter": "n>=1"}
    ).json()
    assert {h["id"] for h in filtered["hits"]} == {"p1", "p2"}
    item = client.get("/v1/collections/pics/items/p0").json()
    assert item["image"] == uri(png(0)) and item["text"] == "a red cat"
    info = client.get("/v1/collections/pics").json()
    assert info["images"]["storage"] == "bytes" and info["count"] == 3


def test_image_collection_errors_over_http(client):
    client.post("/v1/collections", json={"name": "pics2", "images": "bytes"})
    bad = client.post(
        "/v1/collections/pics2/items",
        json={"items": [{"id": "a", "image": uri(png(1))}, {"id": "b", "image": uri(b"junk")}]},
    )
    assert bad.status_code == 400 and "items[1].image" in bad.json()["error"]["message"]
    assert client.get("/v1/collections/pics2").json()["count"] == 0  # nothing written
    big = client.post(
        "/v1/collections/pics2/items",
        json={"items": [{"id": "a", "image": uri(png(1, size=(100, 100)))}]},
    )
    assert big.status_code == 413
    url = client.post("/v1/collections/pics2/search", json={"image": "http://10.0.0.1/x.png"})
    assert url.status_code == 400 and "never fetches" in url.json()["error"]["message"]
    mixed = client.post(
        "/v1/collections/pics2/search", json={"image": uri(png(1)), "vector": [0.1] * 24}
    )
    assert mixed.status_code == 400
    paths = client.post("/v1/collections", json={"name": "refs", "images": "path"})
    assert (
        paths.status_code == 400
    )  # path-reference collections are made with the CLI, never by a client


def test_request_images_are_held_reduced_and_embed_exactly_as_the_originals(client, clip_model):
    # issue 30: each image is reduced to what the model sees as soon as it is decoded
    from uniembed.images.decode import ImageLimits
    from uniembed.serve.images import decode_request_images

    big = [
        png(seed, size=(50, 90)) for seed in (5, 6, 7)
    ]  # 4,500 pixels each, under this server's 5,000
    held = decode_request_images(
        [uri(b) for b in big],
        ["a", "b", "c"],
        ImageLimits(max_pixels=5000),
        clip_model.preprocessing,
    )
    side = clip_model.preprocessing.shortest_edge
    assert all(min(image.size) == side and image.size != (90, 50) for image in held)
    response = embed(client, clip_model.name, [{"image": uri(b)} for b in big])
    assert response.status_code == 200, response.text
    np.testing.assert_allclose(vectors(response), clip_model.encode_images(big), atol=1e-6)
