"""Encoding throughput of uniembed vs sentence-transformers on the same model, same machine, same run.

Reports medians over repeats and the ratio uniembed / sentence-transformers (higher is better).
"""
from __future__ import annotations

import statistics
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def stsb_sentences() -> list[str]:
    sentences = []
    for line in (DATA / "stsb" / "sts-test.csv").read_text(encoding="utf-8").splitlines():
        sentences += line.split("\t")[5:7]
    return list(dict.fromkeys(sentences))


def _median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up: first-call allocations and thread pools
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run(model, repeats: int = 3, batch_size: int = 32) -> list[dict]:
    from sentence_transformers import SentenceTransformer

    from uniembed.encoders import registry

    texts = stsb_sentences()
    reference = SentenceTransformer(str(registry.package_dir(registry.CATALOGUE[registry.DEFAULT_MODEL])), device="cpu")
    ours = _median_seconds(lambda: model.encode(texts, batch_size=batch_size, show_progress=False), repeats)
    theirs = _median_seconds(lambda: reference.encode(texts, batch_size=batch_size, convert_to_numpy=True), repeats)
    return [{
        "workload": f"{len(texts)} STSb sentences, batch {batch_size}, CPU",
        "uniembed texts/s": round(len(texts) / ours, 1),
        "sentence-transformers texts/s": round(len(texts) / theirs, 1),
        "ratio": round(theirs / ours, 2),
        "repeats": repeats,
    }]
