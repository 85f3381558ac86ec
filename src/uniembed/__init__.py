"""uniembed: universal embeddings. Encode, evaluate, compress, store and search vectors.

    import uniembed
    model = uniembed.load()                        # the default model, offline
    vectors = model.encode(["a sentence", "another"])

This module imports numpy and the standard library only; torch loads on the first `load()`.
"""

from uniembed.encoders.reproducible import request_strict_blas

request_strict_blas()  # before torch's first matrix product: see encoders/reproducible.py

from uniembed.encoders import Encoder, EncodeReport, TruncationWarning, load  # noqa: E402
from uniembed.errors import (  # noqa: E402
    ConflictError,
    InputError,
    IntegrityError,
    MissingExtraError,
    ModelLoadError,
    NotFoundError,
    UniembedError,
)
from uniembed.eval import evaluate  # noqa: E402
from uniembed.io import embed_file  # noqa: E402
from uniembed.types import CollectionInfo, Hit, Item, TaskResult  # noqa: E402


def __getattr__(name: str):
    # Collection pulls in LanceDB and pyarrow: import it on first use, not with `import uniembed`
    if name == "Collection":
        from uniembed.store import Collection

        return Collection
    raise AttributeError(f"module 'uniembed' has no attribute {name!r}")


__version__ = "0.1.0"

__all__ = [
    "Collection",
    "CollectionInfo",
    "ConflictError",
    "EncodeReport",
    "Encoder",
    "InputError",
    "IntegrityError",
    "MissingExtraError",
    "Hit",
    "Item",
    "ModelLoadError",
    "NotFoundError",
    "TaskResult",
    "TruncationWarning",
    "UniembedError",
    "embed_file",
    "evaluate",
    "load",
]
