"""The service under hostile requests and races: no 500, no crash, no broken name (issue 13)."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient

from helpers import FakeEncoder
from uniembed.serve import ServeSettings, create_app

DIM = 8


@pytest.fixture
def root(tmp_path):
    return tmp_path / "collections"


@pytest.fixture
def client(root):
    with TestClient(
        create_app(ServeSettings(model="fake", collections=root), encoder=FakeEncoder(DIM)),
        base_url="http://localhost",
    ) as client:
        yield client


def create(client, name, **body):
    return client.post("/v1/collections", json={"name": name, **body})


def add_vectors(client, name, n, payload=None, seed=0):
    vectors = np.random.default_rng(seed).normal(size=(n, DIM)).tolist()
    items = [
        {"id": f"v{seed}-{i}", "vector": v, "payload": payload or {}} for i, v in enumerate(vectors)
    ]
    return client.post(f"/v1/collections/{name}/items", json={"items": items})


def search(client, name, **body):
    return client.post(
        f"/v1/collections/{name}/search", json={"vector": [0.1] * DIM, "k": 5, **body}
    )


@pytest.mark.parametrize(
    ("index", "quantize", "params"),
    [
        ("hnsw", "none", {"m": 0}),
        ("hnsw", "binary", {"m": 0}),
        ("hnsw", "none", {"m": -1}),
        ("hnsw", "none", {"m": 2.5}),
        ("ivfpq", "none", {"nprobe": 0}),
        ("ivfpq", "none", {"m": 3}),
        ("hnsw", "binary", {"graph": 1}),
    ],
)
def test_bad_index_parameters_answer_400_and_create_nothing(client, root, index, quantize, params):
    response = create(
        client,
        "bad",
        index=index,
        quantize=quantize,
        index_params=params,
        vectors_only=True,
        dim=DIM,
    )
    assert response.status_code == 400, response.text
    assert next(iter(params)) in response.json()["error"]["message"]
    assert client.get("/v1/collections").json()["collections"] == []


def test_a_bad_stored_parameter_is_a_clear_error_after_a_restart_and_the_server_lives(root):
    settings = ServeSettings(model="fake", collections=root)
    with TestClient(
        create_app(settings, encoder=FakeEncoder(DIM)), base_url="http://localhost"
    ) as client:
        assert create(client, "docs", index="hnsw", vectors_only=True, dim=DIM).status_code == 201
        assert create(client, "fine", vectors_only=True, dim=DIM).status_code == 201
        assert add_vectors(client, "docs", 3).status_code == 200
    meta = json.loads((root / "docs" / "collection.json").read_text())
    meta["index_params"]["m"] = 0  # what FAISS aborts the process on
    (root / "docs" / "collection.json").write_text(json.dumps(meta))
    with TestClient(
        create_app(settings, encoder=FakeEncoder(DIM)), base_url="http://localhost"
    ) as client:
        for _ in range(2):
            response = search(client, "docs")
            assert (
                response.status_code == 409
                and response.json()["error"]["code"] == "collection_damaged"
            )
            message = response.json()["error"]["message"]
            assert message.startswith("docs: collection damaged") and str(root) not in message
        assert search(client, "fine").status_code == 200


@pytest.mark.parametrize(
    ("index", "quantize"),
    [
        ("exact", "none"),
        ("exact", "int8"),
        ("exact", "binary"),
        ("hnsw", "none"),
        ("hnsw", "int8"),
        ("hnsw", "binary"),
        ("ivfpq", "none"),
    ],
)
def test_empty_results_answer_200_with_no_hits(client, index, quantize):
    assert (
        create(client, "c", index=index, quantize=quantize, vectors_only=True, dim=DIM).status_code
        == 201
    )
    assert search(client, "c").json() == {"hits": []}
    assert add_vectors(client, "c", 1, {"lang": "en"}).status_code == 200
    assert search(client, "c", filter="lang=fr").json() == {"hits": []}
    assert client.post("/v1/collections/c/items/delete", json={"ids": ["v0-0"]}).status_code == 200
    assert search(client, "c").json() == {"hits": []}


@pytest.mark.parametrize(
    "flt",
    [
        "year>=1e999",
        "score>=inf",
        "score>=nan",
        {"lang": {"in": []}},
        "year=2000.5",
        {"year": {"<": 10**30}},
        "year in (2000.5)",
    ],
)
@pytest.mark.parametrize("mode", ["dense", "text", "hybrid"])
def test_hostile_filters_never_answer_500(client, flt, mode):
    create(client, "t")
    client.post(
        "/v1/collections/t/items",
        json={
            "items": [
                {
                    "id": "a",
                    "text": "red bicycle",
                    "payload": {"year": 2000, "score": 0.5, "lang": "en"},
                }
            ]
        },
    )
    response = client.post(
        "/v1/collections/t/search", json={"query": "red", "mode": mode, "filter": flt}
    )
    assert response.status_code in (200, 400), response.text
    if response.status_code == 200 and flt in (
        "year=2000.5",
        "year in (2000.5)",
        {"lang": {"in": []}},
    ):
        assert response.json()["hits"] == []


def test_fde_sizes_over_the_cap_answer_400(client):
    response = create(
        client,
        "mv",
        vectors_only=True,
        dim=128,
        multivector="muvera",
        fde={"repetitions": 256, "k_sim": 12, "d_proj": 4096},
    )
    assert response.status_code == 400 and "over the limit" in response.json()["error"]["message"]


@pytest.mark.parametrize("name", ["abc%0A", "abc%0D", "%2E%2E"])
def test_names_are_full_matched(client, name):
    assert client.get(f"/v1/collections/{name}").status_code in (400, 404)
    assert create(client, name.replace("%0A", "\n").replace("%0D", "\r")).status_code == 400


def test_a_damaged_collection_json_answers_409_naming_the_collection_not_the_path(client, root):
    create(client, "docs", vectors_only=True, dim=DIM)
    (root / "fresh").mkdir()
    (root / "fresh" / "collection.json").write_text(
        json.dumps({"model": None, "fields": {"default": DIM}, "surprise": 1})
    )
    response = client.get("/v1/collections/fresh")
    assert response.status_code == 409, response.text
    message = response.json()["error"]["message"]
    assert (
        "fresh: collection damaged" in message
        and "collection.json" in message
        and str(root) not in message
    )


def test_hosts_other_than_loopback_are_refused(root):
    app = create_app(ServeSettings(model="fake", collections=root), encoder=FakeEncoder(DIM))
    with TestClient(app, base_url="http://attacker.example") as attacker:
        assert attacker.delete("/v1/collections/x").status_code == 421
        assert (
            attacker.get("/v1/collections/").status_code == 421
        )  # no redirect to the made-up host
    for host in ("localhost:8080", "127.0.0.1", "[::1]:9000"):
        with TestClient(app, base_url=f"http://{host}") as local:
            assert local.get("/v1/collections").status_code == 200
    allowed = create_app(
        ServeSettings(model="fake", collections=root, allowed_hosts=("search.internal",)),
        encoder=FakeEncoder(DIM),
    )
    with TestClient(allowed, base_url="http://search.internal") as named:
        assert named.get("/v1/collections").status_code == 200


def test_ids_with_slashes_and_nested_payloads_round_trip(client):
    create(client, "c", vectors_only=True, dim=DIM)
    payload = {"tags": ["a", "b"], "author": {"name": "x", "ids": [1, 2]}, "year": 2020}
    item = {"id": "docs/2020/a.txt", "vector": [0.5] * DIM, "payload": payload}
    assert client.post("/v1/collections/c/items", json={"items": [item]}).status_code == 200
    got = client.get("/v1/collections/c/items/docs/2020/a.txt")
    assert got.status_code == 200 and got.json()["payload"] == payload
    assert search(client, "c", filter="year=2020").json()["hits"][0]["id"] == "docs/2020/a.txt"


def test_json_sent_as_text_plain_is_told_to_send_json(client):
    response = client.post(
        "/v1/collections", content=json.dumps({"name": "x"}), headers={"content-type": "text/plain"}
    )
    assert response.status_code == 400 and "application/json" in response.json()["error"]["message"]


def race(calls):
    barrier = threading.Barrier(len(calls))

    def run(call):
        barrier.wait()
        return call()

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


def test_concurrent_deletes_and_creates_of_one_name(client, root):
    for _ in range(5):
        assert create(client, "x", vectors_only=True, dim=DIM).status_code == 201
        codes = sorted(
            r.status_code for r in race([lambda: client.delete("/v1/collections/x")] * 5)
        )
        assert codes == [200, 404, 404, 404, 404]
    codes = sorted(
        r.status_code for r in race([lambda: create(client, "y", vectors_only=True, dim=DIM)] * 5)
    )
    assert codes == [201, 409, 409, 409, 409]


def test_creates_racing_drops_of_one_name_answer_201_404_or_409_never_500(client):
    # issue 30: the create handler described the collection after releasing the name's lock, and
    # a drop in between made that a 500 (lance: "Not found: .../_versions")
    def creates():
        return [create(client, "cd", vectors_only=True, dim=DIM).status_code for _ in range(40)]

    def drops():
        return [client.delete("/v1/collections/cd").status_code for _ in range(40)]

    with ThreadPoolExecutor(4) as pool:
        created = [pool.submit(creates), pool.submit(creates)]
        dropped = [pool.submit(drops), pool.submit(drops)]
        create_codes = {code for future in created for code in future.result()}
        drop_codes = {code for future in dropped for code in future.result()}
    assert create_codes <= {201, 409} and 201 in create_codes, create_codes
    assert drop_codes <= {200, 404}, drop_codes


def test_delete_racing_reads_of_an_unopened_collection_never_breaks_the_name(root):
    settings = ServeSettings(model="fake", collections=root)
    for _ in range(5):
        with TestClient(
            create_app(settings, encoder=FakeEncoder(DIM)), base_url="http://localhost"
        ) as client:
            create(client, "x", vectors_only=True, dim=DIM)
            add_vectors(client, "x", 3)
        with TestClient(
            create_app(settings, encoder=FakeEncoder(DIM)), base_url="http://localhost"
        ) as client:
            calls = [
                lambda: client.delete("/v1/collections/x"),
                lambda: search(client, "x"),
                lambda: client.get("/v1/collections/x"),
                lambda: search(client, "x"),
            ]
            assert all(r.status_code in (200, 404) for r in race(calls))
            assert client.get("/v1/collections/x").status_code == 404
            assert not (root / "x").exists()
            assert (
                create(client, "x", vectors_only=True, dim=DIM).status_code == 201
            )  # the name works again
            assert search(client, "x").status_code == 200
            assert client.delete("/v1/collections/x").status_code == 200


def test_a_leftover_deleting_folder_does_not_block_delete(client, root):
    create(client, "x", vectors_only=True, dim=DIM)
    (root / ".deleting-x").mkdir()
    (root / ".deleting-x" / "junk").write_text("left by a crash")
    assert client.delete("/v1/collections/x").status_code == 200
    assert client.get("/v1/collections").json()["collections"] == []


class NaNEncoder(FakeEncoder):
    def encode_batch(self, texts, *, long="truncate"):
        return np.full((len(texts), self.dim), np.nan, np.float32)


def test_a_model_giving_nan_is_a_model_error_not_a_client_error(root):
    app = create_app(ServeSettings(model="fake", collections=root), encoder=NaNEncoder(DIM))
    with TestClient(app, base_url="http://localhost") as client:
        response = client.post("/v1/embeddings", json={"model": "fake", "input": ["hello"]})
        assert (
            response.status_code == 500
            and response.json()["error"]["code"] == "model_output_invalid"
        )
        create(client, "t")
        response = client.post(
            "/v1/collections/t/items", json={"items": [{"id": "a", "text": "hello"}]}
        )
        assert response.status_code == 500 and "NaN" in response.json()["error"]["message"]
        assert client.get("/v1/collections/t").json()["count"] == 0


def test_text_queries_on_collections_go_through_the_batcher(client):
    create(client, "t")
    client.post("/v1/collections/t/items", json={"items": [{"id": "a", "text": "red bicycle"}]})
    service = client.app.state.service
    calls = []
    original = service.batcher._embed
    service.batcher._embed = lambda batch: calls.append(len(batch)) or original(batch)
    hits = client.post("/v1/collections/t/search", json={"query": "red bicycle", "k": 1}).json()[
        "hits"
    ]
    assert hits[0]["id"] == "a" and hits[0]["score"] == pytest.approx(1.0, abs=1e-5)
    assert calls == [1]


def test_slow_searches_neither_block_each_other_nor_other_collections_nor_embeddings(
    client, monkeypatch
):
    import time

    # the folder home's search (Collection is the contract above the homes since issue 31)
    from uniembed.store.folder import FolderCollection as Collection

    for name in ("slow", "fast"):
        create(client, name, vectors_only=True, dim=DIM)
        add_vectors(client, name, 5)
    original = Collection.search

    def slow_search(self, *args, **kwargs):
        if self.path.name == "slow":
            time.sleep(1.5)  # an exact MaxSim over a large collection takes seconds
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Collection, "search", slow_search)
    timings = {}

    def timed(name, call):
        def run():
            started = time.perf_counter()
            response = call()
            timings.setdefault(name, []).append(time.perf_counter() - started)
            return response.status_code

        return run

    slow = [timed("slow", lambda: search(client, "slow"))] * 4
    others = [
        timed("fast", lambda: search(client, "fast")),
        timed(
            "embed", lambda: client.post("/v1/embeddings", json={"model": "fake", "input": ["hi"]})
        ),
    ]

    def delayed(call):
        def run():
            time.sleep(0.3)  # once the slow searches hold their threads
            return call()

        return run

    codes = race(slow + [delayed(call) for call in others])
    assert set(codes) == {200}
    assert (
        max(timings["slow"]) < 4 * 1.5 * 0.75
    )  # the four slow searches ran side by side, not one after another
    assert timings["fast"][0] < 1.0 and timings["embed"][0] < 1.0  # nobody waited for them


def test_collection_calls_past_the_queue_limit_get_429_at_once(root, monkeypatch):
    import time

    # the folder home's search (Collection is the contract above the homes since issue 31)
    from uniembed.store.folder import FolderCollection as Collection

    settings = ServeSettings(
        model="fake", collections=root, collection_threads=2, max_collection_queue=3
    )
    with TestClient(
        create_app(settings, encoder=FakeEncoder(DIM)), base_url="http://localhost"
    ) as client:
        create(client, "c", vectors_only=True, dim=DIM)
        add_vectors(client, "c", 3)
        original = Collection.search
        monkeypatch.setattr(
            Collection, "search", lambda self, *a, **kw: time.sleep(1.0) or original(self, *a, **kw)
        )
        codes = race([lambda: search(client, "c")] * 6)
        assert sorted(codes_of(codes)) == [200, 200, 200, 429, 429, 429]
        refused = next(r for r in codes if r.status_code == 429)
        assert (
            refused.json()["error"]["code"] == "queue_full"
            and refused.headers["retry-after"] == "1"
        )


def codes_of(responses):
    return [r.status_code for r in responses]
