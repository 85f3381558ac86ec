"""Slow, idle and departing clients against real sockets (issue 13): half-open connections are
closed after the read deadline, connections past the cap at once, and work for a client that
went away is dropped."""

from __future__ import annotations

import socket
import threading
import time

import pytest

pytest.importorskip("fastapi")
import httpx

from serve_helpers import free_port, start_cli_server


def closed_by_server(sock: socket.socket, within: float) -> bool:
    """True when the server closes (or resets) the connection within `within` seconds."""
    sock.settimeout(within)
    try:
        return sock.recv(1024) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def test_half_open_connections_are_closed_and_the_cap_holds(tiny_dir, tmp_path):
    port = free_port()
    log = open(tmp_path / "server.log", "w")
    process = start_cli_server(
        "--model",
        str(tiny_dir),
        "--read-timeout",
        "1",
        "--max-connections",
        "20",
        port=port,
        log=log,
    )
    sockets = []
    try:
        for _ in range(25):  # partial headers, then silence
            sock = socket.create_connection(("127.0.0.1", port))
            sock.sendall(b"POST /v1/embeddings HTTP/1.1\r\nHost: localhost\r\nContent-Le")
            sockets.append(sock)
        time.sleep(0.2)
        over_cap = [s for s in sockets if closed_by_server(s, 0.05)]
        assert len(over_cap) >= 5  # the ones past the cap were closed at once
        started = time.monotonic()
        assert all(
            closed_by_server(s, 5) for s in sockets if s not in over_cap
        )  # the read deadline
        assert time.monotonic() - started < 4
        idle = socket.create_connection(("127.0.0.1", port))  # connected, never sends a byte
        assert closed_by_server(idle, 5)
        slow_body = socket.create_connection(("127.0.0.1", port))
        slow_body.sendall(
            b"POST /v1/embeddings HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            b'Content-Length: 1000\r\n\r\n{"model"'
        )
        assert closed_by_server(slow_body, 5)
        response = httpx.post(
            f"http://127.0.0.1:{port}/v1/embeddings", json={"model": tiny_dir.name, "input": "hi"}
        )
        assert response.status_code == 200  # the server is healthy throughout
    finally:
        for sock in sockets:
            sock.close()
        process.kill()
        process.wait(10)
        log.close()


def test_work_for_a_client_that_went_away_is_dropped(tiny_model):
    from serve_helpers import live_server
    from uniembed.serve import ServeSettings, create_app

    parts = []
    release = threading.Event()

    class Slow(type(tiny_model)):
        def embed_prepared(self, windows, n_inputs, **kwargs):
            parts.append(n_inputs)
            release.wait(0.2)
            return super().embed_prepared(windows, n_inputs, **kwargs)

    slow = tiny_model.__class__.__new__(Slow)
    slow.__dict__.update(tiny_model.__dict__)
    settings = ServeSettings(model="tiny", max_batch_tokens=64, max_wait_ms=0, max_inputs=400)
    with live_server(create_app(settings, encoder=slow)) as url:
        texts = [f"the cat sat on the mat {i}" for i in range(400)]  # about 40 parts of 64 tokens
        try:
            httpx.post(f"{url}/v1/embeddings", json={"model": "tiny", "input": texts}, timeout=0.5)
        except httpx.TimeoutException:
            pass  # the client gives up and closes its connection
        time.sleep(1.5)
        done_soon_after = len(parts)
        time.sleep(1.0)
        assert len(parts) == done_soon_after  # nothing more is encoded for it
        assert sum(parts) < len(texts)
        ok = httpx.post(
            f"{url}/v1/embeddings", json={"model": "tiny", "input": ["still serving"]}, timeout=10
        )
        assert ok.status_code == 200


def test_a_search_whose_client_left_before_it_started_never_runs(tmp_path, monkeypatch):
    from helpers import FakeEncoder
    from serve_helpers import live_server
    from uniembed.serve import ServeSettings, create_app

    # the folder home's search (Collection is the contract above the homes since issue 31)
    from uniembed.store.folder import FolderCollection as Collection

    calls = []
    original = Collection.search

    def slow_search(self, query, *args, **kwargs):
        calls.append(query)
        time.sleep(1.5)
        return original(self, query, *args, **kwargs)

    settings = ServeSettings(model="fake", collections=tmp_path, collection_threads=1)
    with live_server(create_app(settings, encoder=FakeEncoder(8))) as url:
        httpx.post(f"{url}/v1/collections", json={"name": "c", "vectors_only": True, "dim": 8})
        httpx.post(
            f"{url}/v1/collections/c/items", json={"items": [{"id": "a", "vector": [1.0] * 8}]}
        )
        monkeypatch.setattr(Collection, "search", slow_search)
        first = threading.Thread(
            target=httpx.post,
            args=(f"{url}/v1/collections/c/search",),
            kwargs={"json": {"vector": [1.0] * 8}, "timeout": 10},
        )
        first.start()  # holds the only collection thread for 1.5 s
        time.sleep(0.3)
        try:  # waits for the thread, gives up, disconnects
            httpx.post(f"{url}/v1/collections/c/search", json={"vector": [2.0] * 8}, timeout=0.5)
        except httpx.TimeoutException:
            pass
        first.join()
        time.sleep(0.5)
        assert len(calls) == 1  # only the first search ran
