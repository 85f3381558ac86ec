"""Where encoding time goes, per backend: tokenising, padding, the model run, pooling; inside the
model run, time by operator kind (matrix products, attention, the rest); and thread settings.

Each backend runs in a fresh process on the 2,552 STSb test sentences, batched as `encode`
batches them (all tokenised at once, then batches of up to 32 by token length), after a warm-up;
each stage is timed around the same
calls `encode` makes. Rounds are interleaved (every backend once per round, ROUNDS rounds) and
each stage's median over rounds is reported, with the whole pass's spread. Speed comparisons
between backends belong to the encode bench (more rounds, against sentence-transformers); this
one says where each backend's time goes. The operator split comes from the runtimes' own profilers (ONNX Runtime's
session profiling, OpenVINO's performance counters) on one pass, and is shown as shares of the
model run (profiling adds its own overhead, so shares, not times). Torch's operator split is not
measured (its profiler would have to wrap the Python modules).

    python -m bench.encode_stages        # ~5 minutes; bench/run.py --only encode-stages
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

BACKENDS = {
    "torch fp32": {"backend": "torch", "precision": "fp32"},
    "onnx int8": {"backend": "onnx", "precision": "int8"},
    "openvino int8": {"backend": "openvino", "precision": "int8"},
    "openvino int8, 1 thread": {"backend": "openvino", "precision": "int8", "threads": 1},
    "onnx int8, 1 thread": {"backend": "onnx", "precision": "int8", "threads": 1},
}
BATCH = 32
ROUNDS = 3

# operator kinds: what a transformer layer spends its time on
GEMM = (
    "matmul",
    "gemm",
    "fullyconnected",
    "qlinearmatmul",
    "matmulinteger",
    "dynamicquantizematmul",
    "convolution",
)
ATTENTION = ("softmax", "attention", "scaleddotproduct")


def kind_of(op: str) -> str:
    name = op.lower()
    if any(key in name for key in ATTENTION):
        return "attention (softmax, fused attention)"
    if any(key in name for key in GEMM):
        return "matrix products"
    if "quantize" in name or "fakequant" in name or "convert" in name or "reorder" in name:
        return "quantise / convert / reorder"
    return "other (norms, adds, GELU, reshapes)"


def sentences() -> list[str]:
    from bench.splits import stsb_sentences

    return stsb_sentences("sts-test.csv")


def timed_pass(model, texts: list[str]) -> dict[str, float]:
    """Seconds in each stage of one pass made of the calls `encode(texts, batch_size=32)` makes:
    every text tokenised at once, batches formed over the whole set by token length
    (`token_batches`), each padded, run and pooled."""
    from uniembed.compress.truncate import l2_normalize
    from uniembed.encoders.batching import padded_length, token_batches
    from uniembed.encoders.pooling_numpy import pool_numpy

    spent = defaultdict(float)
    t0 = time.perf_counter()
    windows = model.windows.windows(texts, chunk=False)
    spent["tokenise"] = time.perf_counter() - t0
    for rows in token_batches(
        windows.lengths, model.token_budget, BATCH, max_length=model.windows.max_tokens
    ):
        t1 = time.perf_counter()
        ids = [windows.ids[i] for i in rows]
        length = padded_length(max(len(w) for w in ids), model.windows.max_tokens)
        padded = model.windows.pad(ids, [windows.type_ids[i] for i in rows], length=length)
        t2 = time.perf_counter()
        if hasattr(model, "session") or hasattr(model, "compiled"):
            hidden = model.hidden_windows(padded)
            t3 = time.perf_counter()
            pooled = pool_numpy(hidden, padded["attention_mask"], model.pooling, model.padding_side)
        else:  # torch: the forward and its pooling are one call
            pooled = model.embed_windows(padded)
            t3 = time.perf_counter()
        l2_normalize(np.asarray(pooled, dtype=np.float32))
        t4 = time.perf_counter()
        spent["pad"] += t2 - t1
        spent["model run"] += t3 - t2
        spent["pool + normalise"] += t4 - t3
    return dict(spent)


def operator_shares(label: str, options: dict, texts: list[str]) -> dict[str, float]:
    """Shares of the model run by operator kind, from the runtime's profiler (one pass)."""
    import uniembed

    model = uniembed.load(**options)
    totals = defaultdict(float)
    if options["backend"] == "onnx":
        import onnxruntime as ort

        profiled = ort.SessionOptions()
        profiled.enable_profiling = True
        if options.get("threads"):
            profiled.intra_op_num_threads = options["threads"]
        model.session = ort.InferenceSession(
            str(model.model_path), profiled, providers=["CPUExecutionProvider"]
        )
        timed_pass(model, texts)
        trace_file = Path(model.session.end_profiling())
        trace = json.loads(trace_file.read_text())
        trace_file.unlink(missing_ok=True)
        for event in trace:
            if event.get("cat") == "Node" and event.get("name", "").endswith("_kernel_time"):
                totals[kind_of(event.get("args", {}).get("op_name", ""))] += event.get("dur", 0)
    elif options["backend"] == "openvino":
        import openvino as ov

        compiled = ov.Core().compile_model(
            str(model.model_path), "CPU", {**model.compile_config, "PERF_COUNT": "YES"}
        )
        request = compiled.create_infer_request()

        def profiled_hidden(padded):
            request.infer({name: padded[name] for name in model.input_names})
            for info in request.profiling_info:
                totals[kind_of(info.node_type)] += info.real_time.total_seconds() * 1e6
            return np.array(request.get_output_tensor(0).data, dtype=np.float32)

        model.hidden_windows = profiled_hidden
        timed_pass(model, texts)
    else:
        return {}
    whole = sum(totals.values()) or 1.0
    return {kind: value / whole for kind, value in totals.items()}


def worker(label: str, what: str) -> None:
    """One backend in this process: `what` is "stages" (one timed pass) or "operators" (the profile)."""
    import uniembed

    texts = sentences()
    options = dict(BACKENDS[label])
    model = uniembed.load(**options)
    model.encode(texts[:256], show_progress=False)  # warm-up
    result = (
        timed_pass(model, texts) if what == "stages" else operator_shares(label, options, texts)
    )
    print(json.dumps(result))


def in_process(label: str, what: str) -> dict:
    proc = subprocess.run(
        [sys.executable, "-m", __spec__.name, "--worker", label, what],
        capture_output=True,
        text=True,
    )
    if proc.returncode:
        raise RuntimeError(f"{label}: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run() -> dict[str, list[dict]]:
    import statistics

    n = len(sentences())
    passes = {label: [] for label in BACKENDS}
    for _ in range(ROUNDS):
        for label in BACKENDS:  # interleaved: every backend once per round
            passes[label].append(in_process(label, "stages"))
    stage_rows, operator_rows = [], []
    for label, runs in passes.items():
        stages = {stage: statistics.median(run[stage] for run in runs) for stage in runs[0]}
        totals = [sum(run.values()) for run in runs]
        stage_rows.append(
            {
                "backend": label,
                "texts/s (median, min-max)": f"{n / statistics.median(totals):.0f} "
                f"({n / max(totals):.0f}-{n / min(totals):.0f})",
                **{
                    f"{stage}, ms per 1,000 texts": round(1000 * seconds / (n / 1000), 1)
                    for stage, seconds in stages.items()
                },
                "model run share": f"{100 * stages['model run'] / sum(stages.values()):.0f}%",
            }
        )
        if not label.startswith("torch"):
            shares = in_process(label, "operators")
            operator_rows.append(
                {
                    "backend": label,
                    **{kind: f"{100 * share:.0f}%" for kind, share in shares.items()},
                }
            )
    columns = sorted({key for row in operator_rows for key in row if key != "backend"})
    operator_rows = [
        {"backend": row["backend"], **{c: row.get(c, "0%") for c in columns}}
        for row in operator_rows
    ]
    return {
        f"Where the time goes: {n} STSb sentences, batches of up to {BATCH} ({ROUNDS} interleaved rounds)": stage_rows,
        "Inside the model run: time by operator kind (runtime profilers)": operator_rows,
    }


def main() -> int:
    if len(sys.argv) == 4 and sys.argv[1] == "--worker":
        worker(sys.argv[2], sys.argv[3])
        return 0
    from bench.run import (
        print_tables,
    )

    print_tables(run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
