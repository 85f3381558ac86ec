"""uniembed: universal embeddings. Encode, evaluate, compress, store and search vectors.

    import uniembed
    model = uniembed.load()                        # the default model, offline
    vectors = model.encode(["a sentence", "another"])

This module imports numpy and the standard library only; torch loads on the first `load()`.
"""
from uniembed.encoders import EncodeReport, Encoder, TruncationWarning, load
from uniembed.errors import InputError, IntegrityError, MissingExtraError, ModelLoadError, UniembedError
from uniembed.eval import evaluate
from uniembed.io import embed_file
from uniembed.types import CollectionInfo, Hit, Item, TaskResult


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
    "EncodeReport",
    "Encoder",
    "InputError",
    "IntegrityError",
    "MissingExtraError",
    "Hit",
    "Item",
    "ModelLoadError",
    "TaskResult",
    "TruncationWarning",
    "UniembedError",
    "embed_file",
    "evaluate",
    "load",
]
