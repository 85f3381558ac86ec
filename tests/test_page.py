"""The web page over plain HTTP: every asset it loads is served, the map and results endpoints
behave, and bad input answers a clear error (the browser tests are in test_page_browser.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient as _TestClient

from uniembed import projection
from uniembed.serve import ServeSettings, create_app

KEY = "k" * 20 + "-page-key"


def TestClient(app):
    return _TestClient(app, base_url="http://localhost")


WORDS = ["cat", "dog", "bank", "money", "rain", "river", "stone", "market"]


@pytest.fixture()
def client(tiny_model, tmp_path):
    (tmp_path / "results").mkdir()
    settings = ServeSettings(
        model="tiny", collections=tmp_path / "collections", results_dirs=(tmp_path / "results",)
    )
    with TestClient(create_app(settings, encoder=tiny_model)) as client:
        client.results = tmp_path / "results"
        yield client


def add_docs(client, name: str, n: int, start: int = 0):
    items = [
        {
            "id": f"d{i}",
            "text": f"{WORDS[i % 8]} {WORDS[(i * 3) % 8]} number {i}",
            "payload": {"topic": WORDS[i % 8], "n": i},
        }
        for i in range(start, start + n)
    ]
    for chunk in range(0, n, 100):
        assert (
            client.post(
                f"/v1/collections/{name}/items", json={"items": items[chunk : chunk + 100]}
            ).status_code
            == 200
        )


def test_every_asset_the_page_loads_is_served(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert (
        "default-src 'self'" in page.headers["content-security-policy"]
    )  # nothing from another origin
    loaded = set(re.findall(r'(?:src|href)="(/page/[^"]+)"', page.text))
    for path in list(loaded):  # and what the scripts import
        if path.endswith(".js"):
            loaded |= set(re.findall(r'from "(/page/[^"]+)"', client.get(path).text))
    assert loaded == {"/page/style.css", "/page/page.js", "/page/map.js", "/page/chart.js"}
    for path in loaded:
        response = client.get(path)
        kind = "text/css" if path.endswith(".css") else "text/javascript"
        assert response.status_code == 200 and response.headers["content-type"].startswith(kind), (
            path
        )
    assert not re.search(
        r"https?://",
        page.text
        + "".join(client.get(p).text for p in loaded if p.endswith(".js")).replace(
            "http://www.w3.org/2000/svg", ""
        ),
    )  # no CDN, no network
    for bad in (
        "/page/nope.js",
        "/page/index.html",
        "/page/..%2Fapp.py",
        "/page/%2e%2e%2fsettings.py",
    ):
        assert client.get(bad).status_code == 404, bad


def test_every_control_has_a_label(client):
    page = client.get("/").text
    controls = re.findall(r'<(?:input|select)[^>]*id="([^"]+)"', page)
    labelled = set(re.findall(r'<label for="([^"]+)"', page))
    assert controls and set(controls) <= labelled, set(controls) - labelled


def test_the_page_is_open_but_the_data_needs_the_key(tiny_model, tmp_path):
    settings = ServeSettings(model="tiny", collections=tmp_path, api_keys=(KEY,))
    with TestClient(create_app(settings, encoder=tiny_model)) as client:
        assert client.get("/").status_code == 200 and client.get("/page/page.js").status_code == 200
        assert client.get("/v1/results").status_code == 401
        assert client.get("/v1/collections").status_code == 401
        assert (
            client.get("/v1/results", headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
        )


def test_the_map_projects_colours_and_caches_per_version(client, monkeypatch):
    client.post("/v1/collections", json={"name": "docs"})
    add_docs(client, "docs", 120)
    calls = []
    real = projection.project
    monkeypatch.setattr(projection, "project", lambda *a, **k: calls.append(1) or real(*a, **k))
    first = client.get("/v1/collections/docs/map", params={"color_by": "topic"}).json()
    assert (
        first["total"] == 120
        and not first["sampled"]
        and len(first["points"]) == 120 == len(first["ids"])
    )
    points = np.array(first["points"])
    assert (
        np.abs(points).max() <= 1.0 + 1e-6 and points.std(axis=0).min() > 0
    )  # spread over both axes
    topic = {f"d{i}": WORDS[i % 8] for i in range(120)}
    assert first["colors"] == [topic[i] for i in first["ids"]]
    again = client.get("/v1/collections/docs/map").json()
    assert (
        again["points"] == first["points"] and again["colors"] is None and len(calls) == 1
    )  # cached
    add_docs(client, "docs", 5, start=120)
    grown = client.get("/v1/collections/docs/map").json()
    assert grown["total"] == 125 and grown["version"] > first["version"] and len(calls) == 2


def test_a_large_collection_is_drawn_through_a_stable_sample(client):
    client.post("/v1/collections", json={"name": "big"})
    add_docs(client, "big", 300)
    sampled = client.get("/v1/collections/big/map", params={"max_points": 100}).json()
    assert sampled["sampled"] and sampled["total"] == 300 and len(sampled["ids"]) == 100
    assert (
        sampled["ids"]
        == client.get("/v1/collections/big/map", params={"max_points": 100}).json()["ids"]
    )
    add_docs(client, "big", 30, start=300)
    after = client.get("/v1/collections/big/map", params={"max_points": 100}).json()["ids"]
    assert (
        len(set(after) & set(sampled["ids"])) >= 85
    )  # new items enter only where their id hashes low
    expected = projection.stable_sample([f"d{i}" for i in range(300)], 100)
    assert sorted(sampled["ids"]) == sorted(f"d{i}" for i in expected)


def test_an_empty_collection_and_bad_map_requests(client, monkeypatch):
    client.post("/v1/collections", json={"name": "empty"})
    empty = client.get("/v1/collections/empty/map").json()
    assert empty["total"] == 0 and empty["points"] == []
    cases = {
        ("method", "tsne"): "method must be one of",
        ("color_by", "nope"): "not a payload field",
        ("max_points", "1"): "max_points",
    }
    for (param, value), message in cases.items():
        response = client.get("/v1/collections/empty/map", params={param: value})
        assert response.status_code == 400 and message in response.text, (param, response.text)
    assert client.get("/v1/collections/gone/map").status_code == 404
    monkeypatch.setitem(
        __import__("sys").modules, "umap", None
    )  # as if umap-learn were not installed
    add_docs(client, "empty", 10)
    response = client.get("/v1/collections/empty/map", params={"method": "umap"})
    assert (
        response.status_code == 400
        and "pip install umap-learn" in response.json()["error"]["message"]
    )


def test_umap_draws_the_map_when_installed(client):
    pytest.importorskip("umap", reason="umap-learn is in the [map] extra")
    client.post("/v1/collections", json={"name": "u"})
    add_docs(client, "u", 60)
    umap_map = client.get("/v1/collections/u/map", params={"method": "umap"}).json()
    pca_map = client.get("/v1/collections/u/map").json()
    assert (
        umap_map["method"] == "umap"
        and umap_map["ids"] == pca_map["ids"]
        and len(umap_map["points"]) == 60
    )
    points = np.array(umap_map["points"])
    assert np.isfinite(points).all() and np.abs(points).max() == pytest.approx(
        1.0, abs=1e-3
    )  # scaled into [-1, 1]
    assert not np.allclose(
        points, np.array(pca_map["points"]), atol=0.05
    )  # another projection, not PCA renamed
    assert (
        client.get("/v1/collections/u/map", params={"method": "umap"}).json()["points"]
        == umap_map["points"]
    )


def test_a_dropped_collection_forgets_its_map(client):
    client.post("/v1/collections", json={"name": "again"})
    add_docs(client, "again", 20)
    before = client.get("/v1/collections/again/map").json()
    assert client.delete("/v1/collections/again").status_code == 200
    assert client.get("/v1/collections/again/map").status_code == 404
    client.post("/v1/collections", json={"name": "again"})
    add_docs(client, "again", 7)
    after = client.get("/v1/collections/again/map").json()
    assert after["total"] == 7 and before["total"] == 20


def test_search_can_return_each_hits_text(client):
    client.post("/v1/collections", json={"name": "docs"})
    add_docs(client, "docs", 30)
    hits = client.post(
        "/v1/collections/docs/search", json={"query": "cat", "k": 3, "with_items": True}
    ).json()["hits"]
    assert len(hits) == 3 and all(h["text"].endswith(f"number {h['id'][1:]}") for h in hits)
    plain = client.post("/v1/collections/docs/search", json={"query": "cat", "k": 3}).json()["hits"]
    assert [h["id"] for h in plain] == [h["id"] for h in hits] and all(
        h["text"] is None for h in plain
    )
    bad = client.post("/v1/collections/docs/search", json={"query": "cat", "filter": "topic=="})
    assert bad.status_code == 400 and bad.json()["error"]["message"]  # what the page shows


def test_results_lists_mteb_results_and_draws_quality_against_cost(client):
    from uniembed.eval.report import save_result
    from uniembed.types import TaskResult

    save_result(
        TaskResult(
            task_name="SciFact",
            task_type="retrieval",
            split="test",
            main_metric="ndcg_at_10",
            scores={"ndcg_at_10": 0.6451},
            model="all-MiniLM-L6-v2",
            evaluation_time=12.5,
        ),
        client.results,
    )
    bench = {
        "bench": "collection",
        "date": "2026-11-30",
        "tables": {
            "quality vs memory": [
                {
                    "configuration": "exact float32",
                    "nDCG@10": 64.51,
                    "bytes/vector": 1536.0,
                    "ms/query": "0.17 (0.17-0.19)",
                },
                {
                    "configuration": "binary + rescore x4",
                    "nDCG@10": 63.79,
                    "bytes/vector": 48.0,
                    "ms/query": "0.13 (0.1-0.2)",
                },
                {"configuration": "broken", "nDCG@10": "-", "bytes/vector": 8.0, "ms/query": "-"},
            ]
        },
    }
    (client.results / "collection.json").write_text(json.dumps(bench))
    (client.results / "half.json").write_text('{"tables": ')
    data = client.get("/v1/results").json()
    assert data["results"] == [
        {
            "model": "all-MiniLM-L6-v2",
            "task": "SciFact",
            "split": "test",
            "main_score": 64.51,
            "seconds": 12.5,
            "file": "all-MiniLM-L6-v2/SciFact.json",
        }
    ]  # relative (issue 30)
    charts = {(c["y"], c["x"]): c for c in data["charts"]}
    assert set(charts) == {("nDCG@10", "bytes/vector"), ("nDCG@10", "ms/query")}
    assert charts[("nDCG@10", "ms/query")]["points"] == [
        {"label": "exact float32", "x": 0.17, "y": 64.51},
        {"label": "binary + rescore x4", "x": 0.13, "y": 63.79},
    ]
    assert [s["file"] for s in data["skipped"]] == ["half.json"]


@pytest.mark.parametrize(
    "bad",
    [
        '{"task_name": "T", "scores": {"test": [{"main_score": NaN}]}}',
        '{"task_name": "T", "evaluation_time": Infinity, "scores": {}}',
        '{"tables": {"t": [{"name": "a", "nDCG": 1e999, "bytes": 1}]}}',
        "[" * 200_000 + "]" * 200_000,
        '{"task_name": "T", "scores": {"test": [{"main_score": 1e307}]}}',
    ],
)
def test_one_bad_results_file_is_skipped_and_the_rest_still_answer(client, bad):
    from uniembed.eval.report import save_result
    from uniembed.types import TaskResult

    save_result(
        TaskResult(
            task_name="SciFact",
            task_type="retrieval",
            split="test",
            main_metric="ndcg_at_10",
            scores={"ndcg_at_10": 0.6451},
            model="m",
            evaluation_time=1.0,
        ),
        client.results,
    )
    (client.results / "bad.json").write_text(bad)
    (client.results / "cells.json").write_text(
        json.dumps(
            {
                "tables": {
                    "t": [
                        {"name": "a", "nDCG": "1e999", "bytes": 1},
                        {"name": "b", "nDCG": 50, "bytes": 2},
                        {"name": "c", "nDCG": 60, "bytes": 3},
                    ]
                }
            }
        )
    )
    response = client.get("/v1/results")
    assert response.status_code == 200, response.text
    data = response.json()
    assert [row["task"] for row in data["results"]] == ["SciFact"]
    assert [p["label"] for p in data["charts"][0]["points"]] == [
        "b",
        "c",
    ]  # the inf cell is no point
    if "1e307" not in bad:
        assert [s["file"] for s in data["skipped"]] == ["bad.json"]


def test_a_fifo_or_a_folder_named_json_is_passed_over_not_read(tmp_path):
    import os

    from uniembed.serve.results import read_results

    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "T.json").write_text(
        json.dumps({"task_name": "T", "scores": {"test": [{"main_score": 0.5}]}})
    )
    os.mkfifo(tmp_path / "blocks.json")  # reading it would wait for a writer forever
    (tmp_path / "folder.json").mkdir()
    assert [row["task"] for row in read_results([tmp_path])["results"]] == ["T"]


def test_a_results_folder_given_twice_is_read_once(tmp_path, monkeypatch):
    from uniembed.serve.results import read_results

    (tmp_path / "results" / "m").mkdir(parents=True)
    (tmp_path / "results" / "m" / "T.json").write_text(
        json.dumps({"task_name": "T", "scores": {"test": [{"main_score": 0.5}]}})
    )
    monkeypatch.chdir(tmp_path)
    assert (
        len(read_results([Path("results"), Path("results"), tmp_path / "results"])["results"]) == 1
    )


def test_results_folders_must_exist(tmp_path):
    from uniembed import InputError

    with pytest.raises(InputError, match="--results must be a folder"):
        ServeSettings(results_dirs=(tmp_path / "missing",))
