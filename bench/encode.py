"""Encoding speed and fidelity of every backend against sentence-transformers, same texts, same run.

Rounds are interleaved: round r runs every backend once (A B C ... A B C ...), each in a fresh
process (so peak RSS is its own): load, warm-up, one timed pass over (a) the 2,552 distinct STS
Benchmark test sentences or (b) 500 SciFact documents. A noisy stretch of the shared machine then
lands on every backend alike. Speed ratios are per round (sentence-transformers' time in that
round / the backend's), reported as the median over rounds and its min-max. Fidelity (first
round) is the cosine to sentence-transformers' fp32 vectors (mean and worst) and STSb Spearman.

    python -m bench.encode                # prints a markdown table per workload
    python -m bench.encode --rerun        # short texts again, compared with bench/tables/encode.json
    python -m bench.encode --rerun --workload "SciFact documents"   # the documents again

Rounds: 7 on short texts, 3 on documents (ROUNDS; --rounds overrides; a document round takes
about 5 minutes here). With 5 rounds, two runs of
the short-text workload put int8's median 18% apart, so short texts get more; the rerun table
checks agreement within 15% against the committed run.
"""

from __future__ import annotations

import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
BACKENDS = {
    "sentence-transformers fp32": {},
    "uniembed torch fp32": {"backend": "torch", "precision": "fp32"},
    "uniembed torch bf16": {"backend": "torch", "precision": "bf16"},
    "uniembed onnx fp32": {"backend": "onnx", "precision": "fp32"},
    "uniembed onnx int8": {"backend": "onnx", "precision": "int8"},
    "uniembed openvino fp32": {"backend": "openvino", "precision": "fp32"},
    "uniembed openvino bf16": {"backend": "openvino", "precision": "bf16"},
    "uniembed openvino int8": {"backend": "openvino", "precision": "int8"},
    "uniembed static (256 dims, refined)": {"static": 256},
    "uniembed static (384 dims, refined)": {"static": 384},
}
CACHE = Path(__file__).resolve().parent / ".cache"
COMMITTED_TABLES = Path(__file__).resolve().parent / "tables" / "encode.json"


def static_dir(dim: int) -> Path:
    from uniembed.encoders.static import SIF_SMOOTHING

    # named by what made it: a changed corpus rule or smoothing distills a new one
    return CACHE / f"static-minilm-{dim}-train-only-sif{SIF_SMOOTHING:g}"


def stsb() -> tuple[list[str], list[tuple[int, int, float]]]:
    sentences: dict[str, int] = {}
    pairs = []
    for line in (DATA / "stsb" / "sts-test.csv").read_text(encoding="utf-8").splitlines():
        fields = line.split("\t")
        a, b = (sentences.setdefault(s, len(sentences)) for s in fields[5:7])
        pairs.append((a, b, float(fields[4])))
    return list(sentences), pairs


def scifact_docs(n: int = 500) -> list[str]:
    docs = [
        json.loads(line)
        for line in (DATA / "scifact" / "corpus.jsonl").read_text().splitlines()[:n]
    ]
    return [(d["title"] + " " + d["text"]).strip() for d in docs]


WORKLOADS = {"STSb sentences": lambda: stsb()[0], "SciFact documents": scifact_docs}
ROUNDS = {"STSb sentences": 7, "SciFact documents": 3}
WARM_UP_TEXTS = (
    256  # enough for thread pools and allocators; a whole warm-up pass doubled each run's cost
)


def worker(label: str, workload: str, out: str) -> None:
    """One timed pass of one backend (after a warm-up), in this process; `out` ("-": none) gets the vectors."""
    texts = WORKLOADS[workload]()
    options = BACKENDS[label]
    if label.startswith("sentence-transformers"):
        from sentence_transformers import SentenceTransformer

        from uniembed.encoders.registry import CATALOGUE, DEFAULT_MODEL, package_dir

        model = SentenceTransformer(str(package_dir(CATALOGUE[DEFAULT_MODEL])), device="cpu")
        encode = lambda batch=texts: model.encode(batch, batch_size=32, convert_to_numpy=True)  # noqa: E731
    else:
        import uniembed

        model = (
            uniembed.load(static_dir(options["static"]))
            if options.get("static")
            else uniembed.load(device="cpu", **options)
        )
        encode = lambda batch=texts: model.encode(batch, batch_size=32, show_progress=False)  # noqa: E731
    encode(texts[:WARM_UP_TEXTS])
    start = time.perf_counter()
    vectors = encode()
    seconds = time.perf_counter() - start
    if out != "-":
        np.save(out, np.asarray(vectors, dtype=np.float32))
    print(json.dumps({"seconds": seconds, "peak_mb": peak_rss_mb()}))


def peak_rss_mb() -> float:
    """This process's peak resident memory. VmHWM, not getrusage: ru_maxrss of a child started by
    fork + exec reports the parent's peak when that was higher."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def token_count(texts: list[str]) -> int:
    import uniembed

    windows = uniembed.load(device="cpu").windows.windows(texts, chunk=False)
    return int(windows.lengths.sum())


def refinement_corpus() -> list[str]:
    """Training splits only: STSb train, Banking77 train, and the SciFact claims of the train qrels
    less the validation claims (never a dev, validation or test text, nor the SciFact corpus): the
    dev and validation parts stay unseen so bench/select_static.py can choose on them."""
    from bench import splits

    held_out = set(splits.scifact_validation_claims())
    texts = splits.claim_texts(set(splits.scifact_train_claims()) - held_out)
    for line in (DATA / "stsb" / "sts-train.csv").read_text(encoding="utf-8").splitlines():
        texts += line.split("\t")[5:7]
    texts += splits.banking77_train()
    return list(dict.fromkeys(texts))


def ensure_static() -> None:
    import uniembed
    from uniembed.encoders.static import distill

    for dim in (256, 384):
        if not (static_dir(dim) / "uniembed_static.json").is_file():
            CACHE.mkdir(exist_ok=True)
            distill(
                uniembed.load(device="cpu"), static_dir(dim), dim=dim, corpus=refinement_corpus()
            )


def static_quality() -> list[dict]:
    """The static models against their teacher, both measured in this run: STSb test Spearman and
    SciFact test nDCG@10 (the teacher's SciFact vectors come from bench/.cache, see scifact_vectors)."""
    import uniembed
    from bench import splits
    from bench.scifact_vectors import scifact_vectors
    from uniembed.eval import evaluate

    teacher = uniembed.load(device="cpu")
    data, corpus, queries = scifact_vectors(teacher)
    teacher_scores = {
        "sts": round(
            100
            * evaluate(
                teacher, "sts", DATA / "stsb" / "sts-test.csv", show_progress=False
            ).main_score,
            2,
        ),
        "retrieval": splits.ndcg_at_10(corpus, queries, data),
    }
    rows = []
    for dim in (256, 384):
        static = uniembed.load(static_dir(dim))
        for task, path in (
            ("sts", DATA / "stsb" / "sts-test.csv"),
            ("retrieval", DATA / "scifact"),
        ):
            score = 100 * evaluate(static, task, path, show_progress=False).main_score
            rows.append(
                {
                    "static model": f"{dim} dims" + (" (the default)" if dim == 384 else ""),
                    "task": "STSb test" if task == "sts" else "SciFact test",
                    "teacher": teacher_scores[task],
                    "static": round(score, 2),
                    "% of teacher": round(100 * score / teacher_scores[task], 1),
                }
            )
    return rows


def run(
    rounds: int | None = None,
    workloads: tuple[str, ...] = tuple(WORKLOADS),
    *,
    with_static_quality: bool = True,
) -> dict[str, list[dict]]:
    from uniembed.eval.metrics import spearman

    ensure_static()
    _, pairs = stsb()
    tables = {}
    with tempfile.TemporaryDirectory() as tmp:
        for workload in workloads:
            texts = WORKLOADS[workload]()
            rounds_here = rounds or ROUNDS[workload]
            tokens = token_count(texts)
            seconds = {label: [] for label in BACKENDS}
            first = {}  # label -> (vectors, peak MB) of round 1
            for round_ in range(rounds_here):
                for label in BACKENDS:  # interleaved: every backend once per round
                    out = str(Path(tmp) / f"{len(first)}.npy") if round_ == 0 else "-"
                    proc = subprocess.run(
                        [sys.executable, "-m", __spec__.name, "--worker", label, workload, out],
                        capture_output=True,
                        text=True,
                        check=True,
                    )
                    result = json.loads(proc.stdout.strip().splitlines()[-1])
                    seconds[label].append(result["seconds"])
                    if round_ == 0:
                        first[label] = (np.load(out), result["peak_mb"])
                print(
                    f"{workload}: round {round_ + 1}/{rounds_here} done",
                    file=sys.stderr,
                    flush=True,
                )
            reference = first["sentence-transformers fp32"][0]
            base = seconds["sentence-transformers fp32"]
            rows = []
            for label, times in seconds.items():
                v, peak = first[label]
                same_space = "static" not in label  # a static model has a space of its own
                cosines = (v * reference).sum(1) if same_space else None
                ratios = [b / t for b, t in zip(base, times)]
                row = {
                    "backend": label,
                    "texts/s": spread([len(texts) / t for t in times], 1),
                    "tokens/s": round(tokens / statistics.median(times)),
                    "x sentence-transformers": spread(ratios, 2),
                    "peak RSS MB": round(peak),
                    "mean cos": "-" if cosines is None else round(float(cosines.mean()), 6),
                    "worst cos": "-" if cosines is None else round(float(cosines.min()), 6),
                }
                if workload == "STSb sentences":
                    row["STSb Spearman"] = round(
                        100
                        * spearman(
                            [float(v[a] @ v[b]) for a, b, _ in pairs], [g for *_, g in pairs]
                        ),
                        2,
                    )
                rows.append(row)
            tables[
                f"Encoding: {workload} ({len(texts)} texts, {tokens} tokens, {rounds_here} interleaved rounds)"
            ] = rows
    if with_static_quality:
        tables["Static model quality vs its teacher"] = static_quality()
    return tables


def rerun(
    workload: str = "STSb sentences",
    committed: Path = COMMITTED_TABLES,
) -> dict[str, list[dict]]:
    """One workload again; each backend's median ratio against the committed run's."""
    earlier = json.loads(committed.read_text())["tables"]
    title = next(t for t in earlier if t.startswith(f"Encoding: {workload}"))
    before = {
        row["backend"]: float(row["x sentence-transformers"].split()[0]) for row in earlier[title]
    }
    again = next(iter(run(workloads=(workload,), with_static_quality=False).values()))
    rows = []
    for row in again:
        now, then = float(row["x sentence-transformers"].split()[0]), before.get(row["backend"])
        if then is None or row["backend"].startswith("sentence-transformers"):
            continue
        apart = 100 * abs(now - then) / then
        rows.append(
            {
                "backend": row["backend"],
                "committed run": then,
                "rerun": row["x sentence-transformers"],
                "apart %": round(apart, 1),
                "within 15%": apart <= 15,
            }
        )
    what = "short texts" if workload == "STSb sentences" else "documents"
    return {f"Encoding: {what} rerun against the committed run (median ratios)": rows}


def spread(values: list[float], digits: int) -> str:
    """median (min-max)"""
    return f"{statistics.median(values):.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(*sys.argv[2:5])
        return 0
    import argparse

    from bench.run import print_tables

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--rounds", type=int, default=None, help="(default: 7 on short texts, 3 on documents)"
    )
    parser.add_argument(
        "--rerun",
        action="store_true",
        help="a workload again (default: short texts), against bench/tables/encode.json",
    )
    parser.add_argument(
        "--workload",
        choices=list(WORKLOADS),
        action="append",
        default=None,
        help="only this workload (repeatable; default: all)",
    )
    args = parser.parse_args()
    if args.rerun:
        print_tables(
            {
                k: v
                for workload in (args.workload or ["STSb sentences"])
                for k, v in rerun(workload).items()
            }
        )
    else:
        print_tables(run(args.rounds, tuple(args.workload or WORKLOADS)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
