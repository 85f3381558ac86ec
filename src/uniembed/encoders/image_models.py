"""What CLIP, SigLIP and VLM directories share: telling them apart by config.json, and reading
the model, its tokenizer and its image settings (safetensors only)."""

from __future__ import annotations

from pathlib import Path

from uniembed.errors import ModelLoadError

DUAL_MODEL_TYPES = ("clip", "siglip")
VLM_MODEL_TYPES = ("llava",)


def image_model_type(directory: Path) -> str | None:
    """ "clip", "siglip" (dual encoders) or "llava" (a VLM) when `directory` holds such a model, else None."""
    from uniembed._json import read_json

    config_file = Path(directory) / "config.json"
    if not config_file.is_file():
        return None
    config = read_json(config_file)
    kind = config.get("model_type") if isinstance(config, dict) else None
    return kind if kind in DUAL_MODEL_TYPES + VLM_MODEL_TYPES else None


def read_image_model(directory: Path, what: str, threads: int | None = None):
    """(transformers model, tokenizer, ImagePreprocessing) of an image model directory; `what`
    names the kind of model in errors."""
    from uniembed._extras import require

    require("torch")
    require("images")
    import torch
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    from uniembed.images.preprocess import read_preprocessing

    if threads:
        torch.set_num_threads(threads)
    preprocessing = read_preprocessing(directory)
    hf_logging.disable_progress_bar()  # a per-tensor "Loading weights" bar is noise for users
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(directory), local_files_only=True)
        model = AutoModel.from_pretrained(
            str(directory), local_files_only=True, use_safetensors=True
        )
    except Exception as exc:  # corrupt or partial files raise many types
        raise ModelLoadError(
            f"cannot load the {what} in {directory}: {type(exc).__name__}: {str(exc)[:300]}"
        ) from exc
    return model, tokenizer, preprocessing
