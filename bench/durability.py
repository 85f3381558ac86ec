"""Durability: kill a writer with SIGKILL at random moments, then check every acknowledged write.

A writer process adds small batches of vectors to a collection and prints "ACK <first> <last>"
after each add returns. The harness kills it at a random moment, reopens the collection, and
checks that (1) it opens and searches, (2) every acknowledged id is present with its vector.
With --multivector the collection is a multi-vector one: each item is 3 token vectors (stored as
float16) plus their FDE, and every acknowledged item must come back with both. With --images the
collection keeps images (bytes): each item is a vector plus a small PNG, and every acknowledged
item must come back with its vector and the very same image bytes.

    python -m bench.durability --rounds 50          # prints a table (or --json)
    python -m bench.durability --rounds 50 --multivector
    python -m bench.durability --rounds 50 --images
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DIM = 32


FDE = {"repetitions": 2, "k_sim": 2, "d_proj": 4}


def vector_of(i: int) -> np.ndarray:
    return np.random.default_rng(i).normal(size=DIM).astype(np.float32)


def tokens_of(i: int) -> np.ndarray:
    return np.random.default_rng(i).normal(size=(3, DIM)).astype(np.float32)


def png_of(i: int) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(i).integers(0, 256, size=(8, 8, 3), dtype=np.uint8)).save(
        buffer, format="PNG"
    )
    return buffer.getvalue()


def writer(path: str, start: int, batch: int) -> None:
    from uniembed.store import Collection

    col = Collection.open(path)
    i = start
    while True:
        ids = list(range(i, i + batch))
        data = (
            [tokens_of(j) for j in ids]
            if col.multivector
            else np.stack([vector_of(j) for j in ids])
        )
        images = {"images": [png_of(j) for j in ids]} if col.images else {}
        col.add([f"id{j}" for j in ids], data, payloads=[{"n": j} for j in ids], **images)
        print(f"ACK {ids[0]} {ids[-1]}", flush=True)
        i += batch


def check(path: str, acknowledged: list[int]) -> tuple[bool, int]:
    """(opened and searched, number of acknowledged ids missing or wrong)."""
    from uniembed.store import Collection

    try:
        col = Collection.open(path)
        col.search(tokens_of(0) if col.multivector else vector_of(0), k=1)
    except Exception as exc:
        print(f"open failed: {exc}", file=sys.stderr)
        return False, len(acknowledged)
    stored = col.snapshot()  # every row of the latest commit, read from the store
    rows = {id_: row for row, id_ in enumerate(stored.ids)}
    vectors = stored.vectors("default")
    images = {}
    if col.images:
        from uniembed.store.backend import ID, IMAGE

        table = col.backend.scan([ID, IMAGE])
        images = dict(zip(table.column(ID).to_pylist(), table.column(IMAGE).to_pylist()))

    def intact(j: int) -> bool:
        row = rows.get(f"id{j}")
        if row is None:
            return False
        if col.images:
            return np.allclose(vectors[row], vector_of(j)) and images.get(f"id{j}") == png_of(j)
        if not col.multivector:
            return np.allclose(vectors[row], vector_of(j))
        tokens = tokens_of(j)
        return np.allclose(stored.tokens.get([row])[0], tokens, atol=1e-2) and np.allclose(
            vectors[row], col.vectors.fde.documents([tokens])[0], atol=1e-5
        )

    return True, sum(1 for j in acknowledged if not intact(j))


KINDS = {
    "single-vector": {},
    "multi-vector": {"multivector": "muvera", "fde": FDE},
    "image": {"images": "bytes"},
}


def run(rounds: int, batch: int, max_wait: float, seed: int, kind: str = "single-vector") -> dict:
    from uniembed.store import Collection

    rng = random.Random(seed)
    folder = Path(tempfile.mkdtemp(prefix="uniembed-durability-"))
    path = folder / "col"
    Collection.create(path, model=None, dim=DIM, **KINDS[kind])
    acknowledged: list[int] = []
    next_id, opened_ok, lost_total = 0, 0, 0
    for _ in range(rounds):
        proc = subprocess.Popen(
            [sys.executable, "-m", __spec__.name, "--writer", str(path), str(next_id), str(batch)],
            stdout=subprocess.PIPE,
            text=True,
        )
        time.sleep(rng.uniform(0.5, max_wait))  # the writer needs ~0.5 s to start
        os.kill(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        for line in out.splitlines():
            if line.startswith("ACK "):
                first, last = map(int, line.split()[1:])
                acknowledged.extend(range(first, last + 1))
                next_id = last + 1
        next_id += batch  # ids of a batch that may or may not have committed are never reused
        ok, lost = check(str(path), acknowledged)
        opened_ok += ok
        lost_total += lost
    return {
        "kills": rounds,
        "opened after kill": opened_ok,
        "acknowledged writes": len(acknowledged),
        "lost writes": lost_total,
        "batch": batch,
        "collection": kind,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--batch", type=int, default=20)
    parser.add_argument("--max-wait", type=float, default=2.5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--multivector", action="store_true", help="a multi-vector collection (token vectors + FDE)"
    )
    parser.add_argument(
        "--images",
        action="store_true",
        help="a collection keeping images (vector + PNG bytes per item)",
    )
    parser.add_argument(
        "--writer", nargs=3, metavar=("PATH", "START", "BATCH"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.writer:
        writer(args.writer[0], int(args.writer[1]), int(args.writer[2]))
        return 0
    kind = "multi-vector" if args.multivector else "image" if args.images else "single-vector"
    result = run(args.rounds, args.batch, args.max_wait, args.seed, kind)
    if args.json:
        print(json.dumps(result))
    else:
        print(
            "| "
            + " | ".join(result)
            + " |\n|"
            + "---|" * len(result)
            + "\n| "
            + " | ".join(map(str, result.values()))
            + " |"
        )
    return 0 if result["lost writes"] == 0 and result["opened after kill"] == result["kills"] else 1


if __name__ == "__main__":
    sys.exit(main())
