"""Text-query latency: what a search by text costs against its parts, per backend, same run.

A folder collection of 1,500 SciFact abstracts (payload: a year, for a filter) and a copy
quantised to binary (rescored by the float vectors). For each configuration, a fresh process
loads the model, builds both collections from the same stored vectors, and times 100 SciFact test
queries, each query going through every operation in turn (encode alone, vector search, BM25, then
search by text: dense, filtered, rescored, hybrid), so a noisy stretch lands on all of them alike.
Three rounds; each cell is the median over rounds of the per-round p50 (ms), with min-max.

    python -m bench.query_latency          # about 4 minutes, prints the tables

The goals (issue 32): a dense search by text costs at most 1.15x encoding the query alone plus
the vector search; hybrid at most 1.2x the sum of its parts (encode, the vector search and BM25,
both at hybrid's depth of 100); the same through the service at one client. The "policy off"
row runs torch with uniembed.threads' limit disabled: the thread fight the policy removes.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

from bench.encode import spread

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "scifact"
N_DOCS, N_QUERIES, ROUNDS = 1500, 100, 3
CONFIGURATIONS = {
    "torch fp32": {"backend": "torch", "precision": "fp32"},
    "torch fp32, policy off": {"backend": "torch", "precision": "fp32", "policy": "off"},
    "onnx fp32": {"backend": "onnx", "precision": "fp32"},
    "openvino fp32": {"backend": "openvino", "precision": "fp32"},
    "openvino bf16": {"backend": "openvino", "precision": "bf16"},
}
OPERATIONS = (
    "encode",
    "vector k=10",
    "vector k=100",
    "BM25 k=100",
    "dense by text",
    "dense by text, filtered",
    "dense by text, binary + rescore",
    "hybrid",
)


def corpus() -> tuple[list[str], list[str], list[str]]:
    """(ids, documents, queries): the first N_DOCS SciFact abstracts, N_QUERIES test queries."""
    docs = [json.loads(line) for line in (DATA / "corpus.jsonl").read_text().splitlines()]
    docs = docs[:N_DOCS]
    queries = [
        json.loads(line)["text"] for line in (DATA / "queries.jsonl").read_text().splitlines()
    ]
    return (
        [d["_id"] for d in docs],
        [(d["title"] + " " + d["text"]).strip() for d in docs],
        queries[:N_QUERIES],
    )


def build(folder: str, model, vectors: np.ndarray, quantize: str):
    """A collection named after its quantisation ("none" or "binary") in `folder`."""
    from uniembed import Collection

    ids, texts, _ = corpus()
    collection = Collection.create(f"{folder}/{quantize}", model=model, quantize=quantize)
    payloads = [{"year": 2010 + i % 10} for i in range(len(ids))]
    collection.add(ids, vectors, payloads=payloads, texts=texts)
    return collection


def worker(label: str, vectors_path: str) -> None:
    """Every operation's p50 per round, for one configuration, printed as JSON."""
    import warnings

    import uniembed
    import uniembed.threads

    warnings.simplefilter("ignore")
    options = dict(CONFIGURATIONS[label])
    if options.pop("policy", "on") == "off":
        uniembed.threads.SMALL_QUERY_BATCH = 0  # every search keeps every thread: the old way
    model = uniembed.load(device="cpu", **options)
    vectors = np.load(vectors_path)
    _, _, queries = corpus()
    with tempfile.TemporaryDirectory() as folder:
        plain, binary = (
            build(folder, model, vectors, "none"),
            build(folder, model, vectors, "binary"),
        )
        query_vectors = model.encode(queries, prompt="query")
        operations = {
            "encode": lambda i, q: model.encode([q], prompt="query"),
            "vector k=10": lambda i, q: plain.search(query_vectors[i], k=10),
            "vector k=100": lambda i, q: plain.search(query_vectors[i], k=100),
            "BM25 k=100": lambda i, q: plain.search(q, k=100, mode="text"),
            "dense by text": lambda i, q: plain.search(q, k=10),
            "dense by text, filtered": lambda i, q: plain.search(q, k=10, filter="year>=2015"),
            "dense by text, binary + rescore": lambda i, q: binary.search(q, k=10),
            "hybrid": lambda i, q: plain.search(q, k=10, mode="hybrid"),
        }
        for i, q in enumerate(queries[:10]):  # warm-up: pools, allocators, the BM25 index
            for operation in operations.values():
                operation(i, q)
        rounds = []
        for _ in range(ROUNDS):
            times = {name: [] for name in operations}
            for i, q in enumerate(queries):
                for name, operation in operations.items():
                    start = time.perf_counter()
                    operation(i, q)
                    times[name].append(1000 * (time.perf_counter() - start))
            rounds.append({name: statistics.median(t) for name, t in times.items()})
    print(json.dumps(rounds))


def service_worker(vectors_path: str) -> None:
    """The same through `uniembed serve` at one client: /v1/embeddings for one query, a search by
    that vector, and a search by the text, each query in turn; p50 per round, printed as JSON."""
    import warnings

    import uniembed
    from bench.serve_load import Server

    warnings.simplefilter("ignore")
    vectors = np.load(vectors_path)
    _, _, queries = corpus()
    with tempfile.TemporaryDirectory() as folder:
        build(folder, uniembed.load(device="cpu"), vectors, "none")
        server = Server("--collections", folder)
        try:
            base = f"http://127.0.0.1:{server.port}"

            def post(path: str, body: dict) -> dict:
                request = urllib.request.Request(
                    base + path,
                    data=json.dumps(body).encode(),
                    headers={"Content-Type": "application/json"},
                )
                with urllib.request.urlopen(request, timeout=60) as response:
                    return json.loads(response.read())

            def embed(q):
                return post("/v1/embeddings", {"input": [q], "model": "default"})

            operations = {
                "embeddings request": embed,
                "embed, then search by vector": lambda q: post(
                    "/v1/collections/none/search",
                    {"vector": embed(q)["data"][0]["embedding"], "k": 10},
                ),
                "search by text": lambda q: post(
                    "/v1/collections/none/search", {"query": q, "k": 10}
                ),
            }
            for q in queries[:10]:
                for operation in operations.values():
                    operation(q)
            rounds = []
            for _ in range(ROUNDS):
                times = {name: [] for name in operations}
                for q in queries:
                    for name, operation in operations.items():
                        start = time.perf_counter()
                        operation(q)
                        times[name].append(1000 * (time.perf_counter() - start))
                rounds.append({name: statistics.median(t) for name, t in times.items()})
        finally:
            server.stop()
    print(json.dumps(rounds))


def _child(*args: str) -> tuple[list[dict] | None, str]:
    proc = subprocess.run(
        [sys.executable, "-m", __spec__.name, *args], capture_output=True, text=True
    )
    if proc.returncode != 0:
        return None, (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
    return json.loads(proc.stdout.strip().splitlines()[-1]), ""


def run() -> dict[str, list[dict]]:
    import uniembed

    _, texts, _ = corpus()
    with tempfile.TemporaryDirectory() as folder:
        vectors_path = f"{folder}/vectors.npy"
        model = uniembed.load(device="cpu")
        np.save(vectors_path, model.encode(texts, prompt="document", show_progress=False))
        latency, goals = [], []
        for label in CONFIGURATIONS:
            rounds, why = _child("--worker", label, vectors_path)
            if rounds is None:
                latency.append({"configuration": label, "skipped": why})
                continue
            latency.append(
                {"configuration": label}
                | {name: spread([r[name] for r in rounds], 2) for name in OPERATIONS}
            )
            dense = [r["dense by text"] / (r["encode"] + r["vector k=10"]) for r in rounds]
            hybrid = [
                r["hybrid"] / (r["encode"] + r["vector k=100"] + r["BM25 k=100"]) for r in rounds
            ]
            goals.append(
                {
                    "configuration": label,
                    "dense by text / (encode + vector)": spread(dense, 2),
                    "<= 1.15": statistics.median(dense) <= 1.15,
                    "hybrid / (encode + vector + BM25)": spread(hybrid, 2),
                    "<= 1.20": statistics.median(hybrid) <= 1.20,
                }
            )
        rounds, why = _child("--service", vectors_path)
        service = []
        if rounds is not None:
            ratio = [
                r["search by text"] / r["embed, then search by vector"] for r in rounds
            ]  # the vector search's request includes its own embeddings request
            service.append(
                {name: spread([r[name] for r in rounds], 2) for name in rounds[0]}
                | {
                    "text / (embed + vector)": spread(ratio, 2),
                    "<= 1.15": statistics.median(ratio) <= 1.15,
                }
            )
        else:
            service.append({"skipped": why})
    title = (
        f"Text-query latency, folder collection of {N_DOCS:,} SciFact abstracts "
        f"(p50 ms, {N_QUERIES} queries, {ROUNDS} rounds)"
    )
    return {
        title: latency,
        "Text-query latency: searches by text against their parts (goals of issue 32)": goals,
        "Text-query latency through the service, 1 client (p50 ms, torch fp32)": service,
    }


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(*sys.argv[2:4])
        return 0
    if len(sys.argv) > 1 and sys.argv[1] == "--service":
        service_worker(sys.argv[2])
        return 0
    from bench.run import print_tables

    print_tables(run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
