"""What only the Milvus home has: URLs, a server that is down, Milvus 2.3's limits refused clearly,
expressions that stay data, bounded consistency, SIGKILL of a writer, and the CLI on a URL. The
behaviour shared with the other homes is in test_store_contract.py."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from helpers import unit_vectors
from uniembed import InputError, NotFoundError
from uniembed.errors import StoreUnavailableError
from uniembed.store import Collection

pytest.importorskip(
    "pymilvus", reason='the milvus extra is not installed: pip install "uniembed[milvus]"'
)
from uniembed.engines.postgres import free_port
from uniembed.store import milvus as milvus_module

_counter = iter(range(10**6))


def name() -> str:
    return f"m{next(_counter)}"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("milvus://127.0.0.1:19530", "names the collection after the port"),
        ("milvus://127.0.0.1/docs", "milvus://host:port/name"),
        ("milvus://127.0.0.1:19530/1docs", "must be letters, digits and _"),
        ("milvus://127.0.0.1:19530/a-b", "must be letters, digits and _"),
    ],
)
def test_malformed_urls_are_refused_before_connecting(url, message):
    with pytest.raises(InputError, match=message):
        Collection.create(url, model=None, dim=8)


def test_a_server_that_is_down_is_a_clear_error():
    with pytest.raises(
        StoreUnavailableError, match=r"cannot connect to Milvus at milvus://127.0.0.1:\d+"
    ):
        Collection.open(f"milvus://127.0.0.1:{free_port()}/docs")


def test_what_milvus_2_3_lacks_is_refused_clearly(milvus):
    for options, message in [
        ({"index": "hnsw", "quantize": "binary"}, "not supported by the milvus backend"),
        ({"quantize": "half"}, "not supported by the milvus backend"),
        ({"fields": ["a", "b"]}, "one vector field per collection"),
        ({"multivector": "muvera"}, "not supported by the milvus backend"),
        ({"index": "ivf", "quantize": "binary", "dim": 12}, "divisible by 8"),
        ({"index": "hnsw", "index_params": {"nlist": 8}}, "unknown index parameter"),
        ({"index": "hnsw", "index_params": {"m": 2}}, r"m must be an integer in \[4, 64\]"),
    ]:
        with pytest.raises(InputError, match=message):
            Collection.create(milvus.url(name()), **{"model": None, "dim": 8, **options})
    col = Collection.create(milvus.url(name()), model=None, dim=8)
    col.add(["a"], unit_vectors(1), texts=["some words"])
    with pytest.raises(InputError, match="mode 'text' is not supported by the milvus backend"):
        col.search("words", mode="text")
    with pytest.raises(InputError, match="Milvus keeps at most 65535 per field"):
        col.add(["b"], unit_vectors(1), texts=["x" * 70_000])
    with pytest.raises(InputError, match="k=20000 is over 16384"):
        col.search(unit_vectors(1)[0], k=20_000)
    with pytest.raises(InputError, match="already exists in this Milvus"):
        Collection.create(col.path, model=None, dim=8)
    with pytest.raises(NotFoundError, match="no collection 'absent'"):
        Collection.open(milvus.url("absent"))
    assert len(col) == 1


def test_filter_values_stay_data_whatever_they_hold(milvus):
    col = Collection.create(milvus.url(name()), model=None, dim=8)
    values = [
        "plain",
        'quote " inside',
        "apostrophe ' inside",
        "back\\slash",
        "new\nline",
        "tab\t",
        "é ü 漢字 🙂",
        '") or (id != "',
        'x" || true || "',
        'p_lang == "plain"',
    ]
    col.add(
        [f"v{i}" for i in range(len(values))],
        unit_vectors(len(values)),
        payloads=[{"lang": v} for v in values],
    )
    for i, value in enumerate(values):
        hits = col.search(unit_vectors(1)[0], k=20, filter={"lang": value})
        assert [h.id for h in hits] == [f"v{i}"], value
    assert {
        h.id for h in col.search(unit_vectors(1)[0], k=20, filter={"lang": {"in": values[:3]}})
    } == {"v0", "v1", "v2"}
    assert col.search(unit_vectors(1)[0], k=20, filter={"lang": {"in": []}}) == []
    with pytest.raises(InputError, match="holds the control character"):
        col.search(unit_vectors(1)[0], filter={"lang": "bell\x01"})


def test_session_and_bounded_readers_see_writes_after_a_moment(milvus):
    url = milvus.url(name())
    Collection.create(url, model=None, dim=8)
    writer = Collection.open(url)
    readers = [
        milvus_module.MilvusCollection.open(url, consistency=c) for c in ("bounded", "session")
    ]
    writer.add([f"v{i}" for i in range(20)], unit_vectors(20))
    assert (
        len(writer) == 20 and writer.search(unit_vectors(20)[7], k=1)[0].id == "v7"
    )  # its own writes, at once
    for reader in readers:
        deadline = time.monotonic() + 30
        while len(reader) < 20 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(reader) == 20
    with pytest.raises(InputError, match="consistency must be one of"):
        milvus_module.MilvusCollection.open(url, consistency="eventual")


WRITER = """
import sys, numpy as np
from uniembed.store import Collection
col = Collection.open(sys.argv[1])
rng = np.random.default_rng(0)
for batch in range(10**6):
    ids = [f"b{batch}-{i}" for i in range(50)]
    col.add(ids, rng.normal(size=(50, 8)).astype(np.float32), payloads=[{"batch": batch}] * 50)
    print(batch, flush=True)
"""


def test_sigkill_of_a_writer_loses_no_acknowledged_item(milvus):
    url = milvus.url(name())
    Collection.create(url, model=None, dim=8)
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, url],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    acknowledged = -1
    for line in writer.stdout:
        acknowledged = int(line)
        if acknowledged == 4:
            break
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    writer.stdout.close()
    col = milvus_module.MilvusCollection.open(
        url, consistency="strong"
    )  # everything acknowledged, not a bounded view
    batches = {}
    for hit in col.search(np.ones(8, np.float32), k=min(len(col), 16_384)):
        batches[hit.payload["batch"]] = batches.get(hit.payload["batch"], 0) + 1
    assert set(range(acknowledged + 1)) <= set(batches)
    assert all(
        batches[b] == 50 for b in range(acknowledged + 1)
    )  # one request per add: whole batches


def test_the_cli_works_on_a_milvus_url(milvus, tiny_dir, tmp_path):
    url = milvus.url(name())
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

    created = run("collection", "create", url, "--model", str(tiny_dir), "--index", "hnsw")
    assert created.returncode == 0, created.stderr
    added = run("collection", "add", url, str(corpus))
    assert added.returncode == 0 and "4 items now" in added.stdout, added.stderr
    found = run("search", url, "the cat", "-k", "2", "--filter", "year>=2017", "--json")
    assert found.returncode == 0, found.stderr
    assert {hit["payload"]["year"] for hit in json.loads(found.stdout)} <= {2017, 2018} and len(
        json.loads(found.stdout)
    ) == 2
    text = run("search", url, "cat", "--mode", "text")
    assert (
        text.returncode == 2
        and "no full-text search" in text.stderr
        and "Traceback" not in text.stderr
    )


def test_search_params_tune_one_opener_without_rebuilding(milvus):
    url = milvus.url(name())
    col = Collection.create(url, model=None, dim=16, index="ivf", index_params={"nlist": 4})
    vectors = unit_vectors(300, dim=16)
    col.add([f"v{i}" for i in range(300)], vectors)
    every_list = milvus_module.MilvusCollection.open(
        url, search_params={"nprobe": 4}
    )  # all 4 lists: exact
    exact = [f"v{i}" for i in np.argsort(-(vectors @ vectors[5]))[:10]]
    assert [h.id for h in every_list.search(vectors[5], k=10)] == exact
    with pytest.raises(InputError, match=r"search_params for Milvus IVF_FLAT may set \['nprobe'\]"):
        milvus_module.MilvusCollection.open(url, search_params={"ef_search": 64})


def test_serve_mounts_a_milvus_collection_under_a_name(milvus):
    from fastapi.testclient import TestClient

    from helpers import FakeEncoder
    from uniembed.serve import ServeSettings, create_app

    url = milvus.url(name())
    col = Collection.create(url, model=None, dim=8, index="hnsw")
    vectors = unit_vectors(20, dim=8)
    col.add([f"v{i}" for i in range(20)], vectors, payloads=[{"n": i} for i in range(20)])
    settings = ServeSettings(model="fake", remote_collections=(("vecs", url),))
    with TestClient(
        create_app(settings, encoder=FakeEncoder(8)), base_url="http://localhost"
    ) as client:
        assert client.get("/v1/collections").json()["collections"] == ["vecs"]
        found = client.post(
            "/v1/collections/vecs/search",
            json={"vector": vectors[4].tolist(), "k": 3, "filter": "n>=4"},
        )
        assert found.status_code == 200 and found.json()["hits"][0]["id"] == "v4", found.text
        assert client.get("/v1/collections/vecs").json()["count"] == 20
        assert client.delete("/v1/collections/vecs").status_code == 409 and len(col) == 20
