"""Vision-language model encoders, VLM2Vec style: one sequence through a LLaVA-layout model.

An item becomes one token sequence: the tokenizer's beginning-of-sequence token, the image's
placeholder tokens (as many as the vision tower yields features: (image_size / patch_size)^2,
plus one when the model keeps the CLS feature), then the text (the prompt's prefix first). The
embedding is the last token's final hidden state (last-token pooling), normalised. Image and
text are fused by the model itself, not by a weighted sum: that is the point of a VLM encoder.
An image-only item reads `IMAGE_INSTRUCTION` as its text, as VLM2Vec gives every image query an
instruction.

Sequences are padded on the right; the last real token of each row is gathered by its attention
mask, so a batch gives the same vectors as one item at a time.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from uniembed.encoders.base import Encoder, LongPolicy, digest
from uniembed.encoders.multimodal import ImageTower, check_image_weight, check_items
from uniembed.errors import InputError, ModelLoadError
from uniembed.images.decode import DEFAULT_LIMITS
from uniembed.images.preprocess import ImagePreprocessing

IMAGE_INSTRUCTION = "Represent the given image."


class VlmEncoder(ImageTower, Encoder):
    """A LLaVA-layout model as an encoder of texts, images and image+text items."""

    fuses_items = True  # multimodal.encode_items hands items to our encode_items

    def __init__(
        self,
        name: str,
        model,
        tokenizer,
        preprocessing: ImagePreprocessing,
        *,
        device: str | None = None,
        max_tokens: int | None = None,
    ):
        import torch

        config = model.config
        text = config.text_config
        limit = int(max_tokens or getattr(text, "max_position_embeddings", 4096))
        super().__init__(name, int(text.hidden_size), max_tokens=limit)
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model = model.to(self.device).eval()
        self.tokenizer = tokenizer
        self.preprocessing = preprocessing
        self.limits = DEFAULT_LIMITS
        self.image_token_id = int(config.image_token_id)
        vision = config.vision_config
        patches = (vision.image_size // vision.patch_size) ** 2
        self.image_tokens = patches + (1 if config.vision_feature_select_strategy == "full" else 0)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self._dtype = next(model.parameters()).dtype
        if self.image_tokens + 2 > self.max_tokens:
            raise ModelLoadError(
                f"{name}: an image takes {self.image_tokens} tokens, more than the model's {self.max_tokens}"
            )

    @property
    def fingerprint(self) -> str:
        if getattr(self, "_fingerprint", None) is None:
            from uniembed.encoders.registry import weights_digest

            weights = weights_digest(Path(self.source)) if self.source else self.name
            self._fingerprint = digest(
                "vlm",
                weights,
                self.preprocessing.to_config(),
                self.max_tokens,
                IMAGE_INSTRUCTION,
                sorted(self.prompts.items()),
                self.dim,
            )
        return self._fingerprint

    # -- sequences -------------------------------------------------------------------------------
    def sequence(self, text: str | None, with_image: bool) -> list[int]:
        """The token ids of one item (see the module docstring)."""
        ids = self.tokenizer(
            text if text is not None else IMAGE_INSTRUCTION, add_special_tokens=True
        )["input_ids"]
        start = (
            1
            if self.tokenizer.bos_token_id is not None and ids[:1] == [self.tokenizer.bos_token_id]
            else 0
        )
        if with_image:
            ids = ids[:start] + [self.image_token_id] * self.image_tokens + ids[start:]
        if len(ids) > self.max_tokens:
            self.note_truncated(1)
            ids = ids[
                : self.max_tokens
            ]  # the image tokens come first and always fit (checked at load)
        return ids

    def _forward(self, sequences: list[list[int]], pixel_values: np.ndarray | None) -> np.ndarray:
        import torch

        width = max(len(s) for s in sequences)
        ids = np.full((len(sequences), width), self.pad_id, dtype=np.int64)
        mask = np.zeros_like(ids)
        for row, sequence in enumerate(sequences):
            ids[row, : len(sequence)] = sequence
            mask[row, : len(sequence)] = 1
        inputs = {
            "input_ids": torch.from_numpy(ids).to(self.device),
            "attention_mask": torch.from_numpy(mask).to(self.device),
        }
        if pixel_values is not None:
            inputs["pixel_values"] = torch.from_numpy(pixel_values).to(self.device, self._dtype)
        with torch.inference_mode():
            hidden = self.model(**inputs).last_hidden_state
            last = torch.from_numpy(mask.sum(axis=1) - 1).to(self.device)
            return (
                hidden[torch.arange(len(sequences), device=self.device), last].float().cpu().numpy()
            )

    # -- the encoder API ---------------------------------------------------------------------------
    def encode_batch(self, texts: list[str], *, long: LongPolicy = "truncate") -> np.ndarray:
        if long != "truncate":
            raise InputError(
                f"long={long!r}: VLM encoders read one window of {self.max_tokens} tokens; use long='truncate'"
            )
        return self._forward([self.sequence(text, False) for text in texts], None)

    def encode_image_batch(self, pixel_values: np.ndarray) -> np.ndarray:
        return self._forward([self.sequence(None, True)] * len(pixel_values), pixel_values)

    def encode_items(
        self,
        items,
        *,
        image_weight: float = 0.5,
        prompt: str | None = None,
        dim: int | None = None,
        batch_size: int = 32,
        show_progress: bool | None = None,
        labels=None,
        base=None,
    ) -> np.ndarray:
        """Items through the model as one sequence each: the model fuses image and text itself
        (`image_weight` does not apply to VLMs and is only checked)."""
        from uniembed.compress.truncate import l2_normalize, truncate
        from uniembed.encoders.base import check_model_output, progress_bar
        from uniembed.images.decode import to_rgb

        items = check_items(items, labels)
        check_image_weight(image_weight)
        self.check_dim(dim)
        names = list(labels) if labels is not None else [f"item {i}" for i in range(len(items))]
        prefix = self.prompt_prefix(prompt)
        out = np.empty((len(items), self.dim), dtype=np.float32)
        for start in progress_bar(
            np.arange(0, len(items), batch_size), len(items), batch_size, show_progress
        ):
            chunk = range(start, min(start + batch_size, len(items)))
            images = [
                self.preprocessing.pixels(
                    to_rgb(items[i]["image"], names[i], self.limits, base=base), names[i]
                )
                for i in chunk
                if "image" in items[i]
            ]  # decoded one at a time, kept as pixels only
            sequences = [
                self.sequence(
                    prefix + items[i]["text"] if "text" in items[i] else None, "image" in items[i]
                )
                for i in chunk
            ]
            pixels = self.preprocessing.stack(images) if images else None
            out[chunk.start : chunk.stop] = self._forward(sequences, pixels)
        check_model_output(out, self.name)
        if dim is not None:
            return truncate(out, dim, normalize=True)
        return l2_normalize(out)


def load_vlm(
    name: str, directory: Path, *, device: str | None = None, threads: int | None = None
) -> VlmEncoder:
    from uniembed.encoders.image_models import read_image_model

    model, tokenizer, preprocessing = read_image_model(directory, "vision-language model", threads)
    if not hasattr(model, "get_image_features"):
        raise ModelLoadError(f"{directory}: {type(model).__name__} is not a vision-language model")
    encoder = VlmEncoder(name, model, tokenizer, preprocessing, device=device)
    encoder.source = str(directory)
    return encoder
