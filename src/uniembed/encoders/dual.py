"""Dual encoders (CLIP, SigLIP): a text tower and an image tower into one space, run by torch.

A model directory in transformers' layout (config.json with model_type "clip" or "siglip",
model.safetensors, the tokenizer, preprocessor_config.json). Vectors are the normalised
`get_text_features` / `get_image_features` of the model, exactly as transformers computes them:
texts are tokenised as the model's processor tokenises them (CLIP: padded to the longest text;
SigLIP: padded to max_length, which is how it was trained and what its last-token pooling needs),
images preprocessed by `uniembed.images.preprocess` (equal to the processor's pixels).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from uniembed.encoders.base import Encoder, LongPolicy, digest
from uniembed.encoders.multimodal import ImageTower
from uniembed.errors import InputError, ModelLoadError
from uniembed.images.decode import DEFAULT_LIMITS, ImageLimits
from uniembed.images.preprocess import ImagePreprocessing


def features(output) -> torch.Tensor:  # noqa: F821 - torch is imported lazily
    """The embedding tensor of get_text_features / get_image_features: transformers 4.x returned
    it; 5.x returns an output object holding it as `pooler_output`."""
    import torch

    if isinstance(output, torch.Tensor):
        return output
    pooled = getattr(output, "pooler_output", None)
    if pooled is None:
        raise ModelLoadError(
            f"the model returned {type(output).__name__} without pooler_output; cannot read its features"
        )
    return pooled


class DualEncoder(ImageTower, Encoder):
    """CLIP or SigLIP: `encode(texts)` and `encode_images(images)` into one space."""

    def __init__(
        self,
        name: str,
        model,
        tokenizer,
        preprocessing: ImagePreprocessing,
        *,
        kind: str,
        device: str | None = None,
        precision: str = "fp32",
        limits: ImageLimits = DEFAULT_LIMITS,
        prompts: dict[str, str] | None = None,
        default_prompt: str | None = None,
    ):
        import torch

        text_config = model.config.text_config
        max_tokens = int(
            min(
                text_config.max_position_embeddings,
                getattr(tokenizer, "model_max_length", 10**9) or 10**9,
            )
        )
        dim = int(getattr(model.config, "projection_dim", None) or text_config.hidden_size)
        super().__init__(
            name, dim, prompts=prompts, default_prompt=default_prompt, max_tokens=max_tokens
        )
        self.kind = kind
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model = model.to(self.device).eval()
        self.tokenizer = tokenizer
        self.preprocessing = preprocessing
        self.limits = limits
        self.precision = precision
        self._dtype = next(model.parameters()).dtype
        # SigLIP pools the last position and was trained on texts padded to max_length
        self._padding = "max_length" if kind == "siglip" else "longest"

    @property
    def fingerprint(self) -> str:
        """Both towers' weights (one safetensors file holds them), the image settings, the text
        length limit, prompts and precision."""
        if getattr(self, "_fingerprint", None) is None:
            from uniembed.encoders.registry import weights_digest

            weights = weights_digest(Path(self.source)) if self.source else self.name
            self._fingerprint = digest(
                "dual",
                self.kind,
                weights,
                self.preprocessing.to_config(),
                self.max_tokens,
                sorted(self.prompts.items()),
                self.dim,
                self.precision,
            )
        return self._fingerprint

    def encode_batch(self, texts: list[str], *, long: LongPolicy = "truncate") -> np.ndarray:
        import torch

        if long != "truncate":
            raise InputError(
                f"long={long!r}: {self.kind.upper()} text towers take one window of {self.max_tokens} tokens; "
                "use long='truncate'"
            )
        lengths = [len(ids) for ids in self.tokenizer(texts, add_special_tokens=True)["input_ids"]]
        self.note_truncated(sum(n > self.max_tokens for n in lengths))
        inputs = self.tokenizer(
            texts,
            padding=self._padding,
            truncation=True,
            max_length=self.max_tokens,
            return_tensors="pt",
        )
        names = (
            ("input_ids", "attention_mask") if self.kind == "clip" else ("input_ids",)
        )  # SigLIP attends to its padding
        with torch.inference_mode():
            output = self.model.get_text_features(
                **{k: inputs[k].to(self.device) for k in names if k in inputs}
            )
        return features(output).float().cpu().numpy()

    def encode_image_batch(self, pixel_values: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            pixels = torch.from_numpy(pixel_values).to(self.device, self._dtype)
            return (
                features(self.model.get_image_features(pixel_values=pixels)).float().cpu().numpy()
            )


def load_dual(
    name: str,
    directory: Path,
    kind: str,
    *,
    precision: str = "fp32",
    device: str | None = None,
    threads: int | None = None,
) -> DualEncoder:
    """A DualEncoder from a local CLIP / SigLIP directory (safetensors weights only)."""
    from uniembed.encoders.image_models import read_image_model

    if precision not in ("fp32", "bf16"):
        raise InputError(
            f"precision for {kind.upper()} models must be 'fp32' or 'bf16', got {precision!r}"
        )
    model, tokenizer, preprocessing = read_image_model(directory, f"{kind.upper()} model", threads)
    if precision == "bf16":
        import torch

        model = model.to(torch.bfloat16)
    encoder = DualEncoder(
        name, model, tokenizer, preprocessing, kind=kind, device=device, precision=precision
    )
    encoder.source = str(directory)
    return encoder
