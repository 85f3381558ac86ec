"""Encoding against sentence-transformers' own fast backends, in the same run, as a new user runs them.

sentence-transformers has more than its torch default: `backend="onnx"` (plain, O3/O4 optimised,
dynamic int8 for this CPU's instruction set) and `backend="openvino"` (plus a static int8 export,
calibrated here on shipped Banking77 train texts read from a local folder). Each runs in the peer
environment (bench/peer_env.py) exactly as its documentation shows; uniembed's configurations run
in this one. Every configuration runs in a fresh process per round (load, export once and cached,
warm-up, one timed pass), rounds interleaved (A B C ... A B C ...), on (a) the 2,552 distinct STS
Benchmark test sentences and (b) 500 SciFact documents.

Reported per configuration: texts/s (median over rounds, min-max), the ratio to
sentence-transformers' default (torch fp32, batch 32) and to its fastest configuration whose worst
cosine is at least 0.999 (both per round, then the median), and the mean and worst cosine to the
default's vectors. `uniembed auto` is `load(backend="auto", precision="auto")`, calibrated once
before the rounds (its cache is then read, as users' later loads read it).

    python -m bench.encode_peers                      # about 30 minutes on 2 cores
    python -m bench.encode_peers --workload "STSb sentences" --rounds 2
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.encode import CACHE, WORKLOADS, ensure_static, peak_rss_mb, spread, static_dir
from bench.peer_env import peer_python, peer_versions

FLOOR = 0.999
PEERS = {  # label: (peer_st configuration, batch size)
    "sentence-transformers torch fp32 (default)": ("torch", 32),
    "sentence-transformers onnx": ("onnx", 32),
    "sentence-transformers onnx O3": ("onnx-O3", 32),
    "sentence-transformers onnx O4": ("onnx-O4", 32),
    "sentence-transformers onnx qint8": ("onnx-qint8", 32),
    "sentence-transformers openvino": ("openvino", 32),
    "sentence-transformers openvino, batch 256": ("openvino", 256),
    "sentence-transformers openvino static int8": ("openvino-static-int8", 32),
}
OURS = {
    "uniembed torch fp32": {"backend": "torch", "precision": "fp32"},
    "uniembed openvino fp32": {"backend": "openvino", "precision": "fp32"},
    "uniembed openvino bf16": {"backend": "openvino", "precision": "bf16"},
    "uniembed openvino int8": {"backend": "openvino", "precision": "int8"},
    "uniembed onnx int8": {"backend": "onnx", "precision": "int8"},
    "uniembed auto": {"backend": "auto", "precision": "auto"},
    "uniembed static (384 dims)": {"static": 384},  # a space of its own: no cosine to compare
}
DEFAULT = "sentence-transformers torch fp32 (default)"
ROUNDS = {"STSb sentences": 3, "SciFact documents": 2}
PEER_MODEL = (
    CACHE / "peer-model"
)  # a writable copy of the default model: the peer's exports land here
PEER_CALIBRATION = CACHE / "peer-calibration"


def prepare_peer() -> Path:
    """The peer's interpreter, its model copy and its calibration folder (once)."""
    from uniembed.encoders.registry import CATALOGUE, DEFAULT_MODEL, package_dir

    python = peer_python()
    if not (PEER_MODEL / "config.json").is_file():
        shutil.copytree(package_dir(CATALOGUE[DEFAULT_MODEL]), PEER_MODEL, dirs_exist_ok=True)
    if not (PEER_CALIBRATION / "train.csv").is_file():
        from uniembed.datasets import banking77_dir

        PEER_CALIBRATION.mkdir(parents=True, exist_ok=True)
        with gzip.open(banking77_dir() / "train.csv.gz", "rt", encoding="utf-8") as f:
            rows = list(csv.DictReader(io.StringIO(f.read())))
        with open(PEER_CALIBRATION / "train.csv", "w", newline="", encoding="utf-8") as out:
            writer = csv.writer(out)
            writer.writerow(["text"])
            writer.writerows([row["text"]] for row in rows)
    return python


def ours_worker(label: str, texts_path: str, out: str) -> None:
    """One timed pass of a uniembed configuration, in this process."""
    import warnings

    import uniembed

    warnings.simplefilter("ignore")
    texts = json.loads(Path(texts_path).read_text())
    options = OURS[label]
    if "static" in options:
        model = uniembed.load(static_dir(options["static"]))
    else:
        model = uniembed.load(device="cpu", **options)
    model.encode(texts[:256], show_progress=False)
    start = time.perf_counter()
    vectors = model.encode(texts, batch_size=32, show_progress=False)
    seconds = time.perf_counter() - start
    if out != "-":
        np.save(out, vectors)
    choice = getattr(model, "auto_choice", None)
    print(
        json.dumps(
            {
                "seconds": seconds,
                "peak_mb": peak_rss_mb(),
                "chose": f"{choice.backend} {choice.precision}" if choice else None,
            }
        )
    )


def _one_pass(label: str, texts_path: str, out: str, python: Path) -> dict:
    if label in PEERS:
        config, batch = PEERS[label]
        command = [str(python), "-m", "bench.peer_st", config, str(batch), texts_path, out]
        command += [str(PEER_MODEL), str(PEER_CALIBRATION / "train.csv")]
    else:
        command = [sys.executable, "-m", __spec__.name, "--worker", label, texts_path, out]
    proc = subprocess.run(command, capture_output=True, text=True)
    if proc.returncode != 0:
        lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
        return {"skipped": (lines or [f"exit {proc.returncode}"])[-1][:160]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run(rounds: int | None = None, workloads: tuple[str, ...] = tuple(WORKLOADS)) -> dict:
    import uniembed

    python = prepare_peer()
    ensure_static()  # distilled once into bench/.cache (bench/encode.py's rule)
    # auto's calibration, once, before any timed round (later loads read its cache)
    choice = uniembed.load(device="cpu", backend="auto", precision="auto").auto_choice
    labels = [*PEERS, *OURS]
    tables = {}
    with tempfile.TemporaryDirectory() as tmp:
        for workload in workloads:
            texts = WORKLOADS[workload]()
            texts_path = f"{tmp}/texts.json"
            Path(texts_path).write_text(json.dumps(texts))
            seconds = {label: [] for label in labels}
            first, skipped, chose = {}, {}, {}
            for round_ in range(rounds or ROUNDS[workload]):
                for label in labels:
                    if label in skipped:
                        continue
                    out = f"{tmp}/{labels.index(label)}.npy" if round_ == 0 else "-"
                    result = _one_pass(label, texts_path, out, python)
                    if "skipped" in result:
                        skipped[label] = result["skipped"]
                        continue
                    seconds[label].append(result["seconds"])
                    chose[label] = result.get("chose")
                    if round_ == 0:
                        first[label] = (np.load(out), result["peak_mb"])
                print(f"{workload}: round {round_ + 1} done", file=sys.stderr, flush=True)
            tables.update(_tables(workload, texts, seconds, first, skipped, chose))
    tables["auto's choice on this machine (its calibration)"] = [
        {
            "configuration": m.label,
            "texts/s": "-" if m.skipped else m.texts_per_s,
            "worst cos": "-" if m.skipped else m.worst_cosine,
            "chosen": m.label == f"{choice.backend} {choice.precision}",
            "skipped": m.skipped or "",
        }
        for m in choice.measurements
    ]
    tables["Peer environment"] = [
        {"library": k, "version": v} for k, v in peer_versions(python).items()
    ]
    return tables


def _tables(workload, texts, seconds, first, skipped, chose) -> dict:
    reference = first[DEFAULT][0]
    cosines = {
        label: (v * reference).sum(axis=1)
        for label, (v, _) in first.items()
        if not label.startswith("uniembed static")  # a static model's space is its own
    }
    worst = {label: float(c.min()) for label, c in cosines.items()}
    worst.update({label: 0.0 for label in first if label not in cosines})
    measured = [label for label in seconds if seconds[label]]
    n_rounds = min(len(seconds[label]) for label in measured)
    speed = {label: statistics.median(len(texts) / t for t in seconds[label]) for label in measured}
    peers_at_floor = [label for label in measured if label in PEERS and worst[label] >= FLOOR]
    fastest_peer = max(peers_at_floor, key=speed.get)
    ours_at_floor = [label for label in measured if label in OURS and worst[label] >= FLOOR]
    fastest_ours = max(
        (label for label in ours_at_floor if label != "uniembed auto"), key=speed.get
    )
    rows = []
    for label in [*PEERS, *OURS]:
        if label in skipped:
            rows.append({"configuration": label, "skipped": skipped[label]})
            continue
        ratio = lambda base, label=label: [b / t for b, t in zip(seconds[base], seconds[label])]  # noqa: E731
        rows.append(
            {
                "configuration": label + (f" (chose {chose[label]})" if chose.get(label) else ""),
                "texts/s": spread([len(texts) / t for t in seconds[label]], 1),
                "x ST default": spread(ratio(DEFAULT), 2),
                "x ST fastest": spread(ratio(fastest_peer), 2),
                "mean cos": round(float(cosines[label].mean()), 5) if label in cosines else "-",
                "worst cos": round(worst[label], 5) if label in cosines else "-",
                "peak RSS MB": round(first[label][1]),
            }
        )
    what = "short texts" if workload == "STSb sentences" else "documents"
    goal = 2.0 if workload == "STSb sentences" else 1.5
    best_ratio = statistics.median(
        b / t for b, t in zip(seconds[fastest_peer], seconds[fastest_ours])
    )
    auto = speed.get("uniembed auto")
    static = "uniembed static (384 dims)"
    static_ratio = (
        statistics.median(b / t for b, t in zip(seconds[DEFAULT], seconds[static]))
        if seconds.get(static)
        else None
    )
    goals = [
        {
            "goal": f"{what}: uniembed's fastest at worst cos >= {FLOOR} vs ST's fastest there",
            "measured": f"{fastest_ours} / {fastest_peer}: {best_ratio:.2f}x",
            "target": f">= {goal}x",
            "met": best_ratio >= goal,
        },
        {
            "goal": f"{what}: auto within 10% of uniembed's fastest at the floor",
            "measured": "-"
            if auto is None
            else f"auto {auto:,.0f}/s vs {fastest_ours} {speed[fastest_ours]:,.0f}/s: "
            f"{100 * auto / speed[fastest_ours]:.0f}%",
            "target": ">= 90%",
            "met": auto is not None and auto >= 0.9 * speed[fastest_ours],
        },
        {
            "goal": f"{what}: the static model vs ST's default",
            "measured": "-" if static_ratio is None else f"{static_ratio:.0f}x",
            "target": ">= 100x",
            "met": static_ratio is not None and static_ratio >= 100,
        },
    ]
    title = (
        f"Encoding against sentence-transformers' own backends: {workload} "
        f"({len(texts):,} texts, {n_rounds} interleaved rounds)"
    )
    return {title: rows, f"Goals on {what} (issue 32)": goals}


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        ours_worker(*sys.argv[2:5])
        return 0
    import argparse

    from bench.run import print_tables

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--workload", choices=list(WORKLOADS), action="append", default=None)
    args = parser.parse_args()
    print_tables(run(args.rounds, tuple(args.workload or WORKLOADS)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
