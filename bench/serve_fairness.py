"""A short request behind a long one: how long does it wait?

One client sends 200 long texts (SciFact abstracts, cut at 256 tokens); half a second later a
second client sends one short text. With requests cut into parts (`--max-part-tokens 4096`, the
default) the short one waits for one part; with parts off (`--max-part-tokens` and
`--max-batch-tokens` 1,000,000: the whole request is one job, as before issue 13) it waits for
all of it. Servers alternate A B A B; medians and min-max of the short request's latency.

    python -m bench.serve_fairness --rounds 2
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from pathlib import Path

import httpx

from bench.serve_load import Server

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "data" / "scifact" / "corpus.jsonl"
SETTINGS = {
    "parts of 4,096 tokens (default)": [],
    "no parts (one job per request)": [
        "--max-part-tokens",
        "1000000",
        "--max-batch-tokens",
        "1000000",
    ],
}


def long_texts(n: int = 200) -> list[str]:
    with open(CORPUS, encoding="utf-8") as f:
        return [json.loads(line)["text"] for _, line in zip(range(n), f)]


def one_round(args: list[str], texts: list[str]) -> tuple[float, float]:
    """(seconds the short request took, seconds the long one took)."""
    server = Server("--model", "default", *args)
    url = f"http://127.0.0.1:{server.port}/v1/embeddings"
    try:
        httpx.post(url, json={"model": "default", "input": ["warm up"]}, timeout=60)
        took = {}

        def long_request():
            started = time.perf_counter()
            httpx.post(
                url, json={"model": "default", "input": texts}, timeout=600
            ).raise_for_status()
            took["long"] = time.perf_counter() - started

        thread = threading.Thread(target=long_request)
        thread.start()
        time.sleep(0.5)
        started = time.perf_counter()
        httpx.post(
            url, json={"model": "default", "input": ["where is my card?"]}, timeout=600
        ).raise_for_status()
        took["short"] = time.perf_counter() - started
        thread.join()
        return took["short"], took["long"]
    finally:
        server.stop()


def run(rounds: int = 2) -> list[dict]:
    texts = long_texts()
    results = {name: [] for name in SETTINGS}
    for _ in range(rounds):
        for name, args in SETTINGS.items():  # A B A B
            results[name].append(one_round(args, texts))
            print(name, results[name][-1], file=sys.stderr, flush=True)
    rows = []
    for name, pairs in results.items():
        short, long = [p[0] for p in pairs], [p[1] for p in pairs]
        rows.append(
            {
                "setting": name,
                "short request, s": f"{statistics.median(short):.2f} ({min(short):.2f}-{max(short):.2f})",
                "200 long texts, s": f"{statistics.median(long):.2f} ({min(long):.2f}-{max(long):.2f})",
                "rounds": rounds,
            }
        )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    from bench.run import markdown_table

    print(markdown_table(run(args.rounds)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
