"""Exporting a transformer to ONNX (needs torch) and quantising it to int8 (needs onnxruntime).

The cache folder holds everything the ONNX backend needs to run without torch: model.onnx,
model-int8.onnx, tokenizer.json and export.json (shapes, padding, and the SHA-256 of every file,
so that a corrupt cache is noticed and rebuilt).
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

from uniembed._atomic import atomic_folder
from uniembed.encoders.registry import file_sha256
from uniembed.errors import ModelLoadError

EXPORT_FILE = "export.json"
OPSET = 18
PRECISION_FILES = {"fp32": "model.onnx", "int8": "model-int8.onnx"}
INT8_EXCLUSIONS = ("none", "first-down-projection", "every-down-projection")
DEFAULT_INT8_EXCLUSION = (
    "none"  # chosen on STSb dev text by bench/select_int8.py (its rule, its table)
)
# names the int8 recipe (see int8_excluded_nodes): a cached int8 model from another recipe is redone
INT8_RECIPE = f"dynamic-per-channel-v3-{DEFAULT_INT8_EXCLUSION}"


def export_model(weights_dir: Path, target: Path) -> None:
    """Export the transformer in `weights_dir` to `target` (a new folder), atomically."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    with atomic_folder(target, replace=True) as staging:  # replaces a corrupt export
        tokenizer = AutoTokenizer.from_pretrained(str(weights_dir), local_files_only=True)
        body = AutoModel.from_pretrained(
            str(weights_dir), local_files_only=True, use_safetensors=True
        ).eval()
        names = [
            n
            for n in tokenizer.model_input_names
            if n in ("input_ids", "attention_mask", "token_type_ids")
        ]
        sample = tokenizer(
            ["a short one", "a somewhat longer example sentence"], padding=True, return_tensors="pt"
        )
        batch, tokens = (
            torch.export.Dim("batch"),
            torch.export.Dim("tokens", max=_positions(body) or 4096),
        )
        torch.onnx.export(
            hidden_states_module(body, names),
            tuple(sample[n] for n in names),
            str(staging / PRECISION_FILES["fp32"]),
            input_names=names,
            output_names=["hidden"],
            dynamo=True,
            opset_version=OPSET,
            external_data=False,
            dynamic_shapes=(
                tuple({0: batch, 1: tokens} for _ in names),
            ),  # one entry: the *inputs tuple
        )
        tokenizer.backend_tokenizer.save(str(staging / "tokenizer.json"))
        info = {
            "input_names": names,
            "hidden_size": int(body.config.hidden_size),
            "max_positions": _positions(body),
            "pad_id": tokenizer.pad_token_id or 0,
            "padding_side": tokenizer.padding_side,
            "model_max_length": int(min(tokenizer.model_max_length, 1_000_000)),
        }
        write_export_info(staging, info)


def _positions(body) -> int | None:
    value = getattr(body.config, "max_position_embeddings", None)
    return int(value) if isinstance(value, int) else None


def hidden_states_module(body, names):
    """A torch.nn.Module returning `body`'s last_hidden_state, its inputs in the order of `names`
    (built here, not at import, so that importing this module does not import torch)."""
    import torch

    class HiddenStates(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.body = body

        def forward(self, *inputs):
            return self.body(**dict(zip(names, inputs))).last_hidden_state

    return HiddenStates()


def int8_excluded_nodes(model, exclusion: str = DEFAULT_INT8_EXCLUSION) -> list[str]:
    """MatMuls to keep in fp32. Activation x activation products (attention) always: they have no
    weights to quantise. Then by `exclusion`: "none", the first layer's feed-forward
    down-projection, or every down-projection. The down-projections read straight from GELU
    (the widest, most skewed activations, quantised with one scale per batch); the first layer's
    hurts most. The default is chosen on dev text by bench/select_int8.py (STSb dev sentences,
    cosine to fp32 and STSb dev Spearman, speed against ONNX fp32)."""
    if exclusion not in INT8_EXCLUSIONS:
        raise ValueError(f"exclusion must be one of {INT8_EXCLUSIONS}, got {exclusion!r}")
    weights = {init.name for init in model.graph.initializer}
    producer = {output: node for node in model.graph.node for output in node.output}
    gelus = ("Gelu", "BiasGelu", "FastGelu")
    excluded, first_down_projection = [], True
    for node in model.graph.node:  # topological order: the first GELU-fed MatMul is layer 1's
        if node.op_type != "MatMul":
            continue
        activations = [name for name in node.input if name not in weights]
        from_gelu = any(
            name.startswith("gelu") or getattr(producer.get(name), "op_type", "") in gelus
            for name in activations
        )
        wanted = {
            "none": False,
            "first-down-projection": from_gelu and first_down_projection,
            "every-down-projection": from_gelu,
        }[exclusion]
        if len(activations) == len(node.input) or wanted:
            excluded.append(node.name)
        first_down_projection = first_down_projection and not from_gelu
    return excluded


def quantize_int8(
    folder: Path,
    *,
    exclusion: str = DEFAULT_INT8_EXCLUSION,
    source: Path | None = None,
    target: Path | None = None,
    op_types: tuple[str, ...] = ("MatMul",),
) -> None:
    """Dynamic int8 quantisation of the MatMul weights, per output channel (see int8_excluded_nodes).
    Without `source`/`target`: the cache folder's fp32 model to its int8 file, recorded in export.json.
    `op_types`: add "Attention" for a graph whose attention ORT's optimizer fused (its QKV weights)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    into_cache = source is None and target is None
    source = source or folder / PRECISION_FILES["fp32"]
    target = target or folder / PRECISION_FILES["int8"]
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}")
    try:
        excluded = int8_excluded_nodes(onnx.load(str(source), load_external_data=False), exclusion)
        quantize_dynamic(
            str(source),
            str(tmp),
            per_channel=True,
            weight_type=QuantType.QInt8,
            op_types_to_quantize=list(op_types),
            nodes_to_exclude=excluded,
            # fused contrib ops (an optimizer's output) defeat shape inference: their tensors are float
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    if into_cache:
        info = read_export_info(folder)
        info["int8_recipe"] = INT8_RECIPE
        write_export_info(folder, info)


def write_export_info(folder: Path, info: dict) -> None:
    info = {k: v for k, v in info.items() if k != "sha256"}
    info["sha256"] = {
        name: file_sha256(folder / name)
        for name in sorted(os.listdir(folder))
        if name.endswith((".onnx", ".json", ".xml", ".bin"))
        and not name.startswith(".")
        and name != EXPORT_FILE
    }
    tmp = folder / f".{EXPORT_FILE}.tmp"
    tmp.write_text(json.dumps(info, indent=2))
    os.replace(tmp, folder / EXPORT_FILE)


def read_export_info(folder: Path) -> dict:
    try:
        return json.loads((folder / EXPORT_FILE).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"ONNX cache {folder} is incomplete: {exc}") from exc


def cache_is_intact(folder: Path, precision: str) -> bool:
    """True when export.json exists and the files it lists (and the precision's model) match their hashes."""
    try:
        info = read_export_info(folder)
    except ModelLoadError:
        return False
    wanted = {"tokenizer.json", PRECISION_FILES[precision]}
    hashes = info.get("sha256", {})
    if not wanted <= set(hashes) or (
        precision == "int8" and info.get("int8_recipe") != INT8_RECIPE
    ):
        return False
    return all(
        (folder / name).is_file() and file_sha256(folder / name) == digest
        for name, digest in hashes.items()
    )
