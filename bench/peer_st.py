"""One timed pass of sentence-transformers on one of its own backends, as a new user would run it.

Runs in the peer environment (bench/peer_env.py: sentence-transformers with its onnx and openvino
extras, which pin other transformers and tokenizers versions than uniembed's), so it imports
nothing from uniembed. Called by bench/encode_peers.py:

    <peer python> -m bench.peer_st CONFIG BATCH TEXTS.json OUT.npy|- MODEL_COPY CALIBRATION.csv

CONFIG: torch, onnx, onnx-O3, onnx-O4, onnx-qint8, openvino, openvino-static-int8. Exports are
written into MODEL_COPY (a writable copy of the default model) once and reused by later rounds;
the export is never timed. Prints one JSON line: seconds of the timed pass, peak RSS MB.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

WARM_UP_TEXTS = 256


def quantization_target() -> str:
    """The instruction set sentence-transformers' dynamic int8 export should aim at, this CPU."""
    flags = Path("/proc/cpuinfo").read_text()
    if "avx512_vnni" in flags:
        return "avx512_vnni"
    return "avx512" if "avx512f" in flags else "avx2"


def exported(model_dir: str, backend: str, name: str, export):
    """The model from its export `name` in model_dir, exported (once) by `export(model)` first."""
    from sentence_transformers import SentenceTransformer

    if not (Path(model_dir) / name).is_file():
        export(SentenceTransformer(model_dir, device="cpu", backend=backend))
    return SentenceTransformer(
        model_dir, device="cpu", backend=backend, model_kwargs={"file_name": name}
    )


def load(config: str, model_dir: str, calibration: str):
    from sentence_transformers import SentenceTransformer

    folder = Path(model_dir)
    if config == "torch":
        return SentenceTransformer(model_dir, device="cpu")
    if config in ("onnx", "openvino"):
        model = SentenceTransformer(model_dir, device="cpu", backend=config)
        saved = "onnx/model.onnx" if config == "onnx" else "openvino/openvino_model.xml"
        if not (folder / saved).is_file():  # saved once, as its warning advises
            model.save_pretrained(model_dir)
        return model
    if config in ("onnx-O3", "onnx-O4"):
        from sentence_transformers import export_optimized_onnx_model

        level = config.split("-")[1]
        return exported(
            model_dir,
            "onnx",
            f"onnx/model_{level}.onnx",
            lambda model: export_optimized_onnx_model(model, level, model_dir),
        )
    if config == "onnx-qint8":
        from sentence_transformers import export_dynamic_quantized_onnx_model

        target = quantization_target()
        return exported(
            model_dir,
            "onnx",
            f"onnx/model_qint8_{target}.onnx",
            lambda model: export_dynamic_quantized_onnx_model(model, target, model_dir),
        )
    if config == "openvino-static-int8":
        from sentence_transformers import export_static_quantized_openvino_model

        # calibration from a local folder (datasets reads a csv folder offline), never a hub
        return exported(
            model_dir,
            "openvino",
            "openvino/openvino_model_qint8_quantized.xml",
            lambda model: export_static_quantized_openvino_model(
                model,
                None,
                model_dir,
                dataset_name=str(Path(calibration).parent),
                dataset_config_name="default",
                dataset_split="train",
                column_name="text",
            ),
        )
    raise SystemExit(f"unknown configuration {config!r}")


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> int:
    import warnings

    warnings.simplefilter("ignore")
    config, batch, texts_path, out, model_dir, calibration = sys.argv[1:7]
    texts = json.loads(Path(texts_path).read_text())
    model = load(config, model_dir, calibration)
    encode = lambda items: model.encode(items, batch_size=int(batch), convert_to_numpy=True)  # noqa: E731
    encode(texts[:WARM_UP_TEXTS])
    start = time.perf_counter()
    vectors = encode(texts)
    seconds = time.perf_counter() - start
    if out != "-":
        np.save(out, np.asarray(vectors, dtype=np.float32))
    print(json.dumps({"seconds": seconds, "peak_mb": peak_rss_mb()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
