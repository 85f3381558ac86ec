"""`backend="auto"` and `precision="auto"`: the fastest configuration for this CPU whose vectors stay
within a floor of the exact ones, measured once per model and machine and cached.

Which configuration is fastest depends on the CPU (measured in issue 32: OpenVINO bf16 on a Xeon
with AMX, where int8 bought nothing more; a different order on an AMD EPYC without AMX), so it is
measured where it runs, not decided once. Each "auto" frees one axis:

- backend="auto", precision="fp32" (the default precision): the fastest backend among those that
  make the exact vectors (torch, ONNX Runtime, OpenVINO in fp32: the same vectors to ~1e-6, the
  same fingerprint, so collections built with any of them accept the others);
- precision="auto" on a backend: that backend's fastest precision meeting the floor;
- backend="auto", precision="auto": every backend and precision meeting the floor.

The calibration: every candidate loaded in one process (exports and int8 quantisation are cached
as for any load), then PASSES timed passes over a fixed mix of short and document-length texts
(Banking77 train texts shipped with uniembed, none of those the int8 quantisers calibrate on), the
candidates interleaved pass by pass; speed is the median pass, fidelity the worst cosine of any
text to the exact (fp32) vectors. A candidate that cannot load here is skipped, with its reason.
The measurements are cached under the cache folder, keyed by the model's weights and by this
machine (CPU model and features, usable cores, threads, runtime versions): a record from another
machine or model version is ignored, with a log line, and measured again; the floor is applied
when choosing, so another floor needs no new measurement.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from uniembed.errors import InputError

log = logging.getLogger(__name__)

DEFAULT_MIN_COSINE = 0.999
# every configuration auto may choose, exact ones first (a tie goes to the exact one)
CANDIDATES: tuple[tuple[str, str], ...] = (
    ("torch", "fp32"),
    ("onnx", "fp32"),
    ("openvino", "fp32"),
    ("torch", "bf16"),
    ("openvino", "bf16"),
    ("onnx", "int8"),
    ("openvino", "int8"),
)
EXACT_PRECISION = "fp32"
# what fidelity is measured against: always calibrated, whatever the request allows
EXACT = ("torch", EXACT_PRECISION)
SHORT_TEXTS, LONG_TEXTS, JOINED_FROM, PASSES = 192, 24, 24, 3
# names the calibration: a cached record measured by another recipe is measured again
RECIPE = "banking77-train-192short-24long-seed7-3rounds-v6"  # v6: openvino batches split per stream
FEATURES = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8")


@dataclass
class Measurement:
    backend: str
    precision: str
    texts_per_s: float | None = None  # median pass
    worst_cosine: float | None = None  # to the exact vectors, over the calibration texts
    skipped: str | None = None  # why it could not be measured here

    @property
    def label(self) -> str:
        return f"{self.backend} {self.precision}"


@dataclass
class AutoChoice:
    """What auto chose, from which measurements, and why."""

    backend: str
    precision: str
    min_cosine: float
    measurements: list[Measurement]
    machine: dict
    measured_on: str  # the date of the calibration
    from_cache: bool = False
    considered: list[str] = field(default_factory=list)  # the candidates the request allowed

    @property
    def reason(self) -> str:
        chosen = self._measurement(self.backend, self.precision)
        others = ", ".join(
            f"{m.label} {m.texts_per_s:,.0f}/s (worst cos {m.worst_cosine:.4f})"
            if m.skipped is None
            else f"{m.label} skipped: {m.skipped}"
            for m in self.measurements
            if m.label in self.considered and m.label != chosen.label
        )
        return (
            f"auto chose {chosen.label}: {chosen.texts_per_s:,.0f} texts/s, worst cosine "
            f"{chosen.worst_cosine:.5f} to the exact vectors (floor {self.min_cosine}), the fastest "
            f"of {len(self.considered)} candidates on {self.machine['cpu']} "
            f"({'cached calibration of ' if self.from_cache else 'calibrated '}{self.measured_on})"
            + (f"; others: {others}" if others else "")
        )

    def _measurement(self, backend: str, precision: str) -> Measurement:
        return next(
            m for m in self.measurements if (m.backend, m.precision) == (backend, precision)
        )


def load_auto(name: str, directory: Path, kind, options, min_cosine, precisions: dict):
    """What load() does for backend/precision "auto": calibrate (or read the cached calibration),
    then load the choice; `precisions`: each backend's precisions (load.PRECISIONS)."""
    from dataclasses import replace

    from uniembed.encoders.model_dir import read_model_dir
    from uniembed.encoders.registry import weights_digest

    floor = check_min_cosine(DEFAULT_MIN_COSINE if min_cosine is None else min_cosine)
    if kind.name != "transformer":
        raise InputError(
            f"backend/precision 'auto' choose among the text transformer backends; "
            f"{directory} is a {kind.label or kind.name} model"
        )
    if options.device not in (None, "cpu"):
        raise InputError(
            f"backend/precision 'auto' choose for the CPU; got device={options.device!r} "
            "(on a GPU, pass backend='torch' and a precision)"
        )
    if options.layers is not None or options.dim is not None:
        raise InputError(
            "layers= and dim= run on the torch backend only; do not combine with 'auto'"
        )
    options = replace(options, device="cpu")

    wanted = candidates_for(options.backend, options.precision, precisions)
    choice = choose(
        directory,
        weights_digest(read_model_dir(directory).weights_dir),
        wanted,
        floor,
        options.threads,
        measure_in_a_process(directory, options),
    )
    chosen = replace(options, backend=choice.backend, precision=choice.precision)
    encoder = kind.load(name, directory, chosen)
    encoder.auto_choice = choice
    log.info("%s", choice.reason)
    return encoder


def check_min_cosine(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
        raise InputError(f"min_cosine must be a number in (0, 1], got {value!r}")
    return float(value)


def candidates_for(backend: str, precision: str, backends: dict[str, tuple[str, ...]]) -> list:
    """The (backend, precision) pairs a request allows; `backends`: each backend's precisions."""
    return [
        (b, p)
        for b, p in CANDIDATES
        if backend in ("auto", b) and precision in ("auto", p) and p in backends.get(b, ())
    ]


def machine_key(threads: int | None) -> dict:
    """What makes a measurement hold: the CPU, its features, the cores and threads this process
    may use, and the runtimes' versions."""
    import platform
    from importlib import metadata

    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
    except OSError:
        cpuinfo = ""
    flags = set(cpuinfo.split())
    names = [
        line.split(":", 1)[1].strip()
        for line in cpuinfo.splitlines()
        if line.startswith("model name")
    ]
    versions = {}
    for name in ("uniembed", "torch", "onnxruntime", "openvino", "nncf"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu": names[0] if names else platform.processor() or platform.machine(),
        "features": [f for f in FEATURES if f in flags],
        "cores": cores,
        "threads": threads,
        "versions": versions,
    }


def calibration_texts() -> list[str]:
    """A fixed mix: short Banking77 train texts, and document-length inputs joined from them; none
    of the texts the int8 quantisers calibrate on (openvino.calibration_texts)."""
    import csv
    import gzip
    import io

    from uniembed.datasets import banking77_dir
    from uniembed.encoders.openvino import calibration_texts as int8_texts

    with gzip.open(banking77_dir() / "train.csv.gz", "rt", encoding="utf-8") as f:
        texts = [row["text"] for row in csv.DictReader(io.StringIO(f.read()))]
    used = set(int8_texts())
    texts = [t for t in dict.fromkeys(texts) if t not in used]
    rng = np.random.default_rng(7)
    short = [texts[i] for i in rng.choice(len(texts), SHORT_TEXTS, replace=False)]
    joined = [
        " ".join(texts[i] for i in rng.choice(len(texts), JOINED_FROM, replace=False))
        for _ in range(LONG_TEXTS)
    ]
    return short + joined


def record_path(directory: Path) -> Path:
    from uniembed.cache import cache_root
    from uniembed.encoders.base import digest

    return cache_root() / "auto" / f"{digest(str(Path(directory).resolve()))[:24]}.json"


def choose(
    directory: Path,
    weights: str,
    wanted: list[tuple[str, str]],
    min_cosine: float,
    threads: int | None,
    measure: Callable[[str, str, Path], tuple[float, np.ndarray]],
) -> AutoChoice:
    """The fastest of `wanted` whose worst cosine is at least `min_cosine`, from the cached record
    when it holds for this model and machine, else from a new calibration (written to the cache)."""
    machine = machine_key(threads)
    path = record_path(directory)
    record = _read_record(path, weights, machine)
    labels = [f"{b} {p}" for b, p in wanted]
    if record is None or not set(labels) <= {
        f"{m['backend']} {m['precision']}" for m in record["measurements"]
    }:
        measurements = calibrate(sorted(set(wanted) | {EXACT}), measure)
        record = {
            "recipe": RECIPE,
            "weights": weights,
            "machine": machine,
            "measured_on": datetime.date.today().isoformat(),
            "measurements": [asdict(m) for m in measurements],
        }
        _write_record(path, record)
        from_cache = False
    else:
        from_cache = True
    measurements = [Measurement(**m) for m in record["measurements"]]
    eligible = [
        m
        for m in measurements
        if m.label in labels and m.skipped is None and m.worst_cosine >= min_cosine
    ]
    if not eligible:
        skipped = "; ".join(f"{m.label}: {m.skipped or m.worst_cosine}" for m in measurements)
        raise InputError(
            f"no configuration meets min_cosine={min_cosine} among {labels} here ({skipped})"
        )
    best = max(eligible, key=lambda m: m.texts_per_s)
    return AutoChoice(
        best.backend,
        best.precision,
        min_cosine,
        measurements,
        machine,
        record["measured_on"],
        from_cache,
        labels,
    )


class Unavailable(Exception):
    """A candidate that cannot run here; its message is the reason kept in the record."""


def calibrate(
    candidates: list[tuple[str, str]],
    measure: Callable[[str, str, Path], tuple[float, np.ndarray]],
) -> list[Measurement]:
    """PASSES rounds; in each, every candidate measured once (`measure`: seconds of one timed pass
    over the texts file after a warm-up, and its vectors), candidates interleaved round by round so
    a noisy stretch lands on all of them. Speed: the median round; fidelity: the worst cosine of
    any text to torch fp32's vectors. A candidate that raises Unavailable is skipped, its reason
    kept. `measure` runs each in a process of its own (measure_in_a_process): in one process the
    runtimes' spinning thread pools slow each other (measured: OpenVINO fp32 at half its speed)."""
    import tempfile

    measurements = {c: Measurement(*c) for c in candidates}
    seconds: dict[tuple[str, str], list[float]] = {c: [] for c in candidates}
    vectors = {}
    with tempfile.TemporaryDirectory(prefix="uniembed-auto-") as folder:
        texts = Path(folder) / "texts.json"
        texts.write_text(json.dumps(calibration_texts()), encoding="utf-8")
        for round_ in range(PASSES):
            for key in candidates:
                m = measurements[key]
                if m.skipped is not None:
                    continue
                log.info("auto: measuring %s (round %d of %d)", m.label, round_ + 1, PASSES)
                try:
                    took, vectors[key] = measure(*key, texts)
                except Unavailable as exc:
                    m.skipped = str(exc)[:300]
                    log.info("auto: %s skipped: %s", m.label, m.skipped)
                    continue
                seconds[key].append(took)
        n_texts = len(json.loads(texts.read_text(encoding="utf-8")))
    exact = EXACT
    if exact not in vectors:
        raise InputError(
            f"auto measures fidelity against torch fp32, which cannot run here: {measurements[exact].skipped}"
        )
    for key, m in measurements.items():
        if m.skipped is None:
            m.texts_per_s = round(n_texts / statistics.median(seconds[key]), 1)
            m.worst_cosine = round(float((vectors[key] * vectors[exact]).sum(axis=1).min()), 6)
    return [measurements[key] for key in candidates]


def measure_in_a_process(directory: Path, options) -> Callable:
    """measure(backend, precision, texts) running one candidate in a fresh Python process (load,
    warm-up, one timed pass; python -m uniembed.encoders.auto), with the caller's load options."""
    import subprocess
    import sys
    import tempfile
    from dataclasses import asdict as as_dict

    def measure(backend: str, precision: str, texts: Path) -> tuple[float, np.ndarray]:
        spec = as_dict(options) | {"backend": backend, "precision": precision}
        spec = {k: v for k, v in spec.items() if v is not None and k not in ("layers", "dim")}
        with tempfile.TemporaryDirectory(prefix="uniembed-auto-") as folder:
            out = Path(folder) / "vectors.npy"
            job = {"model": str(directory), "options": spec, "texts": str(texts), "out": str(out)}
            proc = subprocess.run(
                [sys.executable, "-m", __name__, json.dumps(job)], capture_output=True, text=True
            )
            if proc.returncode != 0:
                lines = [line for line in proc.stderr.splitlines() if line.strip()]
                raise Unavailable(lines[-1] if lines else f"exit status {proc.returncode}")
            return float(json.loads(proc.stdout.splitlines()[-1])["seconds"]), np.load(out)

    return measure


def _measure_here(job: dict) -> dict:
    """The child's side of measure_in_a_process: one candidate, one timed pass."""
    import uniembed

    model = uniembed.load(job["model"], **job["options"])
    texts = json.loads(Path(job["texts"]).read_text(encoding="utf-8"))
    # a warm-up pass over the same texts: pools, allocators, and whatever a backend compiles on
    # its first multi-batch call (OpenVINO's throughput model) stay out of the timed pass
    model.encode(texts, show_progress=False, long="truncate")
    start = time.perf_counter()
    vectors = model.encode(texts, show_progress=False, long="truncate")
    took = time.perf_counter() - start
    np.save(job["out"], vectors)
    return {"seconds": took}


def _read_record(path: Path, weights: str, machine: dict) -> dict | None:
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        log.warning("auto: %s is unreadable; measuring again", path)
        return None
    for what, expected in (("recipe", RECIPE), ("weights", weights), ("machine", machine)):
        if record.get(what) != expected:
            log.warning(
                "auto: the cached calibration in %s was measured for another %s (%s); measuring "
                "again for this one (%s)",
                path,
                "model version" if what == "weights" else what,
                record.get(what),
                expected,
            )
            return None
    return record


def _write_record(path: Path, record: dict) -> None:
    """Written whole (a temporary file renamed into place): concurrent loads never read half."""
    import uuid

    from uniembed._atomic import replace_file

    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    staging.write_text(json.dumps(record, indent=1), encoding="utf-8")
    replace_file(staging, path)


if __name__ == "__main__":  # a candidate measured in a process of its own (measure_in_a_process)
    import sys
    import warnings

    warnings.simplefilter("ignore")  # a TruncationWarning per pass is expected: long texts are cut
    try:
        print(json.dumps(_measure_here(json.loads(sys.argv[1]))))
    except Exception as exc:  # the reason the candidate is skipped, as one line on stderr
        print(f"{type(exc).__name__}: {' '.join(str(exc).split())}", file=sys.stderr)
        sys.exit(3)
