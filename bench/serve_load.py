"""Load test of `uniembed serve` on loopback: micro-batching on vs off, same run, same texts.

For each setting, a fresh server process serves the default model; 1, 8, 32 and 64 concurrent
clients each send one short text per request (STSb test sentences), back to back, for a fixed
time. Reported: requests/s, texts/s, p50/p99 latency, errors, the server's resident memory.
The client is a minimal keep-alive HTTP/1.1 client on asyncio, so that it takes as little of the
2 CPUs as possible away from the server.

    python -m bench.serve_load                       # ~4 minutes, prints markdown tables
    python -m bench.serve_load --soak 600            # also: 10 minutes at 32 clients, memory every 30 s

The ceiling batching can reach is measured in the same run, in a process of its own with no HTTP:
the same model encoding 32 of the same texts per call against one text per call (alternating
1-second stretches, before the served rows and again after them). The service's goal (issue 14):
texts/s at 32 clients >= 90% of that in-process 32-per-call throughput.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

CLIENTS = (1, 8, 32, 64)


def sentences() -> list[str]:
    from bench.splits import stsb_sentences

    return stsb_sentences("sts-test.csv")


class Server:
    def __init__(self, *extra: str):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.log = tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uniembed.cli.main",
                "serve",
                "--port",
                str(self.port),
                "--log-level",
                "warning",
                *extra,
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{self.port}/ready", timeout=1
                ) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("the server did not become ready")

    def rss_mb(self) -> tuple[float, float]:
        """(current, peak) resident memory of the server process."""
        fields = dict(
            line.split(":", 1)
            for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines()
        )
        return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024

    def batches(self) -> tuple[float, float]:
        """(inputs embedded, batches run) so far, from the server's /metrics."""
        import re

        with urllib.request.urlopen(
            f"http://127.0.0.1:{self.port}/metrics", timeout=10
        ) as response:
            body = response.read().decode()
        value = lambda name: float(re.search(rf"^{name} (\S+)", body, re.M).group(1))  # noqa: E731
        return value("uniembed_batch_inputs_sum"), value("uniembed_batch_inputs_count")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(60)


async def client(
    port: int, texts: list[str], offset: int, stop_at: float, latencies: list, statuses: list
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    i = offset
    while time.monotonic() < stop_at:
        body = json.dumps({"model": "default", "input": texts[i % len(texts)]}).encode()
        i += 97
        request = (
            f"POST /v1/embeddings HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        started = time.perf_counter()
        writer.write(request)
        await writer.drain()
        status_line = await reader.readline()
        length = 0
        while (line := await reader.readline()) not in (b"\r\n", b""):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        await reader.readexactly(length)
        latencies.append(time.perf_counter() - started)
        statuses.append(int(status_line.split()[1]))
    writer.close()


async def load(port: int, texts: list[str], clients: int, seconds: float) -> dict:
    latencies, statuses = [], []
    stop_at = time.monotonic() + seconds
    started = time.perf_counter()
    await asyncio.gather(
        *(client(port, texts, k * 131, stop_at, latencies, statuses) for k in range(clients))
    )
    elapsed = time.perf_counter() - started
    ok = sum(s == 200 for s in statuses)
    ordered = sorted(latencies)
    return {
        "requests/s": round(len(statuses) / elapsed, 1),
        "texts/s": round(ok / elapsed, 1),
        "p50 ms": round(1000 * statistics.median(ordered), 1),
        "p99 ms": round(1000 * ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))], 1),
        "errors": len(statuses) - ok,
    }


def ceiling_worker(seconds: float, server_args: list[str]) -> None:
    """In-process texts/s at 32 texts per call and at 1 per call, alternating 1-second stretches."""
    import uniembed

    precision = (
        server_args[server_args.index("--precision") + 1] if "--precision" in server_args else None
    )
    backend = (
        server_args[server_args.index("--backend") + 1] if "--backend" in server_args else None
    )
    model = uniembed.load(
        device="cpu",
        **({"precision": precision} if precision else {}),
        **({"backend": backend} if backend else {}),
    )
    texts = sentences()
    counts, spent, i = {1: 0, 32: 0}, {1: 0.0, 32: 0.0}, 0
    model.encode(texts[:32], show_progress=False)  # warm-up
    stop_at = time.monotonic() + seconds
    while time.monotonic() < stop_at:
        for per_call in (32, 1):
            started = time.perf_counter()
            while time.perf_counter() - started < 1.0:
                model.encode(
                    [texts[(i + j) % len(texts)] for j in range(per_call)],
                    batch_size=32,
                    show_progress=False,
                )
                i += per_call * 97
                counts[per_call] += per_call
            spent[per_call] += time.perf_counter() - started
    print(json.dumps({"batched": counts[32] / spent[32], "single": counts[1] / spent[1]}))


def ceiling(seconds: float, server_args: list[str]) -> dict:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            __spec__.name,
            "--ceiling-worker",
            str(seconds),
            "--server-args",
            " ".join(server_args),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run(
    seconds: float, soak: float, server_args: list[str], clients: tuple[int, ...] = CLIENTS
) -> dict[str, list[dict]]:
    texts = sentences()
    rows, by_setting = [], {}
    ceilings = [ceiling(seconds, server_args)]
    for batching, flags in (("on", ()), ("off", ("--no-batching",))):
        server = Server(*flags, *server_args)
        try:
            asyncio.run(load(server.port, texts, 4, 3))  # warm-up
            for n in clients:
                before = server.batches()
                result = asyncio.run(load(server.port, texts, n, seconds))
                after = server.batches()
                rss, peak = server.rss_mb()
                by_setting[(batching, n)] = result["texts/s"]
                per_batch = (after[0] - before[0]) / max(after[1] - before[1], 1)
                rows.append(
                    {
                        "batching": batching,
                        "clients": n,
                        **result,
                        "texts per batch": round(per_batch, 1),
                        "server RSS MB": round(rss),
                        "peak MB": round(peak),
                    }
                )
        finally:
            server.stop()
    ceilings.append(ceiling(seconds, server_args))
    for row in rows:
        off = by_setting[("off", row["clients"])]
        row["x batching off"] = (
            round(row["texts/s"] / off, 2) if row["batching"] == "on" and off else "-"
        )
    batched = statistics.mean(c["batched"] for c in ceilings)
    single = statistics.mean(c["single"] for c in ceilings)
    served = by_setting[("on", 32)] if ("on", 32) in by_setting else None
    goal = [
        {
            "measure": "in-process, 32 texts per call (no HTTP), texts/s",
            "value": " / ".join(f"{c['batched']:.1f}" for c in ceilings)
            + " (before / after the served rows)",
        },
        {
            "measure": "in-process, 1 text per call, texts/s",
            "value": " / ".join(f"{c['single']:.1f}" for c in ceilings),
        },
        {
            "measure": "in-process ceiling of batching (32 per call / 1 per call)",
            "value": f"{batched / single:.2f}x",
        },
    ]
    if served:
        off = by_setting.get(("off", 32))
        goal += [
            {"measure": "served, 32 clients, batching on, texts/s", "value": served},
            {
                "measure": "served / in-process 32 per call (goal >= 90%)",
                "value": f"{100 * served / batched:.0f}%",
                "ok": served >= 0.9 * batched,
            },
        ]
        if off:
            gain = served / off
            goal.append(
                {
                    "measure": "served batching gain (on / off, 32 clients) / in-process gain (32 / 1 per call): "
                    "the issue's own example measure",
                    "value": f"{gain:.2f}x / {batched / single:.2f}x = "
                    f"{100 * gain / (batched / single):.0f}%",
                    "ok": gain >= 0.9 * batched / single,
                }
            )
    tables = {
        f"Load test, default model, one short text per request ({seconds:.0f} s per row)": rows,
        "Batching against its in-process ceiling": goal,
    }
    if soak:
        tables[f"Soak: 32 clients for {soak:.0f} s, batching on"] = soak_test(
            texts, soak, server_args
        )
    return tables


def soak_test(
    texts: list[str], seconds: float, server_args: list[str], every: float = 30.0
) -> list[dict]:
    server = Server(*server_args)
    rows = []
    try:
        asyncio.run(load(server.port, texts, 4, 3))
        started = time.monotonic()
        while time.monotonic() - started < seconds:
            result = asyncio.run(
                load(server.port, texts, 32, min(every, seconds - (time.monotonic() - started)))
            )
            rss, peak = server.rss_mb()
            rows.append(
                {
                    "t (s)": round(time.monotonic() - started),
                    "texts/s": result["texts/s"],
                    "p99 ms": result["p99 ms"],
                    "errors": result["errors"],
                    "server RSS MB": round(rss, 1),
                }
            )
    finally:
        server.stop()
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="load per row (default: 20)")
    parser.add_argument(
        "--soak", type=float, default=0.0, help="also soak for this many seconds (default: off)"
    )
    parser.add_argument(
        "--clients",
        type=int,
        nargs="+",
        default=list(CLIENTS),
        help="concurrency levels (default: 1 8 32 64)",
    )
    parser.add_argument(
        "--server-args", default="", help="extra `uniembed serve` options, e.g. '--backend onnx'"
    )
    parser.add_argument("--ceiling-worker", type=float, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.ceiling_worker is not None:
        ceiling_worker(args.ceiling_worker, args.server_args.split())
        return 0
    from bench.run import (
        print_tables,
    )

    print_tables(run(args.seconds, args.soak, args.server_args.split(), tuple(args.clients)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
