"""The trained part of a bound model: a small image encoder (a CNN) or a projector over vectors
from any other encoder. Each is built from a small JSON-able config (saved with the model), so a
model directory is weights (safetensors) + JSON, never pickle.

    image tower:  {"kind": "cnn", "channels": [32, 64, 128, 256], "dim": 384, "image_size": 32}
    projector:    {"kind": "mlp", "in_dim": 128, "hidden": 512, "layers": 2, "dim": 384}
                  {"kind": "linear", "in_dim": 128, "dim": 384}
"""

from __future__ import annotations

from uniembed.errors import InputError

TOWER_KINDS = ("cnn", "linear", "mlp")
IMAGE_TOWERS = ("cnn",)
DEFAULT_CHANNELS = (32, 64, 128, 256)


def check_tower_config(config: dict) -> dict:
    """The config with its defaults filled in, or InputError naming the bad value."""
    if not isinstance(config, dict) or config.get("kind") not in TOWER_KINDS:
        raise InputError(
            f"a tower kind must be one of {list(TOWER_KINDS)}, "
            f"got {config.get('kind') if isinstance(config, dict) else config!r}"
        )
    out = dict(config)
    _positive_int(out, "dim")
    if out["kind"] == "cnn":
        out.setdefault("channels", list(DEFAULT_CHANNELS))
        out.setdefault("image_size", 32)
        channels = out["channels"]
        if (
            not isinstance(channels, (list, tuple))
            or not channels
            or any(isinstance(c, bool) or not isinstance(c, int) or c < 1 for c in channels)
        ):
            raise InputError(f"channels must be a list of positive integers, got {channels!r}")
        out["channels"] = list(channels)
        _positive_int(out, "image_size")
        if out["image_size"] < 2 ** len(channels):
            raise InputError(
                f"image_size {out['image_size']} is too small for {len(channels)} halving stages "
                f"(at least {2 ** len(channels)})"
            )
    else:
        _positive_int(out, "in_dim")
        if out["kind"] == "mlp":
            out.setdefault("hidden", 4 * out["dim"])
            out.setdefault("layers", 2)
            _positive_int(out, "hidden")
            _positive_int(out, "layers")
    return out


def _positive_int(config: dict, key: str) -> None:
    value = config.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(f"{key} must be a positive integer, got {value!r}")


def build_tower(config: dict):
    """A torch module for a checked config: (n, 3, H, W) pixels or (n, in_dim) vectors -> (n, dim)."""
    import torch
    from torch import nn

    config = check_tower_config(config)
    if config["kind"] == "linear":
        return nn.Linear(config["in_dim"], config["dim"])
    if config["kind"] == "mlp":
        layers, width = [], config["in_dim"]
        for _ in range(config["layers"] - 1):
            layers += [nn.Linear(width, config["hidden"]), nn.GELU()]
            width = config["hidden"]
        return nn.Sequential(*layers, nn.Linear(width, config["dim"]))

    class SmallCNN(nn.Module):
        """Per stage: two 3x3 conv + batch norm + ReLU, then 2x2 max pooling; global average and
        max pooling of the last stage, concatenated, then a linear map to the anchor's dim."""

        def __init__(self, channels: list[int], dim: int):
            super().__init__()
            stages, width = [], 3
            for out in channels:
                stages += [
                    nn.Conv2d(width, out, 3, padding=1, bias=False),
                    nn.BatchNorm2d(out),
                    nn.ReLU(inplace=True),
                    nn.Conv2d(out, out, 3, padding=1, bias=False),
                    nn.BatchNorm2d(out),
                    nn.ReLU(inplace=True),
                    nn.MaxPool2d(2),
                ]
                width = out
            self.features = nn.Sequential(*stages)
            self.head = nn.Linear(2 * width, dim)

        def forward(self, pixels: torch.Tensor) -> torch.Tensor:
            maps = self.features(pixels)
            pooled = torch.cat([maps.mean(dim=(2, 3)), maps.amax(dim=(2, 3))], dim=1)
            return self.head(pooled)

    return SmallCNN(config["channels"], config["dim"])


def tower_preprocessing(config: dict):
    """How an image tower wants its pixels: the image resized (bicubic) so its shorter side is
    `image_size`, centre-cropped square, scaled to [-1, 1]."""
    from uniembed.images.preprocess import ImagePreprocessing

    size = config["image_size"]
    return ImagePreprocessing(
        shortest_edge=size,
        crop=(size, size),
        resample=3,
        rescale_factor=1 / 255,
        mean=(0.5, 0.5, 0.5),
        std=(0.5, 0.5, 0.5),
    )
