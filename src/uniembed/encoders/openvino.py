"""The OpenVINO backend: the model's cached ONNX export (see onnx_export) compiled by OpenVINO's
CPU runtime.

- fp32: OpenVINO computing in f32 (the same vectors as torch and ONNX Runtime, to ~1e-6);
- bf16: OpenVINO computing in bfloat16, on CPUs that have it natively (AVX512-BF16, AMX);
- int8: post-training static quantisation by NNCF (the `openvino` extra), calibrated on texts
  that are never a test set: a seeded sample of the Banking77 *train* texts shipped with uniembed,
  plus longer inputs joined from them (so that activations at later positions are calibrated
  too). Written once beside the ONNX export as OpenVINO IR (model-ov-int8.xml/.bin), recorded
  with its recipe and hashes in export.json.

Why it exists (issue 14): on this project's CPU machine, OpenVINO's int8 measured well ahead of
ONNX Runtime's dynamic int8 in speed *and* closer to the fp32 vectors (bench/select_int8.py).
"""

from __future__ import annotations

import gzip
import os
import threading
import uuid
from pathlib import Path

import numpy as np

from uniembed._extras import require
from uniembed.encoders.onnx import ExportEncoder
from uniembed.encoders.onnx_export import PRECISION_FILES, read_export_info, write_export_info
from uniembed.encoders.pooling_numpy import pool_numpy
from uniembed.errors import ModelLoadError

INT8_XML, INT8_BIN = "model-ov-int8.xml", "model-ov-int8.bin"
IR_XML, IR_BIN = "model-ov.xml", "model-ov.bin"  # fp32 and bf16 run this (ensure_ir)
IR_RECIPE = "pytorch-frontend-v1"
STREAMS_HINT = 2  # a batch of fewer than 2 rows per stream runs on the latency model
# names the calibration recipe: a cached int8 model from another recipe is quantised again
INT8_RECIPE = "nncf-transformer-banking77-train-512+64joined-v1"
CALIBRATION_TEXTS, JOINED_INPUTS, JOINED_FROM, CALIBRATION_BATCH = 512, 64, 24, 32


def calibration_texts(seed: int = 0) -> list[str]:
    """Banking77 train texts (shipped in the package, CC BY 4.0): a seeded sample, plus inputs made
    of several of them joined, as long as documents get."""
    import csv
    import io

    from uniembed.datasets import banking77_dir

    with gzip.open(banking77_dir() / "train.csv.gz", "rt", encoding="utf-8") as f:
        texts = [row["text"] for row in csv.DictReader(io.StringIO(f.read()))]
    rng = np.random.default_rng(seed)
    picked = [texts[i] for i in rng.choice(len(texts), CALIBRATION_TEXTS, replace=False)]
    joined = [
        " ".join(texts[i] for i in rng.choice(len(texts), JOINED_FROM, replace=False))
        for _ in range(JOINED_INPUTS)
    ]
    return picked + joined


def _cache_is_intact(folder: Path, recipe_key: str, recipe: str, files: tuple[str, str]) -> bool:
    """The IR `files` are in `folder`, made by `recipe`, with the hashes export.json records."""
    from uniembed.encoders.onnx_export import file_sha256

    try:
        info = read_export_info(folder)
    except ModelLoadError:
        return False
    hashes = info.get("sha256", {})
    return (
        info.get(recipe_key) == recipe
        and set(files) <= set(hashes)
        and all(
            (folder / name).is_file() and file_sha256(folder / name) == hashes[name]
            for name in files
        )
    )


def _save_ir(model, folder: Path, xml: str, binary: str, recipe_key: str, recipe: str) -> Path:
    """Write an OpenVINO model as folder/xml + folder/binary, never half of it, and record it."""
    import openvino as ov

    stem = f".ov-{uuid.uuid4().hex[:8]}"
    staging_xml, staging_bin = folder / f"{stem}.xml", folder / f"{stem}.bin"
    try:
        ov.save_model(model, str(staging_xml), compress_to_fp16=False)
        os.replace(
            staging_bin, folder / binary
        )  # the weights first: an .xml never names a missing .bin
        os.replace(staging_xml, folder / xml)
    finally:
        staging_xml.unlink(missing_ok=True)
        staging_bin.unlink(missing_ok=True)
    info = read_export_info(folder)
    info[recipe_key] = recipe
    write_export_info(folder, info)
    return folder / xml


def ensure_ir(folder: Path, weights_dir: Path, input_names: list[str]) -> Path:
    """The fp32 IR converted straight from the PyTorch weights by OpenVINO's PyTorch frontend, beside
    the ONNX export in `folder` (once; needs torch once, as the ONNX export does). That frontend
    fuses attention into one ScaledDotProductAttention operation, which reading our ONNX export
    does not: 1.35x on SciFact documents in bf16, the same on short texts, the same vectors
    (measured in issue 32)."""
    if _cache_is_intact(folder, "openvino_ir_recipe", IR_RECIPE, (IR_XML, IR_BIN)):
        return folder / IR_XML
    require("torch")
    import openvino as ov
    import torch
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    from uniembed.encoders.onnx_export import hidden_states_module

    hf_logging.disable_progress_bar()  # a per-tensor "Loading weights" bar is noise for users
    try:
        body = AutoModel.from_pretrained(
            str(weights_dir), local_files_only=True, use_safetensors=True
        )
    finally:
        hf_logging.enable_progress_bar()
    example = tuple(
        torch.zeros(2, 8, dtype=torch.long)
        if name == "token_type_ids"
        else torch.ones(2, 8, dtype=torch.long)
        for name in input_names
    )
    with torch.inference_mode():
        model = ov.convert_model(
            hidden_states_module(body.eval(), input_names), example_input=example
        )
    for port, name in zip(model.inputs, input_names):
        port.get_tensor().set_names({name})
    return _save_ir(model, folder, IR_XML, IR_BIN, "openvino_ir_recipe", IR_RECIPE)


def ensure_int8(folder: Path, windows, input_names: list[str]) -> Path:
    """The int8 IR beside the ONNX export in `folder`, quantised (and cached) on first use."""
    if _cache_is_intact(folder, "openvino_int8_recipe", INT8_RECIPE, (INT8_XML, INT8_BIN)):
        return folder / INT8_XML
    import nncf
    import openvino as ov

    texts = calibration_texts()
    feeds = []
    for start in range(0, len(texts), CALIBRATION_BATCH):
        prepared = windows.windows(texts[start : start + CALIBRATION_BATCH], chunk=False)
        padded = windows.pad(prepared.ids, prepared.type_ids)
        feeds.append({name: padded[name] for name in input_names})
    model = ov.Core().read_model(str(folder / PRECISION_FILES["fp32"]))
    quantized = nncf.quantize(
        model, nncf.Dataset(feeds), model_type=nncf.ModelType.TRANSFORMER, subset_size=len(feeds)
    )
    return _save_ir(quantized, folder, INT8_XML, INT8_BIN, "openvino_int8_recipe", INT8_RECIPE)


class OpenVinoEncoder(ExportEncoder):
    def __init__(
        self,
        name: str,
        folder: Path,
        *,
        precision: str,
        threads: int | None,
        weights_dir: Path | None = None,
        **common,
    ):
        require("openvino")
        import openvino as ov

        super().__init__(name, folder, precision=precision, runtime="openvino", **common)
        core = ov.Core()
        config = {"PERFORMANCE_HINT": "LATENCY"}
        if precision in ("fp32", "bf16"):
            if precision == "bf16" and "BF16" not in core.get_property(
                "CPU", "OPTIMIZATION_CAPABILITIES"
            ):
                raise ModelLoadError(
                    "precision='bf16' on the openvino backend needs a CPU with native bfloat16 "
                    "(AVX512-BF16 or AMX); this one has none: use fp32 or int8"
                )
            config["INFERENCE_PRECISION_HINT"] = "f32" if precision == "fp32" else "bf16"
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        if (
            precision == "int8"
        ):  # quantised from the ONNX export: the recipe bench/select_int8 chose
            source = ensure_int8(folder, self.windows, self.input_names)
        elif weights_dir is not None:
            source = ensure_ir(folder, weights_dir, self.input_names)
        else:  # no weights to convert from (an export alone): OpenVINO reads the ONNX file
            source = folder / PRECISION_FILES["fp32"]
        self.model_path, self.compile_config = (
            source,
            config,
        )  # what was compiled (bench/encode_stages.py profiles it)
        self.compiled = core.compile_model(str(source), "CPU", config)
        self._core, self._throughput, self._compiling = core, None, threading.Lock()

    def _variant(self) -> tuple:
        return ("openvino", self.precision)

    def embed_batches(self, batches, n_batches: int, out: np.ndarray) -> None:
        """Batches run side by side, one per OpenVINO stream (its THROUGHPUT hint: on 2 cores, 2
        streams of one thread each), the next batch padded and the last one pooled while they
        run: 1.3x the sequential path's inference on STSb sentences (issue 32). Each batch is cut
        in one part per stream, so that a single large batch (24 documents) keeps every core busy
        too. A batch too small to share (a query) runs on the latency-compiled model, all cores on
        one request. Both models give the same bits, and a row's vector does not depend on the
        rows beside it (measured: 0.0 apart in fp32 and bf16), so no path changes a vector."""
        batches = iter(batches)
        first = next(batches, None)
        if first is None:
            return
        if n_batches == 1 and len(first[0]) < 2 * STREAMS_HINT:
            return super().embed_batches([first], n_batches, out)
        from collections import deque
        from itertools import chain

        compiled = self._throughput_model()
        streams = max(1, int(compiled.get_property("NUM_STREAMS")))
        # one request more than streams: the streams stay busy while this thread pools and pads
        # (measured: 1,918 texts/s with as many requests as streams, 2,360-2,385 with one more)
        free = deque(
            compiled.create_infer_request()
            for _ in range(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS") + 1)
        )
        running = deque()  # (request, rows, attention mask), oldest first

        def finish_oldest() -> None:
            request, rows, mask = running.popleft()
            request.wait()  # releases the GIL; the other requests keep running
            hidden = np.array(request.get_output_tensor(0).data, dtype=np.float32)
            out[rows] = pool_numpy(hidden, mask, self.pooling, self.padding_side)
            free.append(request)

        # No Python callbacks (AsyncInferQueue's): one run on OpenVINO's threads needs the GIL,
        # and freeing the encoder then deadlocked (seen: the second encoder freed in a process
        # hung). Requests are started and finished here, on the caller's thread, in order.
        for rows, padded in chain([first], batches):
            for part in np.array_split(np.arange(len(rows)), min(streams, len(rows))):
                if not free:
                    finish_oldest()
                request = free.popleft()
                request.start_async({name: padded[name][part] for name in self.input_names})
                running.append((request, rows[part], padded["attention_mask"][part]))
        while running:
            finish_oldest()

    def _throughput_model(self):
        """The same model compiled for throughput (once, on the first multi-batch call)."""
        with self._compiling:
            if self._throughput is None:
                config = dict(self.compile_config, PERFORMANCE_HINT="THROUGHPUT")
                self._throughput = self._core.compile_model(str(self.model_path), "CPU", config)
            return self._throughput

    def hidden_windows(self, padded: dict[str, np.ndarray]) -> np.ndarray:
        # one infer request per call: a compiled model's own request is not safe across threads
        request = self.compiled.create_infer_request()
        request.infer({name: padded[name] for name in self.input_names})
        return np.array(request.get_output_tensor(0).data, dtype=np.float32)
