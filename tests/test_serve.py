"""The HTTP service on the tiny BERT: OpenAI compatibility, errors, batching, security, collections."""

from __future__ import annotations

import base64
import json
import sys
import threading

import numpy as np
import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient as _TestClient


def TestClient(app):
    return _TestClient(app, base_url="http://localhost")


import uniembed  # noqa: E402
from uniembed.serve import ServeSettings, create_app  # noqa: E402

TEXTS = ["a cat sat on the mat", "the bank charged me twice", "hello world", "blue"]
KEY = "k" * 20 + "-test-key"


@pytest.fixture(scope="module")
def client(tiny_model, tmp_path_factory):
    settings = ServeSettings(
        model="tiny",
        collections=tmp_path_factory.mktemp("collections"),
        max_inputs=16,
        max_input_chars=500,
        max_input_tokens=40,
        max_body_bytes=64 * 1024,
    )
    with TestClient(create_app(settings, encoder=tiny_model)) as client:
        yield client


def embed(client, **body):
    return client.post("/v1/embeddings", json={"model": "tiny", **body})


def vectors_of(response) -> np.ndarray:
    rows = sorted(response.json()["data"], key=lambda d: d["index"])
    return np.array([row["embedding"] for row in rows], dtype=np.float32)


# -- /v1/embeddings: the OpenAI shape, the same vectors as encode() -----------------------------


def test_embeddings_are_exactly_what_encode_gives(client, tiny_model):
    response = embed(client, input=TEXTS)
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "list" and body["model"] == tiny_model.name
    assert [d["object"] for d in body["data"]] == ["embedding"] * 4 and [
        d["index"] for d in body["data"]
    ] == [0, 1, 2, 3]
    np.testing.assert_array_equal(vectors_of(response), tiny_model.encode(TEXTS))
    one = embed(client, input="hello world")
    np.testing.assert_array_equal(vectors_of(one)[0], tiny_model.encode(["hello world"])[0])


def test_usage_counts_the_tokens_the_model_ran_on(client, tiny_model):
    expected = int(tiny_model.windows.windows(TEXTS, chunk=False).lengths.sum())
    assert embed(client, input=TEXTS).json()["usage"] == {
        "prompt_tokens": expected,
        "total_tokens": expected,
    }


def test_base64_is_little_endian_float32_of_the_same_vectors(client):
    floats = vectors_of(embed(client, input=TEXTS))
    encoded = embed(client, input=TEXTS, encoding_format="base64").json()["data"]
    decoded = np.stack(
        [np.frombuffer(base64.b64decode(d["embedding"]), dtype="<f4") for d in encoded]
    )
    np.testing.assert_array_equal(decoded, floats)


def test_dimensions_truncate_and_renormalise(client, tiny_model):
    got = vectors_of(embed(client, input=TEXTS, dimensions=8))
    np.testing.assert_allclose(got, tiny_model.encode(TEXTS, dim=8), atol=1e-7)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-6)


def test_token_id_inputs_embed_like_the_text_they_spell(client, tiny_model):
    tokenizer = tiny_model.windows.tokenizer
    ids = [tokenizer.encode(text, add_special_tokens=False).ids for text in TEXTS]
    np.testing.assert_allclose(
        vectors_of(embed(client, input=ids)), tiny_model.encode(TEXTS), atol=1e-6
    )
    np.testing.assert_allclose(
        vectors_of(embed(client, input=ids[0]))[0], tiny_model.encode(TEXTS[:1])[0], atol=1e-6
    )


def test_models_lists_the_served_model_and_its_alias_works(client, tiny_model):
    listing = client.get("/v1/models").json()
    assert listing["object"] == "list" and [m["id"] for m in listing["data"]] == [tiny_model.name]
    assert client.get(f"/v1/models/{tiny_model.name}").json()["id"] == tiny_model.name
    assert embed(client, input="a").status_code == 200  # "tiny": the --model alias
    assert (
        client.post("/v1/embeddings", json={"model": tiny_model.name, "input": "a"}).status_code
        == 200
    )


# -- errors: OpenAI's envelope and the right status ---------------------------------------------


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({"input": ""}, 400, "input"),
        ({"input": []}, 400, "input"),
        ({"input": ["a", ""]}, 400, "input"),
        ({"input": [[]]}, 400, "input"),
        ({"input": [1, True]}, 400, "input"),
        ({"input": [1.5]}, 400, "input"),
        ({"input": None}, 400, "input"),
        ({}, 400, "input"),
        ({"input": "a", "encoding_format": "hex"}, 400, "encoding_format"),
        ({"input": "a", "dimensions": 0}, 400, "dimensions"),
        ({"input": "a", "dimensions": 33}, 400, "dimensions"),
        ({"input": [[10**9]]}, 400, "input"),
        ({"input": [[-1]]}, 400, "input"),
        ({"input": ["a"] * 17}, 413, "input"),
        ({"input": "a" * 501}, 413, "input"),
        ({"input": [[5] * 41]}, 413, "input"),
    ],
    ids=[
        "empty-string",
        "empty-list",
        "empty-item",
        "empty-ids",
        "bool-id",
        "float-id",
        "null",
        "missing",
        "bad-format",
        "zero-dims",
        "too-many-dims",
        "id-past-vocab",
        "negative-id",
        "too-many-inputs",
        "too-long-text",
        "too-many-ids",
    ],
)
def test_bad_requests_get_the_openai_error_envelope(client, body, status, param):
    response = embed(client, **body)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["param"] is not None and error["param"].split(".")[0] == param
    assert error["message"]


def test_unknown_model_is_404_and_invalid_json_is_400(client):
    response = client.post("/v1/embeddings", json={"model": "gpt-4", "input": "a"})
    assert response.status_code == 404 and response.json()["error"]["code"] == "model_not_found"
    assert "gpt-4" in response.json()["error"]["message"]
    broken = client.post(
        "/v1/embeddings",
        content=b'{"model": "tiny", "input": ',
        headers={"content-type": "application/json"},
    )
    assert broken.status_code == 400 and "JSON" in broken.json()["error"]["message"]
    missing_model = client.post("/v1/embeddings", json={"input": "a"})
    assert missing_model.status_code == 400 and missing_model.json()["error"]["param"] == "model"


def test_a_body_over_the_limit_is_413_declared_or_streamed(client):
    big = json.dumps({"model": "tiny", "input": ["word " * 90] * 150}).encode()
    assert len(big) > 64 * 1024
    declared = client.post(
        "/v1/embeddings", content=big, headers={"content-type": "application/json"}
    )
    assert declared.status_code == 413 and declared.json()["error"]["code"] == "body_too_large"
    streamed = client.post(
        "/v1/embeddings",
        content=iter([big[:40_000], big[40_000:]]),
        headers={"content-type": "application/json"},
    )
    assert streamed.status_code == 413


def test_unknown_routes_and_methods_use_the_envelope_too(client):
    assert client.get("/v2/nothing").json()["error"]["type"] == "not_found_error"
    response = client.get("/v1/embeddings")
    assert response.status_code == 405 and "error" in response.json()


# -- operations ------------------------------------------------------------------------------


def test_health_ready_metrics_and_openapi(client, tiny_model):
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/ready").json()["model"] == tiny_model.name
    embed(client, input=TEXTS)
    metrics = client.get("/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    text = metrics.text
    assert 'uniembed_requests_total{method="POST",route="/v1/embeddings",status="200"}' in text
    assert "uniembed_batch_inputs_bucket" in text and "uniembed_queue_inputs" in text
    assert "process_resident_memory_bytes" in text
    schema = client.get("/openapi.json").json()
    assert {
        "/v1/embeddings",
        "/v1/models",
        "/v1/collections",
        "/v1/collections/{name}/search",
    } <= set(schema["paths"])


def test_not_ready_until_the_model_loads_then_ready(tiny_model, monkeypatch):
    load_module = sys.modules[
        "uniembed.encoders.load"
    ]  # the package re-exports the function under the same name

    release = threading.Event()

    def slow_load(*args, **kwargs):
        release.wait(10)
        return tiny_model

    monkeypatch.setattr(load_module, "load", slow_load)
    with TestClient(create_app(ServeSettings(model="tiny"))) as client:
        assert client.get("/health").status_code == 200
        not_ready = client.get("/ready")
        assert not_ready.status_code == 503 and not_ready.headers["retry-after"] == "1"
        assert embed(client, input="a").status_code == 503
        release.set()
        for _ in range(200):
            if client.get("/ready").status_code == 200:
                break
            threading.Event().wait(0.01)
        assert embed(client, input="a").status_code == 200


def test_a_model_that_cannot_load_is_reported_by_ready(tmp_path):
    with TestClient(create_app(ServeSettings(model=str(tmp_path / "no-such-model")))) as client:
        for _ in range(200):
            response = client.get("/ready")
            if "failed to load" in response.json()["error"]["message"]:
                break
            threading.Event().wait(0.01)
        assert (
            response.status_code == 503 and response.json()["error"]["code"] == "model_load_failed"
        )


def test_nothing_loads_when_the_app_is_built(monkeypatch):
    load_module = sys.modules[
        "uniembed.encoders.load"
    ]  # the package re-exports the function under the same name

    monkeypatch.setattr(load_module, "load", lambda *a, **k: pytest.fail("loaded before startup"))
    create_app(ServeSettings(model="tiny"))  # building the app alone must not load


# -- security --------------------------------------------------------------------------------


def test_api_keys_are_required_compared_and_never_logged(tiny_model, caplog):
    app = create_app(
        ServeSettings(model="tiny", api_keys=(KEY, "another-key-of-length-20")), encoder=tiny_model
    )
    with caplog.at_level("DEBUG"), TestClient(app) as client:
        assert client.get("/health").status_code == 200  # probes stay open
        missing = embed(client, input="a")
        assert missing.status_code == 401 and missing.json()["error"]["code"] == "invalid_api_key"
        assert missing.headers["www-authenticate"] == "Bearer"
        wrong = client.post(
            "/v1/embeddings",
            json={"model": "tiny", "input": "a"},
            headers={"Authorization": "Bearer " + KEY[:-1]},
        )
        assert wrong.status_code == 401 and KEY[:-1] not in wrong.text
        ok = client.post(
            "/v1/embeddings",
            json={"model": "tiny", "input": "a"},
            headers={"Authorization": f"Bearer {KEY}"},
        )
        assert ok.status_code == 200
        assert client.get("/metrics").status_code == 401
    assert KEY not in caplog.text and KEY[:-1] not in caplog.text


def test_api_key_file_rules(tmp_path):
    from uniembed.serve import read_api_keys

    good = tmp_path / "keys.txt"
    good.write_text(f"# team keys\n{KEY}\n\n  {KEY}-2  \n")
    assert read_api_keys(good) == (KEY, f"{KEY}-2")
    (tmp_path / "short.txt").write_text("abc\n")
    with pytest.raises(uniembed.InputError, match="shorter than 16") as info:
        read_api_keys(tmp_path / "short.txt")
    assert "abc" not in str(info.value)
    (tmp_path / "empty.txt").write_text("# nothing\n")
    with pytest.raises(uniembed.InputError, match="holds no key"):
        read_api_keys(tmp_path / "empty.txt")


def test_cors_is_off_unless_configured(tiny_model, client):
    origin = {"Origin": "https://app.example"}
    assert "access-control-allow-origin" not in embed(client, input="a").headers
    assert (
        "access-control-allow-origin"
        not in client.post(
            "/v1/embeddings", json={"model": "tiny", "input": "a"}, headers=origin
        ).headers
    )
    app = create_app(
        ServeSettings(model="tiny", cors_origins=("https://app.example",), api_keys=(KEY,)),
        encoder=tiny_model,
    )
    with TestClient(app) as cors_client:
        preflight = cors_client.options(
            "/v1/embeddings", headers={**origin, "Access-Control-Request-Method": "POST"}
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == "https://app.example"


@pytest.mark.parametrize("field", ["port", "max_inputs", "max_queue_inputs", "max_wait_ms"])
def test_bad_settings_name_the_field(field):
    with pytest.raises(uniembed.InputError, match=field):
        ServeSettings(**{field: -1})


# -- collections -----------------------------------------------------------------------------


def test_collections_lifecycle_over_http(client, tiny_model):
    created = client.post(
        "/v1/collections", json={"name": "docs", "index": "hnsw", "quantize": "binary"}
    )
    assert created.status_code == 201, created.text
    assert created.json()["count"] == 0 and created.json()["model"] == tiny_model.name
    assert client.post("/v1/collections", json={"name": "docs"}).status_code == 409
    assert "docs" in client.get("/v1/collections").json()["collections"]
    items = [
        {"id": f"d{i}", "text": text, "payload": {"lang": "en" if i % 2 else "fr", "n": i}}
        for i, text in enumerate(TEXTS)
    ]
    written = client.post("/v1/collections/docs/items", json={"items": items})
    assert written.status_code == 200 and written.json()["count"] == 4
    again = client.post("/v1/collections/docs/items", json={"items": items[:1]})
    assert (
        again.status_code == 409 and "upsert" in again.json()["error"]["message"]
    )  # a conflict (issue 30), not bad input
    assert (
        client.post(
            "/v1/collections/docs/items", json={"items": items[:1], "upsert": True}
        ).status_code
        == 200
    )

    hits = client.post(
        "/v1/collections/docs/search", json={"query": "the bank charged me twice", "k": 2}
    ).json()["hits"]
    assert hits[0]["id"] == "d1" and hits[0]["payload"] == {"lang": "en", "n": 1}
    library = uniembed.Collection.open(
        client.app.state.service.settings.collections / "docs", model=tiny_model
    )
    assert [h["id"] for h in hits] == [
        h.id for h in library.search("the bank charged me twice", k=2)
    ]
    filtered = client.post(
        "/v1/collections/docs/search", json={"query": "hello", "k": 4, "filter": {"lang": "fr"}}
    ).json()["hits"]
    assert {h["id"] for h in filtered} == {"d0", "d2"}
    as_string = client.post(
        "/v1/collections/docs/search", json={"query": "hello", "k": 4, "filter": "n>=2"}
    ).json()["hits"]
    assert {h["id"] for h in as_string} == {"d2", "d3"}
    hybrid = client.post(
        "/v1/collections/docs/search", json={"query": "bank", "k": 2, "mode": "hybrid"}
    )
    assert hybrid.status_code == 200 and hybrid.json()["hits"][0]["id"] == "d1"
    by_vector = client.post(
        "/v1/collections/docs/search",
        json={"vector": tiny_model.encode(["blue"])[0].tolist(), "k": 1},
    )
    assert by_vector.json()["hits"][0]["id"] == "d3"

    item = client.get("/v1/collections/docs/items/d1").json()
    assert item["text"] == TEXTS[1] and len(item["vectors"]["default"]) == tiny_model.dim
    assert client.get("/v1/collections/docs/items/nope").status_code == 404
    assert client.post("/v1/collections/docs/items/delete", json={"ids": ["d1"]}).status_code == 200
    assert client.get("/v1/collections/docs").json()["count"] == 3
    assert client.delete("/v1/collections/docs").json() == {"name": "docs", "deleted": True}
    assert client.get("/v1/collections/docs").status_code == 404
    assert "docs" not in client.get("/v1/collections").json()["collections"]


def test_vectors_only_collections_take_vectors(client):
    assert (
        client.post(
            "/v1/collections", json={"name": "vecs", "vectors_only": True, "dim": 3}
        ).status_code
        == 201
    )
    items = [{"id": "x", "vector": [1, 0, 0]}, {"id": "y", "vector": [0, 1, 0], "text": "why"}]
    assert client.post("/v1/collections/vecs/items", json={"items": items}).status_code == 200
    assert (
        client.post("/v1/collections/vecs/search", json={"vector": [0.1, 0.9, 0], "k": 1}).json()[
            "hits"
        ][0]["id"]
        == "y"
    )
    wrong_dim = client.post(
        "/v1/collections/vecs/items", json={"items": [{"id": "z", "vector": [1, 0]}]}
    )
    assert wrong_dim.status_code == 400 and "3" in wrong_dim.json()["error"]["message"]
    mixed = client.post(
        "/v1/collections/vecs/items",
        json={"items": [{"id": "z", "vector": [1, 0, 0]}, {"id": "w", "text": "t"}]},
    )
    assert mixed.status_code == 400
    assert (
        client.post("/v1/collections", json={"name": "nodim", "vectors_only": True}).status_code
        == 400
    )


def test_multivector_collections_over_http(client, tiny_model):
    fde = {"repetitions": 3, "k_sim": 2, "d_proj": 4}
    created = client.post(
        "/v1/collections",
        json={"name": "late", "multivector": "muvera", "fde": fde, "token_storage": "int8"},
    )
    assert created.status_code == 201, created.text
    assert created.json()["multivector"]["fde"]["repetitions"] == 3
    items = [{"id": f"d{i}", "text": text} for i, text in enumerate(TEXTS)]
    assert client.post("/v1/collections/late/items", json={"items": items}).status_code == 200
    library = uniembed.Collection.open(
        client.app.state.service.settings.collections / "late", model=tiny_model
    )
    for body in (
        {"query": "the bank charged me twice"},
        {"query": "blue", "first_stage": "exact"},
        {"query": "blue", "first_stage": "tokens", "token_hits": 2},
    ):
        hits = client.post("/v1/collections/late/search", json={**body, "k": 3}).json()["hits"]
        options = {key: value for key, value in body.items() if key != "query"}
        assert [h["id"] for h in hits] == [
            h.id for h in library.search(body["query"], k=3, **options)
        ]
    tokens = tiny_model.encode_tokens(["blue sky"], prompt="query")[0]
    by_tokens = client.post(
        "/v1/collections/late/search", json={"tokens": tokens.tolist(), "k": 2}
    ).json()["hits"]
    assert [h["id"] for h in by_tokens] == [h.id for h in library.search(tokens, k=2)]
    item = client.get("/v1/collections/late/items/d0").json()
    assert np.asarray(item["tokens"]).shape[1] == tiny_model.token_dim

    one_vector = client.post(
        "/v1/collections/late/search", json={"vector": tokens[0].tolist(), "k": 1}
    )
    assert (
        one_vector.status_code == 400 and "single vector" in one_vector.json()["error"]["message"]
    )
    ragged = client.post("/v1/collections/late/search", json={"tokens": [[0.1] * 32, [0.1] * 31]})
    assert ragged.status_code == 400 and "different lengths" in ragged.json()["error"]["message"]
    empty = client.post("/v1/collections/late/items", json={"items": [{"id": "e", "tokens": []}]})
    assert empty.status_code == 400 and "empty" in empty.json()["error"]["message"]
    as_vector = client.post(
        "/v1/collections/late/items", json={"items": [{"id": "v", "vector": [0.0] * 32}]}
    )
    assert as_vector.status_code == 400 and "multi-vector" in as_vector.json()["error"]["message"]
    assert client.post("/v1/collections", json={"name": "bad", "fde": fde}).status_code == 400
    assert (
        client.post(
            "/v1/collections", json={"name": "plain", "vectors_only": True, "dim": 3}
        ).status_code
        == 201
    )
    single = client.post(
        "/v1/collections/plain/items", json={"items": [{"id": "t", "tokens": [[0.0] * 3]}]}
    )
    assert single.status_code == 400 and "multi-vector" in single.json()["error"]["message"]
    token_query = client.post(
        "/v1/collections/plain/search", json={"tokens": [[0.0, 1, 0], [1, 0, 0]]}
    )
    assert (
        token_query.status_code == 400 and "single-vector" in token_query.json()["error"]["message"]
    )
    for name in ("late", "plain"):
        assert client.delete(f"/v1/collections/{name}").status_code == 200


@pytest.mark.parametrize("name", ["..", ".hidden", "a/b", "a" * 65, "-x", "x y", "ü"])
def test_collection_names_that_could_escape_are_refused(client, name):
    response = client.post("/v1/collections", json={"name": name})
    assert (
        response.status_code == 400
        and response.json()["error"]["code"] == "invalid_collection_name"
    )
    root = client.app.state.service.settings.collections
    assert not any(
        p.name.startswith(".") or "/" in p.name
        for p in root.iterdir()
        if p.name not in ("docs", "vecs")
    )


def test_collection_requests_are_validated(client):
    assert client.post("/v1/collections", json={"name": "c1", "index": "annoy"}).status_code == 400
    assert (
        client.post("/v1/collections", json={"name": "c1", "colour": "red"}).status_code == 400
    )  # misspelt field
    assert client.post("/v1/collections/none-such/search", json={"query": "a"}).status_code == 404
    client.post("/v1/collections", json={"name": "c2"})
    assert (
        client.post("/v1/collections/c2/search", json={"k": 3}).status_code == 400
    )  # neither query nor vector
    assert client.post("/v1/collections/c2/search", json={"query": "a", "k": 0}).status_code == 400
    bad_filter = client.post(
        "/v1/collections/c2/search", json={"query": "a", "filter": "colour=red"}
    )
    assert bad_filter.status_code == 400 and "colour" in bad_filter.json()["error"]["message"]
    nan = client.post(
        "/v1/collections/c2/items",
        content=b'{"items": [{"id": "a", "vector": [NaN, 1]}]}',
        headers={"content-type": "application/json"},
    )
    assert nan.status_code == 400


def test_a_late_interaction_model_refuses_embeddings_and_serves_multivector_collections(tmp_path):
    from helpers import write_tiny_pylate

    model = uniembed.load(write_tiny_pylate(tmp_path / "colbert"), device="cpu")
    settings = ServeSettings(model="colbert", collections=tmp_path / "collections")
    with TestClient(create_app(settings, encoder=model)) as client:
        response = client.post("/v1/embeddings", json={"model": "colbert", "input": ["a cat"]})
        assert (
            response.status_code == 400
            and "late-interaction" in response.json()["error"]["message"]
        )
        created = client.post(
            "/v1/collections",
            json={
                "name": "late",
                "multivector": "muvera",
                "fde": {"repetitions": 2, "k_sim": 1, "d_proj": 4},
            },
        )
        assert created.status_code == 201, created.text
        items = [{"id": "a", "text": "the cat sat"}, {"id": "b", "text": "blue rain"}]
        assert client.post("/v1/collections/late/items", json={"items": items}).status_code == 200
        assert (
            len(
                client.post("/v1/collections/late/search", json={"query": "cat", "k": 2}).json()[
                    "hits"
                ]
            )
            == 2
        )
        single = client.post("/v1/collections", json={"name": "single"})
        assert single.status_code == 400 and "late-interaction" in single.json()["error"]["message"]


def test_a_text_only_encoder_is_served_too(fake):
    with TestClient(create_app(ServeSettings(model="fake"), encoder=fake)) as client:
        response = client.post("/v1/embeddings", json={"model": "fake", "input": ["x", "y"]})
        assert response.status_code == 200
        np.testing.assert_allclose(vectors_of(response), fake.encode(["x", "y"]), atol=1e-7)
        ids = client.post("/v1/embeddings", json={"model": "fake", "input": [1, 2]})
        assert ids.status_code == 400 and "text input only" in ids.json()["error"]["message"]


def test_responses_without_orjson_carry_the_same_vectors(client, monkeypatch):
    from uniembed.serve import routes_embeddings

    with_orjson = embed(client, input=TEXTS).content
    monkeypatch.setattr(routes_embeddings, "orjson", None)
    with_json = embed(client, input=TEXTS).content
    assert with_json != with_orjson  # really the other writer
    np.testing.assert_array_equal(vectors_of_bytes(with_json), vectors_of_bytes(with_orjson))


def vectors_of_bytes(body: bytes) -> np.ndarray:
    return np.array([d["embedding"] for d in json.loads(body)["data"]], dtype=np.float32)


def test_a_collection_dropped_while_in_use_is_404_not_500(client):
    client.post("/v1/collections", json={"name": "short-lived"})
    client.post("/v1/collections/short-lived/items", json={"items": [{"id": "a", "text": "hello"}]})
    assert client.delete("/v1/collections/short-lived").status_code == 200
    for request in (
        lambda: client.post("/v1/collections/short-lived/search", json={"query": "hello"}),
        lambda: client.get("/v1/collections/short-lived/items/a"),
        lambda: client.delete("/v1/collections/short-lived"),
    ):
        assert request().status_code == 404


def test_relative_collections_over_http(client, tiny_model):
    anchors = [
        "a bank account",
        "the weather today",
        "a red car",
        "my card was charged twice",
        "blue skies",
    ]
    created = client.post("/v1/collections", json={"name": "rel", "relative_anchors": anchors})
    assert created.status_code == 201, created.text
    assert created.json()["fields"] == {"default": 5} and created.json()["relative"]["anchors"] == 5
    items = [{"id": f"d{i}", "text": text} for i, text in enumerate(TEXTS)]
    assert client.post("/v1/collections/rel/items", json={"items": items}).status_code == 200
    searched = client.post(
        "/v1/collections/rel/search", json={"query": "the bank charged me twice", "k": 4}
    )
    assert searched.status_code == 200, searched.text
    hits = searched.json()["hits"]
    library = uniembed.Collection.open(
        client.app.state.service.settings.collections / "rel", model=tiny_model
    )
    assert [h["id"] for h in hits] == [
        h.id for h in library.search("the bank charged me twice", k=4)
    ]
    for bad, where in (
        ({"relative_anchors": ["one"]}, "relative_anchors"),
        ({"relative_anchors": ["same", "same"]}, "repeats"),
        ({"relative_anchors": anchors, "vectors_only": True, "dim": 3}, "needs a model"),
        ({"relative_anchors": anchors, "dim": 4}, "do not combine"),
    ):
        refused = client.post("/v1/collections", json={"name": "bad", **bad})
        assert refused.status_code == 400 and where in refused.text, refused.text
    assert "bad" not in client.get("/v1/collections").json()["collections"]
    assert client.delete("/v1/collections/rel").status_code == 200
