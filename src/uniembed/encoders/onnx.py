"""The ONNX Runtime backend: runs an exported model with onnxruntime, tokenizers and numpy only
(no torch at inference). Exports are cached under the user's cache folder, keyed by the weights'
hash; a missing or corrupt cache entry is (re)built, which needs torch once."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from uniembed._extras import require
from uniembed.encoders.base import digest
from uniembed.encoders.onnx_export import OPSET, PRECISION_FILES, cache_is_intact, read_export_info
from uniembed.encoders.pooling_numpy import pool_numpy
from uniembed.encoders.token_encoder import TokenEncoder
from uniembed.encoders.tokens import WindowTokenizer
from uniembed.errors import ModelLoadError


def onnx_cache_folder(weights_digest: str) -> Path:
    from uniembed.cache import cache_root

    return cache_root() / "onnx" / f"{weights_digest[:32]}-opset{OPSET}"


def ensure_export(weights_dir: Path, weights_digest: str, precision: str) -> Path:
    """The cache folder holding an intact export of `precision`, exporting/quantising if needed."""
    folder = onnx_cache_folder(weights_digest)
    if cache_is_intact(folder, precision):
        return folder
    if not cache_is_intact(folder, "fp32"):
        try:
            require("torch")
        except ImportError as exc:
            raise ModelLoadError(
                f"no intact ONNX export of {weights_dir} in {folder}, and exporting one needs torch: {exc}"
            ) from exc
        from uniembed.encoders.onnx_export import export_model

        export_model(weights_dir, folder)
    if precision == "int8" and not cache_is_intact(folder, "int8"):
        from uniembed.encoders.onnx_export import quantize_int8

        quantize_int8(folder)
    return folder


class ExportEncoder(TokenEncoder):
    """An encoder over a cached ONNX export folder (the onnx and openvino backends): the export's
    tokenizer cut into windows, its input names, and the fingerprint rule; subclasses run it."""

    def __init__(
        self,
        name: str,
        folder: Path,
        *,
        precision: str,
        pooling: str,
        max_tokens: int,
        prompts: dict,
        default_prompt: str | None,
        lowercase: bool,
        chunk_overlap: int,
        padding_side: str | None,
        token_budget: int,
        base_fingerprint: str,
        runtime: str,
    ):
        from tokenizers import Tokenizer

        info = read_export_info(folder)
        windows = WindowTokenizer(
            Tokenizer.from_file(str(folder / "tokenizer.json")),
            max_tokens=max_tokens,
            overlap=min(chunk_overlap, max_tokens // 2),
            pad_id=info["pad_id"],
            padding_side=padding_side or info["padding_side"],
            lowercase=lowercase,
        )
        super().__init__(
            name,
            info["hidden_size"],
            windows,
            pooling=pooling,
            token_budget=token_budget,
            prompts=prompts,
            default_prompt=default_prompt,
        )
        self.input_names = info["input_names"]
        self.precision = precision
        self.device = f"cpu ({runtime})"
        # fp32 makes the same vectors as torch (to ~1e-6): same fingerprint, so collections mix them
        self._fingerprint = (
            base_fingerprint if precision == "fp32" else digest(base_fingerprint, *self._variant())
        )

    def _variant(self) -> tuple:
        """What besides the weights makes a non-fp32 vector (kept as each backend has always hashed it)."""
        return (self.precision,)

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    def embed_windows(self, padded: dict[str, np.ndarray]) -> np.ndarray:
        hidden = self.hidden_windows(padded)
        return pool_numpy(hidden, padded["attention_mask"], self.pooling, self.padding_side).astype(
            np.float32, copy=False
        )


class OnnxEncoder(ExportEncoder):
    def __init__(self, name: str, folder: Path, *, precision: str, threads: int | None, **common):
        require("onnx")
        import onnxruntime as ort

        super().__init__(name, folder, precision=precision, runtime="onnxruntime", **common)
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self.model_path = (
            folder / PRECISION_FILES[precision]
        )  # what the session runs (bench/encode_stages.py profiles it)
        self.session = ort.InferenceSession(
            str(self.model_path), options, providers=["CPUExecutionProvider"]
        )

    def hidden_windows(self, padded: dict[str, np.ndarray]) -> np.ndarray:
        return self.session.run(None, {name: padded[name] for name in self.input_names})[0].astype(
            np.float32, copy=False
        )


def base_fingerprint(
    weights_digest: str, pooling: str, max_tokens: int, prompts: dict, dim: int
) -> str:
    """The fingerprint a torch TransformerEncoder of the same model and settings reports."""
    return digest(weights_digest, pooling, max_tokens, sorted(prompts.items()), dim)
