"""Peak memory of requests full of large images (issue 30): flat whatever their number.

A 6300 x 6300 single-colour greyscale PNG is a 52 KB file under the service's 40-megapixel limit, and
decodes to 119 MB of RGB. Before issue 30, every image of a request was decoded and held at once
(8 of them: 3.6 GB). Now each is decoded, reduced to what the model sees, and dropped before the
next, in every path: `POST /v1/embeddings`, `POST /v1/collections/{name}/items` on an image
collection, and `encode_images` in Python.

Each cell is a fresh process (a server started for that one request, or a Python process), so
its peak RSS (VmHWM) belongs to that request alone; "before" is the peak after start-up and one
small warm-up image. Model: a CLIP with a narrow ViT of 224 px input (what memory could grow with
is the decoded pixels, not the model). One round per cell: peak memory does not depend on the
machine's load the way time does.

    python -m bench.image_requests     # ~5 minutes on 2 cores; bench/run.py --only image-requests
"""

from __future__ import annotations

import base64
import io
import json
import resource
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

SIDE = 6300
COUNTS = (1, 8, 64)


def png(side: int, mode: str, colour) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new(mode, (side, side), colour).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def big_png() -> bytes:
    return png(SIDE, "L", 200)  # single-colour grey: 52 KB, as in issue 30


def small_png() -> bytes:
    return png(64, "RGB", (10, 200, 60))  # the warm-up image


def post(port: int, path: str, body: dict) -> tuple[int, float]:
    data = json.dumps(body).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", data=data, headers={"Content-Type": "application/json"}
    )
    start = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=600) as response:
            response.read()
            status = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    return status, time.perf_counter() - start


def http_cell(model: Path, route: str, n: int, png: bytes, folder: Path) -> dict:
    from bench.serve_load import Server

    uri = "data:image/png;base64," + base64.b64encode(png).decode()
    warm = "data:image/png;base64," + base64.b64encode(small_png()).decode()
    server = Server(
        "--model", str(model), "--collections", str(folder / f"collections-{route}-{n}")
    )
    try:
        if route == "embeddings":
            with urllib.request.urlopen(
                f"http://127.0.0.1:{server.port}/v1/models", timeout=10
            ) as response:
                name = json.loads(response.read())["data"][0]["id"]
            post(server.port, "/v1/embeddings", {"model": name, "input": [{"image": warm}]})
            before = server.rss_mb()[1]
            status, seconds = post(
                server.port, "/v1/embeddings", {"model": name, "input": [{"image": uri}] * n}
            )
        else:
            post(server.port, "/v1/collections", {"name": "pics", "images": "bytes"})
            post(
                server.port,
                "/v1/collections/pics/items",
                {"items": [{"id": "warm", "image": warm}]},
            )
            before = server.rss_mb()[1]
            items = [{"id": f"i{i}", "image": uri} for i in range(n)]
            status, seconds = post(server.port, "/v1/collections/pics/items", {"items": items})
        after = server.rss_mb()[1]
    finally:
        server.stop()
    if status != 200:
        raise RuntimeError(f"HTTP {route} with {n} images answered {status}")
    return {
        "path": f"HTTP {route}",
        "images": n,
        "request body (KB)": round(len(uri) * n / 1024),
        "status": status,
        "peak RSS before (MB)": round(before),
        "peak RSS after (MB)": round(after),
        "growth (MB)": round(after - before),
        "seconds": round(seconds, 1),
    }


def library_worker(model: str, n: int) -> None:
    import uniembed

    png, warm = big_png(), small_png()
    encoder = uniembed.load(model, device="cpu")
    encoder.encode_images([warm], show_progress=False)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    encoder.encode_images([png] * n, show_progress=False)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"before": before, "after": after, "seconds": seconds}))


def library_cell(model: Path, n: int) -> dict:
    proc = subprocess.run(
        [sys.executable, "-m", __spec__.name, "--library-worker", str(model), str(n)],
        capture_output=True,
        text=True,
        check=True,
    )
    peak = json.loads(proc.stdout.strip().splitlines()[-1])
    return {
        "path": "encode_images (Python)",
        "images": n,
        "request body (KB)": "-",
        "status": "-",
        "peak RSS before (MB)": round(peak["before"]),
        "peak RSS after (MB)": round(peak["after"]),
        "growth (MB)": round(peak["after"] - peak["before"]),
        "seconds": round(peak["seconds"], 1),
    }


def run() -> dict[str, list[dict]]:
    from bench.images import NARROW_VIT, clip_dir

    png = big_png()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        model = clip_dir(Path(tmp) / "narrow", NARROW_VIT)
        for n in COUNTS:
            rows.append(http_cell(model, "embeddings", n, png, Path(tmp)))
            rows.append(http_cell(model, "collection items", n, png, Path(tmp)))
            rows.append(library_cell(model, n))
    rows.sort(key=lambda row: (row["path"], row["images"]))
    title = (
        f"Peak memory of one request of {SIDE} x {SIDE} PNGs ({len(png) // 1024} KB each, "
        f"{SIDE * SIDE * 3 // 1_000_000} MB decoded)"
    )
    return {title: rows}


def main() -> int:
    if len(sys.argv) == 4 and sys.argv[1] == "--library-worker":
        library_worker(sys.argv[2], int(sys.argv[3]))
        return 0
    from bench.run import print_tables

    print_tables(run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
