"""SciFact corpus and test-query vectors from the default model, cached in bench/.cache/ (the
corpus takes minutes to encode on a CPU)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from uniembed.eval.loaders import load_beir

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "scifact"
CACHE = Path(__file__).resolve().parent / ".cache"


def scifact_vectors(model):
    """(data, corpus vectors, query vectors) with corpus texts as BEIR joins them."""
    data = load_beir(DATA, "test")
    CACHE.mkdir(exist_ok=True)
    path = CACHE / f"scifact-{model.fingerprint[:16]}.npz"
    if path.exists():
        cached = np.load(path)
        return data, cached["corpus"], cached["queries"]
    corpus = model.encode(data.corpus, prompt="document", show_progress=True)
    queries = model.encode(data.queries, prompt="query")
    np.savez(path, corpus=corpus, queries=queries)
    return data, corpus, queries
