"""The service over real sockets: the official openai client, curl, concurrency, backpressure,
graceful shutdown of `uniembed serve`, and a bounded schemathesis fuzz of the OpenAPI document."""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

pytest.importorskip("fastapi")
import httpx

from serve_helpers import free_port, live_server, start_cli_server
from uniembed.serve import ServeSettings, create_app
from uniembed.serve.batcher import MicroBatcher, QueueFull

KEY = "live-test-key-0123456789"


@pytest.fixture(scope="module")
def server(tiny_model):
    app = create_app(
        ServeSettings(model="tiny", api_keys=(KEY,), max_wait_ms=20), encoder=tiny_model
    )
    with live_server(app) as url:
        yield url, app


def test_the_official_openai_client_works_unchanged(server, tiny_model):
    openai = pytest.importorskip("openai")
    url, _ = server
    client = openai.OpenAI(base_url=f"{url}/v1", api_key=KEY, max_retries=0)
    texts = ["a cat sat on the mat", "hello world"]
    response = client.embeddings.create(
        model="tiny", input=texts
    )  # the client asks for base64 by default
    got = np.array([d.embedding for d in response.data], dtype=np.float32)
    np.testing.assert_array_equal(got, tiny_model.encode(texts))
    as_floats = client.embeddings.create(
        model="tiny", input=texts, encoding_format="float", dimensions=8
    )
    np.testing.assert_allclose(
        np.array([d.embedding for d in as_floats.data]), tiny_model.encode(texts, dim=8), atol=1e-7
    )
    assert response.usage.prompt_tokens == response.usage.total_tokens > 0
    assert [m.id for m in client.models.list()] == [tiny_model.name]
    with pytest.raises(openai.NotFoundError):
        client.embeddings.create(model="gpt-4", input="a")
    with pytest.raises(openai.BadRequestError) as bad:
        client.embeddings.create(model="tiny", input="")
    assert bad.value.body["param"] == "input"
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(
            base_url=f"{url}/v1", api_key="wrong-key-0123456789", max_retries=0
        ).embeddings.create(model="tiny", input="a")


def test_a_plain_curl_call(server, tiny_model):
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    url, _ = server
    result = subprocess.run(
        [
            "curl",
            "-sS",
            f"{url}/v1/embeddings",
            "-H",
            f"Authorization: Bearer {KEY}",
            "-H",
            "Content-Type: application/json",
            "-d",
            '{"model": "tiny", "input": "hello world"}',
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    vector = np.array(json.loads(result.stdout)["data"][0]["embedding"], dtype=np.float32)
    np.testing.assert_array_equal(vector, tiny_model.encode(["hello world"])[0])


def test_concurrent_requests_each_get_exactly_their_own_vectors(server, tiny_model):
    url, app = server
    words = "a an the cat dog sat mat sun rain blue red bank card money sent".split()
    requests = [
        [f"{words[i % 15]} {words[(i * 7 + j) % 15]} {words[j % 15]}" for j in range(1 + i % 5)]
        for i in range(96)
    ]

    def call(texts):
        response = httpx.post(
            f"{url}/v1/embeddings",
            json={"model": "tiny", "input": texts},
            headers={"Authorization": f"Bearer {KEY}"},
            timeout=60,
        )
        return np.array([d["embedding"] for d in response.json()["data"]], dtype=np.float32)

    with ThreadPoolExecutor(32) as pool:
        results = list(pool.map(call, requests))
    for texts, got in zip(requests, results):
        np.testing.assert_allclose(got, tiny_model.encode(texts), atol=1e-6)
    merged = app.state.service.metrics.batch_requests.collect()[0].samples
    observed = {s.labels.get("le"): s.value for s in merged if s.name.endswith("_bucket")}
    assert observed["1.0"] < observed["+Inf"], "no micro-batch merged two requests"


# -- the batcher alone ---------------------------------------------------------------------------


def test_a_full_queue_refuses_at_once_and_the_rest_are_answered():
    release = threading.Event()
    calls = []

    def embed(batch):
        release.wait(10)
        calls.append(len(batch))
        return [np.full((n, 2), n, dtype=np.float32) for n in batch]

    batcher = MicroBatcher(embed, max_batch_tokens=1000, max_wait=0.0, max_queue_inputs=4)

    async def scenario():
        first = batcher.submit(1, 1, 1)  # taken by the worker, blocked in embed
        await asyncio.sleep(0.05)
        queued = [batcher.submit(2, 2, 2), batcher.submit(2, 2, 2)]
        with pytest.raises(QueueFull, match="limit 4"):
            batcher.submit(1, 1, 1)
        release.set()
        return await first, await asyncio.gather(*queued)

    first, queued = asyncio.run(scenario())
    batcher.close()
    assert first.shape == (1, 2) and all(q.shape == (2, 2) for q in queued)
    assert calls == [1, 2]  # the two queued jobs went in one batch


def test_batching_off_encodes_every_job_alone_and_errors_reach_every_waiter():
    calls = []

    def embed(batch):
        calls.append(len(batch))
        if "boom" in batch:
            raise RuntimeError("model failed")
        return [np.zeros((1, 2), np.float32) for _ in batch]

    batcher = MicroBatcher(embed, max_batch_tokens=0, max_wait=0.01, max_queue_inputs=100)

    async def scenario():
        ok = await asyncio.gather(*(batcher.submit(i, 1, 1) for i in range(5)))
        with pytest.raises(RuntimeError, match="model failed"):
            await batcher.submit("boom", 1, 1)
        return ok

    assert len(asyncio.run(scenario())) == 5
    batcher.close()
    assert calls == [1] * 6


def test_the_service_answers_429_when_its_queue_is_full(tiny_model):
    release = threading.Event()

    class Slow(type(tiny_model)):
        def embed_prepared(self, *args, **kwargs):
            release.wait(10)
            return super().embed_prepared(*args, **kwargs)

    slow = tiny_model.__class__.__new__(Slow)
    slow.__dict__.update(tiny_model.__dict__)
    app = create_app(
        ServeSettings(model="tiny", max_inputs=4, max_queue_inputs=4, max_wait_ms=0), encoder=slow
    )
    with live_server(app) as url, ThreadPoolExecutor(8) as pool:

        def call(_):
            return httpx.post(
                f"{url}/v1/embeddings", json={"model": "tiny", "input": ["a", "b", "c"]}, timeout=30
            )

        futures = [pool.submit(call, i) for i in range(6)]
        threading.Event().wait(0.5)
        release.set()
        statuses = sorted(f.result().status_code for f in futures)
    assert 429 in statuses and 200 in statuses and set(statuses) <= {200, 429}
    refused = next(f.result() for f in futures if f.result().status_code == 429)
    assert refused.json()["error"]["code"] == "queue_full" and refused.headers["retry-after"] == "1"


# -- the CLI server ----------------------------------------------------------------------------


def test_sigterm_drains_in_flight_requests(tiny_dir, tmp_path):
    port = free_port()
    log = open(tmp_path / "server.log", "w")
    process = start_cli_server("--model", str(tiny_dir), "--max-wait-ms", "0", port=port, log=log)
    try:
        body = {
            "model": tiny_dir.name,
            "input": [f"the cat sat on the mat {i} times" for i in range(2048)],
        }
        with ThreadPoolExecutor(4) as pool:
            futures = [
                pool.submit(
                    httpx.post, f"http://127.0.0.1:{port}/v1/embeddings", json=body, timeout=60
                )
                for _ in range(4)
            ]
            threading.Event().wait(0.3)  # the requests are in flight
            process.send_signal(signal.SIGTERM)
            responses = [f.result() for f in futures]
        assert [r.status_code for r in responses] == [200] * 4
        assert all(len(r.json()["data"]) == 2048 for r in responses)
        # uvicorn re-raises the signal once it has shut down cleanly, so the parent sees SIGTERM
        assert process.wait(30) == -signal.SIGTERM
    finally:
        if process.poll() is None:
            process.kill()
        log.close()
    assert (
        "Application shutdown complete" in (tmp_path / "server.log").read_text()
    )  # the batcher was closed


def test_serve_refuses_a_model_that_cannot_load(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "uniembed.cli.main",
            "serve",
            "--model",
            str(tmp_path / "missing"),
            "--port",
            str(free_port()),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "failed to load" in result.stderr and "missing" in result.stderr
