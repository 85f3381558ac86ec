"""Reading a model directory: sentence-transformers layout or a plain Hugging Face encoder.

Only the configuration is read here (JSON files); weights are loaded by `load.py`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from uniembed._json import read_json
from uniembed.errors import ModelLoadError

# sentence-transformers pooling flags -> our pooling mode names
_ST_POOLING_FLAGS = {
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_cls_token": "cls",
    "pooling_mode_lasttoken": "lasttoken",
    "pooling_mode_max_tokens": "max",
}
_ST_UNSUPPORTED_FLAGS = ("pooling_mode_mean_sqrt_len_tokens", "pooling_mode_weightedmean_tokens")
_ST_MODULES = ("Transformer", "Pooling", "Normalize", "Dense")


@dataclass(frozen=True)
class ModelDirConfig:
    """What a model directory says about how to embed with it."""

    weights_dir: Path  # holds config.json, the safetensors weights and the tokenizer
    pooling: str | None  # None: the directory does not say (plain HF encoder)
    max_tokens: int | None  # None: take it from the tokenizer / model config
    prompts: dict[str, str] = field(default_factory=dict)
    default_prompt: str | None = None  # prompt name used when encode() is given none
    lowercase: bool = False
    token_head_dir: Path | None = None  # a per-token Dense head (ColBERT / PyLate layout)


def read_model_dir(directory: Path) -> ModelDirConfig:
    """The embedding configuration of `directory`; ModelLoadError if files are missing or corrupt."""
    directory = Path(directory)
    modules_file = directory / "modules.json"
    if modules_file.is_file():
        config = _read_sentence_transformers_dir(directory, read_json(modules_file))
    else:
        config = ModelDirConfig(weights_dir=directory, pooling=None, max_tokens=None)
    check_weights_dir(config.weights_dir)
    return config


def _read_sentence_transformers_dir(directory: Path, modules: object) -> ModelDirConfig:
    if not isinstance(modules, list) or not all(
        isinstance(m, dict) and "type" in m for m in modules
    ):
        raise ModelLoadError(
            f"{directory / 'modules.json'} must be a list of {{'type', 'path'}} objects"
        )
    by_kind: dict[str, Path] = {}
    for module in modules:
        kind = str(module["type"]).rsplit(".", 1)[-1]
        if kind not in _ST_MODULES:
            raise ModelLoadError(
                f"{directory}: module type {module['type']!r} is not supported (supported: {', '.join(_ST_MODULES)})"
            )
        by_kind[kind] = directory / module.get("path", "")
    weights_dir = by_kind.get("Transformer", directory)
    if "Dense" in by_kind and "Pooling" in by_kind:
        # a Dense after pooling projects the sentence vector; skipping it would give wrong vectors
        raise ModelLoadError(
            f"{directory}: a Dense module after Pooling is not supported yet (refused rather than skipped)"
        )
    pooling = _read_st_pooling(by_kind["Pooling"]) if "Pooling" in by_kind else None
    st_config = _first_json(
        weights_dir / "sentence_bert_config.json", directory / "sentence_bert_config.json"
    )
    extra = _first_json(directory / "config_sentence_transformers.json")
    prompts = extra.get("prompts") or {}
    if not isinstance(prompts, dict) or not all(isinstance(v, str) for v in prompts.values()):
        raise ModelLoadError(
            f"{directory / 'config_sentence_transformers.json'}: 'prompts' must map names to strings"
        )
    default_prompt = extra.get("default_prompt_name")
    if default_prompt is not None and default_prompt not in prompts:
        raise ModelLoadError(
            f"{directory / 'config_sentence_transformers.json'}: default_prompt_name {default_prompt!r} is not among "
            f"the prompts {sorted(prompts)}"
        )
    return ModelDirConfig(
        weights_dir=weights_dir,
        pooling=pooling,
        max_tokens=st_config.get("max_seq_length"),
        prompts=dict(prompts),
        default_prompt=default_prompt,
        lowercase=bool(st_config.get("do_lower_case", False)),
        token_head_dir=by_kind.get("Dense"),
    )


def _first_json(*paths: Path) -> dict:
    for path in paths:
        if path.is_file():
            data = read_json(path)
            if not isinstance(data, dict):
                raise ModelLoadError(f"{path} must hold a JSON object")
            return data
    return {}


def _read_st_pooling(pooling_dir: Path) -> str:
    config_file = pooling_dir / "config.json"
    if not config_file.is_file():
        raise ModelLoadError(f"pooling module {pooling_dir} has no config.json")
    config = read_json(config_file)
    if not isinstance(config, dict):
        raise ModelLoadError(f"{config_file} must hold a JSON object")
    unsupported = [flag for flag in _ST_UNSUPPORTED_FLAGS if config.get(flag)]
    chosen = [mode for flag, mode in _ST_POOLING_FLAGS.items() if config.get(flag)]
    if config.get("include_prompt") is False:
        # sentence-transformers then leaves the prompt's tokens out of the mean; we do not (yet)
        raise ModelLoadError(
            f"{config_file}: include_prompt=false (pooling without the prompt tokens) is not supported yet"
        )
    if unsupported or len(chosen) != 1:
        raise ModelLoadError(
            f"{config_file}: exactly one of mean, cls, lasttoken, max pooling must be on; found {chosen + unsupported}"
        )
    return chosen[0]


def check_weights_dir(directory: Path) -> None:
    """ModelLoadError naming what is missing from a transformer weights directory."""
    if not directory.is_dir():
        raise ModelLoadError(f"model directory {directory} does not exist")
    missing = []
    if not (directory / "config.json").is_file():
        missing.append("config.json")
    has_safetensors = (directory / "model.safetensors").is_file() or (
        directory / "model.safetensors.index.json"
    ).is_file()
    if not has_safetensors:
        if any(
            (directory / name).is_file()
            for name in ("pytorch_model.bin", "model.bin", "pytorch_model.bin.index.json")
        ):
            raise ModelLoadError(
                f"{directory} has only pickle weights (pytorch_model.bin); uniembed loads safetensors only, "
                f"for safety. Convert them to model.safetensors first"
            )
        missing.append("model.safetensors")
    if not any(
        (directory / name).is_file()
        for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt")
    ):
        missing.append("tokenizer.json (or tokenizer_config.json / vocab.txt)")
    if missing:
        raise ModelLoadError(f"model directory {directory} is missing {', '.join(missing)}")
