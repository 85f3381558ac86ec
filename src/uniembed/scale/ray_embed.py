"""Encoding on a Ray cluster: shards of texts in, Parquet shards of vectors out.

    uniembed embed corpus/ -o vectors/ --engine ray --address auto --actors 8

Each input file (jsonl, csv or parquet with an id and a text column) is one shard: a Ray Data
pipeline reads it, an actor pool (the model loaded once per actor, on CPU or GPU) encodes it in
`map_batches`, and Parquet is written to a temporary folder that is renamed to `vectors/<shard>/`
only when the shard is complete: the output never holds half a shard. `vectors/_uniembed.json`
records the model (name, fingerprint, dimension), the encoding settings and every finished shard,
so a rerun skips them (a different model or settings is refused rather than mixed in).

Output columns: `id` (string) and `embedding` (FixedSizeList<float32>: what LanceDB and the
collections read; not Ray's tensor extension type, which LanceDB cannot search).
Vectors are what `Encoder.encode` gives for the same texts.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from uniembed._atomic import replace_file
from uniembed._extras import require
from uniembed.errors import InputError, UniembedError

MANIFEST = "_uniembed.json"
FORMATS = {".parquet": "parquet", ".jsonl": "json", ".json": "json", ".csv": "csv"}


class RayJobError(UniembedError):
    """A Ray job failed, timed out, or the cluster could not be reached."""


@dataclass
class RayEmbedReport:
    output: Path
    shards_done: list[str]
    shards_skipped: list[str]
    rows: int
    dim: int
    seconds: float
    rows_per_node: dict[str, int] = field(
        default_factory=dict
    )  # node id -> rows it encoded (this run)


def input_shards(source: str | Path) -> list[Path]:
    """The files to encode: `source` itself, or the supported files in a folder (sorted)."""
    path = Path(source)
    if path.is_file():
        shards = [path]
    elif path.is_dir():
        shards = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in FORMATS)
        if not shards:
            raise InputError(f"{path}: no {', '.join(FORMATS)} files to encode")
    else:
        raise InputError(f"{path}: no such file or folder")
    for shard in shards:
        if shard.suffix.lower() not in FORMATS:
            raise InputError(
                f"{shard}: the ray engine reads {', '.join(FORMATS)} files (with an id and a text column)"
            )
    return shards


def embed_with_ray(
    model: str | None,
    source: str | Path,
    output: str | Path,
    *,
    address: str | None = "auto",
    actors: int = 2,
    column: str | list[str] = "text",
    id_column: str = "id",
    prompt: str | None = None,
    dim: int | None = None,
    normalize: bool = True,
    batch_size: int = 32,
    rows_per_batch: int = 1024,
    cpus_per_actor: float = 0.5,
    gpus_per_actor: float = 0.0,
    timeout_s: float | None = None,
    show_progress: bool = True,
) -> RayEmbedReport:
    """Encode every shard of `source` on a Ray cluster into Parquet shards under `output`.

    model: a catalogue name or a model directory every node can load (None: the default model).
    column: the text column, or several joined by a space (as BEIR joins title and text).
    address: the cluster ("auto": the one this machine belongs to; None: start a local one).
    timeout_s: give up on a shard after this long (a resource deadlock on a small cluster hangs
    silently otherwise); the shard's partial output is removed."""
    require("ray")
    import ray

    from uniembed.encoders.load import load

    for name, value, low in (
        ("actors", actors, 1),
        ("batch_size", batch_size, 1),
        ("rows_per_batch", rows_per_batch, 1),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise InputError(f"{name} must be a positive integer, got {value!r}")
    if timeout_s is not None and not timeout_s > 0:
        raise InputError(f"timeout_s must be positive, got {timeout_s!r}")
    shards = input_shards(source)
    out = Path(output)
    if out.exists() and not out.is_dir():
        raise InputError(
            f"{out} exists and is not a folder: the ray engine writes a folder of Parquet shards"
        )
    encoder = load(model)  # the driver checks the model once; every actor must load the same one
    columns = [column] if isinstance(column, str) else list(column)
    if not columns or not all(isinstance(c, str) and c for c in columns):
        raise InputError(f"column must be a column name or a list of them, got {column!r}")
    settings = {
        "model": model or encoder.name,
        "fingerprint": encoder.fingerprint,
        "dim": dim or encoder.dim,
        "prompt": prompt,
        "normalize": normalize,
        "columns": columns,
        "id_column": id_column,
    }
    manifest = _read_manifest(out, settings)
    started = time.perf_counter()
    _check_reachable(address)
    try:
        ray.init(
            address=address, logging_level="ERROR", log_to_driver=False, ignore_reinit_error=True
        )
    except Exception as exc:
        raise RayJobError(
            f"cannot reach a Ray cluster at {address!r}: {' '.join(str(exc).split())[:300]}"
        ) from None
    try:
        context = ray.data.DataContext.get_current()
        context.execution_options.preserve_order = True
        context.enable_progress_bars = show_progress
        counter = _RowCounter.remote()
        done, skipped, rows = [], [], 0
        for shard in shards:
            key = shard.name
            if key in manifest["shards"]:
                skipped.append(key)
                continue
            rows += _encode_shard(
                shard,
                out,
                key,
                settings,
                counter,
                actors=actors,
                batch_size=batch_size,
                rows_per_batch=rows_per_batch,
                cpus=cpus_per_actor,
                gpus=gpus_per_actor,
                timeout_s=timeout_s,
            )
            manifest["shards"][key] = {"rows": _rows_in(out / _folder(key)), "folder": _folder(key)}
            _write_manifest(out, manifest)
            done.append(key)
        per_node = _named(ray.get(counter.counts.remote()))
    finally:
        ray.shutdown()
    return RayEmbedReport(
        out, done, skipped, rows, settings["dim"], time.perf_counter() - started, per_node
    )


def _encode_shard(
    shard: Path,
    out: Path,
    key: str,
    settings: dict,
    counter,
    *,
    actors: int,
    batch_size: int,
    rows_per_batch: int,
    cpus: float,
    gpus: float,
    timeout_s: float | None,
) -> int:
    import ray

    reader = {
        "parquet": ray.data.read_parquet,
        "json": ray.data.read_json,
        "csv": ray.data.read_csv,
    }[FORMATS[shard.suffix.lower()]]
    # Every task here asks for a quarter CPU: on small nodes whose CPUs the actors share, a task
    # asking for a whole one (Ray's default, e.g. a select_columns step) waits forever.
    light = 0.25
    # several blocks per actor, so every actor (and node) gets work even from one file
    dataset = reader(str(shard), num_cpus=light, override_num_blocks=4 * actors)
    names = dataset.schema().names
    missing = [c for c in (settings["id_column"], *settings["columns"]) if c not in names]
    if missing:
        raise InputError(
            f"{shard}: no column {missing[0]!r}; it has {names} (choose with --id-column / --column)"
        )
    encoded = dataset.map_batches(
        _EncodeBatch,
        fn_constructor_kwargs={"settings": settings, "batch_size": batch_size, "counter": counter},
        batch_size=rows_per_batch,
        batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(size=actors),
        num_cpus=cpus,
        num_gpus=gpus or None,
        max_restarts=3,
        max_task_retries=3,
    )
    staging = out / f".incoming-{_folder(key)}-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    error: list[BaseException] = []

    def write():
        try:
            encoded.write_parquet(str(staging), ray_remote_args={"num_cpus": light})
        except BaseException as exc:
            error.append(exc)

    worker = threading.Thread(target=write, daemon=True)
    worker.start()
    worker.join(timeout_s)
    if worker.is_alive():
        shutil.rmtree(staging, ignore_errors=True)
        raise RayJobError(
            f"{shard}: not encoded within {timeout_s:g} s (a stuck Ray job: too few CPUs for the "
            "actors plus the reads?); nothing of it was kept"
        )
    if error:
        shutil.rmtree(staging, ignore_errors=True)
        exc = error[0]
        cause = exc if isinstance(exc, InputError) else None
        if cause is not None:
            raise cause
        raise RayJobError(
            f"{shard}: the Ray job failed ({type(exc).__name__}: {' '.join(str(exc).split())[:400]}); "
            "nothing of it was kept"
        ) from None
    target = out / _folder(key)
    shutil.rmtree(
        target, ignore_errors=True
    )  # a folder no manifest names: left by a run killed after its rename
    os.replace(staging, target)
    return _rows_in(target)


class _EncodeBatch:
    """One per actor: loads the model once, then encodes every batch it is given."""

    def __init__(self, settings: dict, batch_size: int, counter):
        import ray

        from uniembed.encoders.load import load

        self.encoder = load(settings["model"])
        if self.encoder.fingerprint != settings["fingerprint"]:
            raise InputError(
                f"node {ray.get_runtime_context().get_node_id()[:12]} loads {settings['model']!r} with "
                f"another fingerprint ({self.encoder.fingerprint[:12]} vs {settings['fingerprint'][:12]}): "
                "every node needs the same model files"
            )
        self.settings, self.batch_size, self.counter = settings, batch_size, counter
        self.node = ray.get_runtime_context().get_node_id()

    def __call__(self, batch):
        import numpy as np
        import pyarrow as pa

        parts = [batch.column(c).to_pylist() for c in self.settings["columns"]]
        texts = [" ".join(p or "" for p in row).strip() for row in zip(*parts)]
        vectors = self.encoder.encode(
            texts,
            prompt=self.settings["prompt"],
            dim=self.settings["dim"],
            normalize=self.settings["normalize"],
            batch_size=self.batch_size,
            show_progress=False,
        )
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self.counter.add.remote(self.node, len(texts))
        ids = batch.column(self.settings["id_column"]).cast(pa.string())
        embedding = pa.FixedSizeListArray.from_arrays(
            pa.array(vectors.reshape(-1)), vectors.shape[1]
        )
        return pa.table({"id": ids, "embedding": embedding})


def _row_counter_class():
    import ray

    @ray.remote(num_cpus=0)
    class RowCounter:
        def __init__(self):
            self.rows: dict[str, int] = {}

        def add(self, node: str, rows: int) -> None:
            self.rows[node] = self.rows.get(node, 0) + rows

        def counts(self) -> dict[str, int]:
            return dict(self.rows)

    return RowCounter


class _LazyRemote:
    """`_RowCounter.remote()` defines the Ray actor class on first use (importing ray lazily)."""

    def remote(self):
        return _row_counter_class().remote()


_RowCounter = _LazyRemote()


def _check_reachable(address: str | None) -> None:
    """A host:port address whose port nothing answers on fails now, not after Ray's minutes of retries."""
    import socket

    if not address or address == "auto" or "://" in address or ":" not in address:
        return
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=5):
            return
    except (OSError, ValueError) as exc:
        raise RayJobError(
            f"no Ray cluster at {address!r}: nothing answers on {host}:{port} ({exc})"
        ) from None


def _named(rows_per_node: dict[str, int]) -> dict[str, int]:
    """Node ids as their custom `node_<i>` resource when they have one (LocalRayCluster's nodes)."""
    import ray

    names = {}
    for node in ray.nodes():
        tags = sorted(
            r
            for r in node.get("Resources", {})
            if r.startswith("node_") and not r.startswith("node:")
        )
        names[node["NodeID"]] = tags[0] if tags else node["NodeID"][:12]
    return {names.get(node, node[:12]): rows for node, rows in rows_per_node.items()}


def _folder(key: str) -> str:
    return key.replace(os.sep, "_")


def _rows_in(folder: Path) -> int:
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(p).metadata.num_rows for p in sorted(folder.glob("*.parquet")))


def _read_manifest(out: Path, settings: dict) -> dict:
    path = out / MANIFEST
    if not path.is_file():
        if out.is_dir() and any(p for p in out.iterdir() if not p.name.startswith(".incoming-")):
            raise InputError(
                f"{out} is a folder that holds something else (no {MANIFEST}): choose an empty or new folder"
            )
        return {**settings, "shards": {}}
    manifest = json.loads(path.read_text(encoding="utf-8"))
    changed = {
        key: (manifest.get(key), value)
        for key, value in settings.items()
        if manifest.get(key) != value
    }
    if changed:
        detail = ", ".join(
            f"{key}: {old!r} then, {new!r} now" for key, (old, new) in changed.items()
        )
        raise InputError(
            f"{out} holds vectors made with other settings ({detail}); use another output folder"
        )
    return manifest


def _write_manifest(out: Path, manifest: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f".{MANIFEST}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    replace_file(tmp, out / MANIFEST)


def read_vectors(output: str | Path):
    """The finished shards of a Ray output folder as one Arrow table (id, embedding), in shard order."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = Path(output)
    manifest_path = out / MANIFEST
    if not manifest_path.is_file():
        raise InputError(f"{out} is not a ray embedding output (no {MANIFEST})")
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    tables = [
        pq.read_table(p)
        for info in manifest["shards"].values()
        for p in sorted((out / info["folder"]).glob("*.parquet"))
    ]
    if not tables:
        return pa.table(
            {
                "id": pa.array([], pa.string()),
                "embedding": pa.array([], pa.list_(pa.float32(), manifest["dim"])),
            }
        )
    return pa.concat_tables(tables)
