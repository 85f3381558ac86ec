"""`load()`: a name, a directory or a hub id in, a ready encoder out, on the chosen backend."""

from __future__ import annotations

import warnings
from pathlib import Path

from uniembed._extras import require
from uniembed.encoders.kinds import LoadOptions, ModelKind, kind_of, register_kind
from uniembed.encoders.model_dir import ModelDirConfig, read_model_dir
from uniembed.encoders.pooling_numpy import POOLING_MODES
from uniembed.encoders.registry import resolve, weights_digest
from uniembed.encoders.reproducible import warn_unless_strict
from uniembed.errors import InputError, ModelLoadError

BACKENDS = ("torch", "onnx", "openvino")
PRECISIONS = {
    "torch": ("fp32", "bf16", "fp16"),
    "onnx": ("fp32", "int8"),
    "openvino": ("fp32", "bf16", "int8"),
}


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (Linux /proc/cpuinfo flags); True where unknown."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return True  # not Linux: do not warn on a guess
    return any(flag in flags for flag in ("avx512_bf16", "amx_bf16"))


def load(
    model: str | Path | None = None,
    *,
    backend: str = "torch",
    precision: str = "fp32",
    device: str | None = None,
    pooling: str | None = None,
    max_tokens: int | None = None,
    padding_side: str | None = None,
    chunk_overlap: int = 32,
    threads: int | None = None,
    token_budget: int = 16384,
    layers: int | None = None,
    dim: int | None = None,
    min_cosine: float | None = None,
):
    """Load an encoder: the default model (offline), a catalogue name, a local directory or a hub id.

    backend: "torch" (precision fp32, bf16, or fp16 on a GPU), "onnx" (ONNX Runtime, precision
             fp32 or int8; exported from the model's weights on first use and cached) or
             "openvino" (OpenVINO's CPU runtime on that export: fp32, bf16, or int8 quantised
             once by NNCF on shipped Banking77 train texts; the fastest int8 on CPUs measured).
    pooling: "mean", "cls", "lasttoken" or "max"; default from the model's config, else "mean".
    max_tokens: maximum tokens per input; default from the model's config.
    padding_side: "right" or "left"; default from the tokenizer config.
    chunk_overlap: tokens shared by neighbouring windows when encoding with long="chunk".
    threads: CPU threads for inference (default: the runtime's choice).
    token_budget: at most this many tokens (padding included) per forward pass.
    layers, dim: run only the first `layers` transformer layers and keep the first `dim` output
             coordinates (a Starbucks / Matryoshka model run small; torch backend).

    backend="auto" and/or precision="auto" (text transformers on the CPU): the fastest
             configuration this CPU runs whose worst cosine to the exact vectors is at least
             `min_cosine` (default 0.999), calibrated once per model and machine and cached (see
             encoders/auto.py). backend="auto" alone keeps precision fp32: the fastest backend
             making the exact vectors. The encoder's `auto_choice.reason` says what was chosen and
             why.
    """
    _check_options(backend, precision, chunk_overlap, padding_side, pooling, threads, token_budget)
    automatic = "auto" in (backend, precision)
    if min_cosine is not None and not automatic:
        raise InputError(
            f"min_cosine={min_cosine!r} applies to backend='auto' or precision='auto' only"
        )
    options = LoadOptions(
        backend=backend,
        precision=precision,
        device=device,
        pooling=pooling,
        max_tokens=max_tokens,
        padding_side=padding_side,
        chunk_overlap=chunk_overlap,
        threads=threads,
        token_budget=token_budget,
        layers=layers,
        dim=dim,
    )
    name, directory = resolve(model)
    kind = kind_of(directory)
    if automatic:
        from uniembed.encoders.auto import load_auto

        return load_auto(name, directory, kind, options, min_cosine, PRECISIONS)
    kind.check_options(options)
    return kind.load(name, directory, options)


# -- the kinds uniembed ships, in the order they are recognised ---------------------------------
def _load_bound(name: str, directory: Path, options: LoadOptions):
    from uniembed.encoders.bound import load_bound

    return load_bound(directory, name=name, device=options.device, threads=options.threads)


def _is_static(directory: Path) -> bool:
    return (directory / "uniembed_static.json").is_file()


def _load_static(name: str, directory: Path, options: LoadOptions):
    from uniembed.encoders.static import StaticEncoder

    return StaticEncoder.load(directory, name=name)


def _image_kind(model_type: str) -> ModelKind:
    """CLIP, SigLIP (dual encoders) or LLaVA (a VLM): transformers' model_type in config.json."""
    from uniembed.encoders.image_models import image_model_type

    def load_image_model(name: str, directory: Path, options: LoadOptions):
        if options.backend != "torch":
            raise InputError(
                f"{model_type.upper()} models run on the torch backend; got backend={options.backend!r}"
            )
        read_model_dir(directory)  # the same checks: config, safetensors (never pickle), tokenizer
        if model_type == "llava":
            from uniembed.encoders.vlm import load_vlm

            if options.precision != "fp32":
                raise InputError(
                    f"precision for vision-language models must be 'fp32', got {options.precision!r}"
                )
            return load_vlm(name, directory, device=options.device, threads=options.threads)
        from uniembed.encoders.dual import load_dual

        return load_dual(
            name,
            directory,
            model_type,
            precision=options.precision,
            device=options.device,
            threads=options.threads,
        )

    return ModelKind(
        model_type,
        recognise=lambda directory: image_model_type(directory) == model_type,
        load=load_image_model,
        takes=frozenset({"backend", "precision", "chunk_overlap", "token_budget"}),
        label=model_type.upper(),
        fixed_by="their processor fixes them",
    )


def _load_transformer(name: str, directory: Path, options: LoadOptions):
    """Any sentence-transformers or Hugging Face encoder directory, on the chosen backend; a
    late-interaction (ColBERT / PyLate) head is read with it when the directory has one."""
    config = read_model_dir(directory)
    backend, layers, dim = options.backend, options.layers, options.dim
    if backend in ("onnx", "openvino") and (layers is not None or dim is not None):
        raise InputError(
            f"layers= and dim= are supported by the torch backend; truncate {backend} outputs with encode(dim=...)"
        )
    for option, value in (("layers", layers), ("dim", dim)):
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < 1
        ):
            raise InputError(f"{option} must be a positive integer, got {value!r}")
    common = {
        "precision": options.precision,
        "device": options.device,
        "pooling": options.pooling,
        "max_tokens": options.max_tokens,
        "padding_side": options.padding_side,
        "chunk_overlap": options.chunk_overlap,
        "threads": options.threads,
        "token_budget": options.token_budget,
    }
    if backend == "torch":
        encoder = _load_torch(name, config, layers=layers, dim=dim, **common)
    else:
        encoder = _load_onnx(name, config, backend=backend, **common)
    encoder.source = str(config.weights_dir)
    if config.token_head_dir is not None:
        from uniembed.encoders.late_interaction import read_token_head

        encoder.token_head = read_token_head(
            directory, config.token_head_dir, encoder.windows.tokenizer
        )
        if encoder.token_head.weight.shape[1] != encoder.hidden_size:
            raise ModelLoadError(
                f"{config.token_head_dir}: the head takes {encoder.token_head.weight.shape[1]} dims, "
                f"the transformer gives {encoder.hidden_size}"
            )
    return encoder


def _check_options(
    backend, precision, chunk_overlap, padding_side, pooling, threads, token_budget
) -> None:
    if backend not in (*BACKENDS, "auto"):
        raise InputError(f"backend must be one of {[*BACKENDS, 'auto']}, got {backend!r}")
    allowed = (
        sorted({p for b in BACKENDS for p in PRECISIONS[b] if p != "fp16"})
        if backend == "auto"
        else list(PRECISIONS[backend])
    ) + ["auto"]
    if precision not in allowed:
        raise InputError(
            f"precision for the {backend} backend must be one of {allowed}, got {precision!r}"
        )
    for option, value, low in (
        ("chunk_overlap", chunk_overlap, 0),
        ("token_budget", token_budget, 1),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise InputError(f"{option} must be an integer >= {low}, got {value!r}")
    if threads is not None and (
        isinstance(threads, bool) or not isinstance(threads, int) or threads < 1
    ):
        raise InputError(f"threads must be a positive integer, got {threads!r}")
    if padding_side not in (None, "left", "right"):
        raise InputError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
    if pooling is not None and pooling not in POOLING_MODES:
        raise InputError(f"pooling must be one of {list(POOLING_MODES)}, got {pooling!r}")


def _load_torch(
    name: str,
    config: ModelDirConfig,
    *,
    precision,
    device,
    pooling,
    max_tokens,
    padding_side,
    chunk_overlap,
    threads,
    token_budget,
    layers=None,
    dim=None,
):
    require("torch")
    import torch

    from uniembed.encoders.transformer import TransformerEncoder

    if threads:
        torch.set_num_threads(threads)
    warn_unless_strict()
    tokenizer = _load_tokenizer(config.weights_dir)
    body = _load_body(config.weights_dir)
    _check_vocabulary(tokenizer, body, config.weights_dir)
    if layers is not None:
        _keep_layers(body, layers)
    if dim is not None and dim > body.config.hidden_size:
        raise InputError(f"dim must be at most the model's {body.config.hidden_size}, got {dim}")
    positions = getattr(body.config, "max_position_embeddings", None)
    limit = _max_tokens(max_tokens, config, positions, getattr(tokenizer, "model_max_length", None))
    if precision != "fp32":
        if (
            precision == "fp16"
            and not (device or "").startswith("cuda")
            and not torch.cuda.is_available()
        ):
            raise InputError("precision fp16 needs a CUDA device; on a CPU use bf16")
        on_cpu = (device or "").startswith("cpu") or not (device or torch.cuda.is_available())
        if precision == "bf16" and on_cpu and not cpu_has_bf16():
            warnings.warn(
                "this CPU has no bfloat16 instructions (AVX512-BF16 or AMX): precision bf16 will run "
                "slower than fp32 here; use precision='fp32' or backend='onnx'",
                RuntimeWarning,
                stacklevel=2,
            )
        body = body.to(torch.bfloat16 if precision == "bf16" else torch.float16)
    try:
        return TransformerEncoder(
            name,
            body,
            tokenizer,
            pooling=pooling or config.pooling or "mean",
            max_tokens=limit,
            prompts=config.prompts,
            default_prompt=config.default_prompt,
            padding_side=padding_side,
            chunk_overlap=chunk_overlap,
            lowercase=config.lowercase,
            device=device,
            token_budget=token_budget,
            precision=precision,
            output_dim=dim,
            layers=layers,
        )
    except ValueError as exc:
        raise ModelLoadError(f"cannot build an encoder from {config.weights_dir}: {exc}") from exc


def _check_vocabulary(tokenizer, body, directory: Path) -> None:
    """A tokenizer that can emit ids past the embedding table would fail with IndexError on the
    first text holding such a token (a 500 in the service): refuse the pair at load time."""
    rows = body.get_input_embeddings().num_embeddings
    if len(tokenizer) > rows:
        raise ModelLoadError(
            f"the tokenizer in {directory} has {len(tokenizer)} tokens but the model's embedding table "
            f"has {rows} rows: they do not belong together"
        )


def _keep_layers(body, layers: int) -> None:
    """Cut a BERT-like body to its first `layers` transformer layers, in place."""
    stack = getattr(getattr(body, "encoder", None), "layer", None)
    if stack is None:
        raise InputError(
            f"layers= needs a BERT-like model (encoder.layer); {type(body).__name__} has none"
        )
    if layers > len(stack):
        raise InputError(f"layers must be at most the model's {len(stack)}, got {layers}")
    body.encoder.layer = stack[:layers]
    body.config.num_hidden_layers = layers


def _load_onnx(
    name: str,
    config: ModelDirConfig,
    *,
    backend,
    precision,
    device,
    pooling,
    max_tokens,
    padding_side,
    chunk_overlap,
    threads,
    token_budget,
):
    """The onnx and openvino backends: both run the model's cached ONNX export."""
    from uniembed.encoders.onnx import OnnxEncoder, base_fingerprint, ensure_export
    from uniembed.encoders.onnx_export import read_export_info

    if device not in (None, "cpu"):
        raise InputError(
            f"the {backend} backend runs on the CPU; got device={device!r} (use backend='torch' for GPUs)"
        )
    if backend == "openvino":
        require("openvino")  # before a minute of exporting
    digest = weights_digest(config.weights_dir)
    folder = ensure_export(config.weights_dir, digest, precision if backend == "onnx" else "fp32")
    info = read_export_info(folder)
    limit = _max_tokens(max_tokens, config, info.get("max_positions"), info.get("model_max_length"))
    mode = pooling or config.pooling or "mean"
    extra = {}
    if backend == "openvino":
        from uniembed.encoders.openvino import OpenVinoEncoder as encoder_class

        extra["weights_dir"] = config.weights_dir  # converted by OpenVINO's PyTorch frontend
    else:
        encoder_class = OnnxEncoder
    return encoder_class(
        name,
        folder,
        precision=precision,
        pooling=mode,
        max_tokens=limit,
        prompts=config.prompts,
        default_prompt=config.default_prompt,
        lowercase=config.lowercase,
        chunk_overlap=chunk_overlap,
        padding_side=padding_side,
        threads=threads,
        token_budget=token_budget,
        base_fingerprint=base_fingerprint(digest, mode, limit, config.prompts, info["hidden_size"]),
        **extra,
    )


def _load_tokenizer(directory: Path):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(directory), local_files_only=True)
    except Exception as exc:  # corrupt or partial tokenizer files raise many types
        raise ModelLoadError(
            f"cannot load the tokenizer in {directory}: {type(exc).__name__}: {str(exc)[:300]}"
        ) from exc


def _load_body(directory: Path):
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a per-tensor "Loading weights" bar is noise for users
    try:
        # use_safetensors=True: never fall back to pickle weights
        return AutoModel.from_pretrained(
            str(directory), local_files_only=True, use_safetensors=True
        )
    except Exception as exc:
        raise ModelLoadError(
            f"cannot load the weights in {directory}: {type(exc).__name__}: {str(exc)[:300]}"
        ) from exc
    finally:
        hf_logging.enable_progress_bar()


def _max_tokens(requested: int | None, config: ModelDirConfig, positions, tokenizer_limit) -> int:
    if requested is not None:
        if isinstance(requested, bool) or not isinstance(requested, int) or requested < 2:
            raise InputError(f"max_tokens must be an integer >= 2, got {requested!r}")
        if isinstance(positions, int) and requested > positions:
            raise InputError(
                f"max_tokens={requested} exceeds the model's {positions} position embeddings"
            )
        return requested
    if config.max_tokens:
        return int(config.max_tokens)
    # tokenizers without a limit report a huge sentinel (1e30); position embeddings bound the rest
    usable = [
        int(x) for x in (positions, tokenizer_limit) if isinstance(x, int) and 0 < x < 1_000_000
    ]
    return min(usable) if usable else 512


def _register_shipped_kinds() -> None:
    from uniembed.encoders.bound import is_bound_model
    from uniembed.encoders.image_models import DUAL_MODEL_TYPES, VLM_MODEL_TYPES

    register_kind(
        ModelKind(
            "bound",
            recognise=is_bound_model,
            load=_load_bound,
            takes=frozenset({"chunk_overlap", "token_budget"}),
            fixed_by="the anchor's settings were fixed when binding",
        )
    )
    register_kind(
        ModelKind(
            "static",
            recognise=_is_static,
            load=_load_static,
            takes=frozenset({"chunk_overlap", "token_budget"}),
            fixed_by="its distillation fixes them",
        )
    )
    for model_type in DUAL_MODEL_TYPES + VLM_MODEL_TYPES:
        register_kind(_image_kind(model_type))
    # last: any other directory with a config and weights is a text transformer
    register_kind(
        ModelKind("transformer", recognise=lambda directory: True, load=_load_transformer)
    )


_register_shipped_kinds()
