"""A bound model: a trained tower (uniembed.bind.training) plus its frozen anchor, as one encoder.

Texts go to the anchor unchanged (the same vectors, the same fingerprint: a collection the anchor
made accepts this model, so it can be searched by image); images (or vectors from another
encoder, for a projector) go through the tower into the anchor's space.

A model directory: `uniembed_bind.json` (the anchor by name and fingerprint, the tower's config,
the training card), `tower.safetensors`, and for image towers `preprocessor_config.json` (the
tower's pixels, in transformers' format). `uniembed.load(directory)` opens it; an anchor that is
missing, or whose fingerprint differs from the recorded one, is a clear error.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from uniembed.encoders.base import Encoder, LongPolicy, digest
from uniembed.encoders.multimodal import ImageTower
from uniembed.errors import InputError, ModelLoadError
from uniembed.images.decode import DEFAULT_LIMITS

BIND_CONFIG_FILE = "uniembed_bind.json"
TOWER_FILE = "tower.safetensors"
FORMAT = 1


class BoundEncoder(ImageTower, Encoder):
    """Texts by the anchor, images (or another encoder's vectors) by the trained tower."""

    bound = True

    def __init__(
        self,
        name: str,
        anchor: Encoder,
        tower,
        tower_config: dict,
        *,
        weights_digest: str,
        device: str | None = None,
    ):
        import torch

        super().__init__(
            name,
            anchor.dim,
            prompts=anchor.prompts,
            default_prompt=anchor.default_prompt,
            max_tokens=anchor.max_tokens,
        )
        self.anchor = anchor
        self.tower_config = tower_config
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.tower = tower.to(self.device).eval()
        if tower_config["kind"] == "cnn":
            self.tower = self.tower.to(
                memory_format=torch.channels_last
            )  # as trained: faster on CPUs
        self.limits = DEFAULT_LIMITS
        self._weights_digest = weights_digest
        if tower_config["kind"] == "cnn":
            from uniembed.encoders.towers import tower_preprocessing

            self.modalities = ("text", "image")
            self.preprocessing = tower_preprocessing(tower_config)
        else:
            self.modalities = ("text", "vector")
            self.preprocessing = None

    @property
    def fingerprint(self) -> str:
        """The anchor's: text vectors are the anchor's own, so its collections accept this model."""
        return self.anchor.fingerprint

    @property
    def image_fingerprint(self) -> str:
        """What makes the image (or input-vector) side: the tower's weights and config, and the anchor."""
        return digest("bound", self.anchor.fingerprint, self._weights_digest, self.tower_config)

    # -- texts: the anchor's, unchanged ------------------------------------------------------------
    def encode_batch(self, texts: list[str], *, long: LongPolicy = "truncate") -> np.ndarray:
        return self.anchor.encode_batch(texts, long=long)

    def encode(self, texts, **options) -> np.ndarray:
        return self.anchor.encode(texts, **options)

    @property
    def last_report(self):
        return self.anchor.last_report

    # -- the tower ----------------------------------------------------------------------------------
    def encode_images(self, images, **options) -> np.ndarray:
        if self.preprocessing is None:
            raise InputError(
                f"{self.name} binds vectors of {self.tower_config['in_dim']} dims, not images: "
                "use encode_vectors"
            )
        return super().encode_images(images, **options)

    def encode_image_batch(self, pixel_values: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            pixels = (
                torch.from_numpy(pixel_values)
                .to(self.device)
                .contiguous(memory_format=torch.channels_last)
            )
            return self.tower(pixels).float().cpu().numpy()

    def encode_vectors(
        self, vectors, *, normalize: bool = True, batch_size: int = 4096
    ) -> np.ndarray:
        """(n, in_dim) vectors from the other encoder -> (n, dim) vectors in the anchor's space."""
        import torch

        from uniembed.compress.truncate import l2_normalize

        if self.preprocessing is not None:
            raise InputError(f"{self.name} binds images; it has no projector for vectors")
        in_dim = self.tower_config["in_dim"]
        try:
            array = np.asarray(vectors, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise InputError(f"vectors must be an (n, {in_dim}) array of numbers: {exc}") from None
        if array.ndim != 2 or array.shape[1] != in_dim or not len(array):
            raise InputError(f"vectors must be an (n, {in_dim}) array, got shape {array.shape}")
        if not np.isfinite(array).all():
            raise InputError("vectors contain NaN or inf")
        out = []
        with torch.inference_mode():
            for start in range(0, len(array), batch_size):
                chunk = torch.from_numpy(array[start : start + batch_size]).to(self.device)
                out.append(self.tower(chunk).float().cpu().numpy())
        result = np.concatenate(out)
        return l2_normalize(result) if normalize else result


def save_bound(
    output: Path, anchor: Encoder, anchor_spec: str, tower_config: dict, weights: dict, card: dict
) -> Path:
    """Write a bound model directory at once (staged, then renamed: never half a model)."""
    from safetensors.torch import save_file

    from uniembed._atomic import atomic_folder

    output = Path(output)
    if output.exists():
        raise InputError(f"{output} already exists: choose a new output folder")
    tensors = {k: v.detach().cpu().contiguous() for k, v in weights.items() if k != "logit_scale"}
    logit_scale = (
        float(weights["logit_scale"].reshape(-1)[0].exp()) if "logit_scale" in weights else None
    )
    config = {
        "format": FORMAT,
        "anchor": {
            "model": _anchor_reference(anchor_spec),
            "name": anchor.name,
            "fingerprint": anchor.fingerprint,
            "dim": anchor.dim,
        },
        "tower": tower_config,
        "logit_scale": logit_scale,
        "training": card,
    }
    with atomic_folder(output) as staging:
        save_file(tensors, str(staging / TOWER_FILE))
        if tower_config["kind"] == "cnn":
            from uniembed.encoders.towers import tower_preprocessing

            (staging / "preprocessor_config.json").write_text(
                json.dumps(tower_preprocessing(tower_config).to_config(), indent=2)
            )
        (staging / BIND_CONFIG_FILE).write_text(json.dumps(config, indent=2))
    return output


def _anchor_reference(spec: str) -> str:
    """How the model records its anchor: a catalogue name as is, a local folder as an absolute path."""
    from uniembed.encoders.registry import find_entry

    if spec == "default" or find_entry(spec) is not None:
        return spec
    path = Path(spec).expanduser()
    return str(path.resolve()) if path.exists() else spec


def is_bound_model(directory: Path) -> bool:
    return (Path(directory) / BIND_CONFIG_FILE).is_file()


def load_bound(
    directory: Path,
    *,
    name: str | None = None,
    device: str | None = None,
    threads: int | None = None,
) -> BoundEncoder:
    """Open a bound model directory: its anchor (checked against the recorded fingerprint) and tower."""
    from uniembed._extras import require

    require("torch")
    from safetensors.torch import load_file

    from uniembed.encoders.load import load
    from uniembed.encoders.towers import build_tower, check_tower_config

    directory = Path(directory)
    try:
        config = json.loads((directory / BIND_CONFIG_FILE).read_text())
        anchor_info, tower_config = config["anchor"], check_tower_config(config["tower"])
        recorded = anchor_info["model"], anchor_info["fingerprint"]
    except (OSError, ValueError, KeyError, TypeError, InputError) as exc:
        raise ModelLoadError(
            f"{directory} is not a readable bound model: {type(exc).__name__}: {exc}"
        ) from exc
    if config.get("format") != FORMAT:
        raise ModelLoadError(
            f"{directory}: bound model format {config.get('format')!r}; this uniembed reads format {FORMAT}"
        )
    try:
        anchor = load(
            None if recorded[0] == "default" else recorded[0], device=device, threads=threads
        )
    except ModelLoadError as exc:
        raise ModelLoadError(
            f"{directory} is bound to the anchor {recorded[0]}, which cannot be loaded (moved or "
            f"deleted?): {exc}"
        ) from exc
    if anchor.fingerprint != recorded[1]:
        raise ModelLoadError(
            f"{directory} was bound to {recorded[0]} with fingerprint {recorded[1][:12]}; the model "
            f"found there now has fingerprint {anchor.fingerprint[:12]}: its text vectors differ, so "
            "the bound tower does not fit it"
        )
    if tower_config["dim"] != anchor.dim:
        raise ModelLoadError(
            f"{directory}: the tower makes {tower_config['dim']} dims, the anchor {anchor.dim}"
        )
    weights_file = directory / TOWER_FILE
    try:
        tensors = load_file(str(weights_file))
        tower = build_tower(tower_config)
        tower.load_state_dict(tensors)
    except Exception as exc:  # a truncated file, wrong shapes: one clear error
        raise ModelLoadError(
            f"{directory}: cannot load {TOWER_FILE}: {type(exc).__name__}: {str(exc)[:300]}"
        ) from exc
    from uniembed.encoders.registry import (
        file_sha256,
    )  # remembered per process: a pinned model is hashed once

    digest = file_sha256(weights_file)
    encoder = BoundEncoder(
        name or directory.name, anchor, tower, tower_config, weights_digest=digest, device=device
    )
    encoder.source = str(directory)
    encoder.training = config.get("training", {})
    return encoder
