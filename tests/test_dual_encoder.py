"""CLIP and SigLIP directories: vectors equal transformers' own features; images, items and the
fingerprint; text-only models refuse images clearly."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("PIL")
from PIL import Image

import uniembed
from helpers import write_tiny_dual
from uniembed.errors import InputError

TEXTS = [
    "a cat sat on the mat",
    "the sun",
    "blue rain and red money sent to the bank twice, not once",
]


@pytest.fixture(scope="module", params=["clip", "siglip"])
def dual_dir(request, tmp_path_factory):
    return write_tiny_dual(tmp_path_factory.mktemp(request.param) / request.param, request.param)


@pytest.fixture(scope="module")
def dual(dual_dir):
    return uniembed.load(dual_dir, device="cpu")


def photos(n: int = 3, size=(40, 56)) -> list[Image.Image]:
    rng = np.random.default_rng(1)
    return [
        Image.fromarray(rng.integers(0, 256, size=(*size, 3), dtype=np.uint8)) for _ in range(n)
    ]


def _reference(dual_dir):
    """transformers' model, tokenizer and processor for the same directory."""
    import json

    from transformers import AutoModel, AutoTokenizer
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil
    from transformers.models.siglip.image_processing_pil_siglip import SiglipImageProcessorPil

    config = json.loads((dual_dir / "preprocessor_config.json").read_text())
    processor_class = (
        CLIPImageProcessorPil
        if config["image_processor_type"].startswith("CLIP")
        else SiglipImageProcessorPil
    )
    keys = (
        "size",
        "crop_size",
        "do_center_crop",
        "image_mean",
        "image_std",
        "resample",
        "rescale_factor",
    )
    processor = processor_class(**{k: config[k] for k in keys if k in config})
    return (
        AutoModel.from_pretrained(dual_dir).eval(),
        AutoTokenizer.from_pretrained(dual_dir),
        processor,
    )


def _normalised(output) -> np.ndarray:
    import torch

    tensor = output if isinstance(output, torch.Tensor) else output.pooler_output
    return torch.nn.functional.normalize(tensor, dim=-1).detach().numpy()


def test_vectors_equal_transformers_features(dual, dual_dir):
    model, tokenizer, processor = _reference(dual_dir)
    if dual.kind == "clip":
        text_inputs = tokenizer(TEXTS, padding=True, return_tensors="pt")
        expected_text = _normalised(
            model.get_text_features(
                input_ids=text_inputs["input_ids"], attention_mask=text_inputs["attention_mask"]
            )
        )
    else:
        text_inputs = tokenizer(
            TEXTS, padding="max_length", max_length=24, truncation=True, return_tensors="pt"
        )
        expected_text = _normalised(model.get_text_features(input_ids=text_inputs["input_ids"]))
    np.testing.assert_allclose(dual.encode(TEXTS, batch_size=2), expected_text, atol=1e-5)
    images = photos()
    pixel_values = processor(images=images, return_tensors="pt")["pixel_values"]
    expected_images = _normalised(model.get_image_features(pixel_values=pixel_values))
    np.testing.assert_allclose(dual.encode_images(images, batch_size=2), expected_images, atol=1e-5)


def test_features_reads_both_transformers_return_shapes():
    import torch
    from transformers.modeling_outputs import BaseModelOutputWithPooling

    from uniembed.encoders.dual import features

    tensor = torch.ones(2, 3)
    assert features(tensor) is tensor  # transformers 4.x
    assert features(BaseModelOutputWithPooling(pooler_output=tensor)) is tensor  # 5.x


def test_images_in_every_form_and_batches_agree(dual, tmp_path):
    image = photos(1)[0]
    image.save(tmp_path / "a.png")
    forms = [image, np.asarray(image), str(tmp_path / "a.png"), (tmp_path / "a.png").read_bytes()]
    vectors = dual.encode_images(forms, batch_size=3)
    assert np.allclose(vectors, vectors[0], atol=1e-6)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    assert dual.encode_images(forms, dim=8).shape == (4, 8)


def test_items_fuse_by_the_documented_rule(dual):
    image = photos(1)[0]
    text_vector = dual.encode(["what breed is this?"], prompt="query")[0]
    image_vector = dual.encode_images([image])[0]
    items = dual.encode_items(
        [
            {"image": image, "text": "what breed is this?"},
            {"text": "what breed is this?"},
            {"image": image},
        ],
        image_weight=0.3,
        prompt="query",
    )
    fused = 0.3 * image_vector + 0.7 * text_vector
    np.testing.assert_allclose(items[0], fused / np.linalg.norm(fused), atol=1e-5)
    np.testing.assert_allclose(items[1], text_vector, atol=1e-6)
    np.testing.assert_allclose(items[2], image_vector, atol=1e-6)


@pytest.mark.parametrize(
    "items, message",
    [
        ([{"image": None, "text": None}], "neither"),
        ([{"picture": "a.png"}], "unknown key"),
        ([{"text": ""}], "non-empty"),
        (["just a string"], "expected a dict"),
        ({"text": "x"}, "single dict"),
        ([], "at least one"),
        ([{"text": "x"}, {"image": "data:image/png;base64,@@@"}], "item 1"),
    ],
)
def test_bad_items_are_named(dual, items, message):
    with pytest.raises(InputError, match=message):
        dual.encode_items(items)
    with pytest.raises(InputError, match="image_weight"):
        dual.encode_items([{"text": "x"}], image_weight=1.5)


def test_bad_image_lists_are_named(dual):
    with pytest.raises(InputError, match="image 1"):
        dual.encode_images([photos(1)[0], b"not an image"])
    with pytest.raises(InputError, match="image 0"):
        dual.encode_images(["a photo of a cat"])  # texts handed to encode_images
    with pytest.raises(InputError, match="wrap it in a list"):
        dual.encode_images(photos(1)[0])
    with pytest.raises(InputError, match="encode_items"):
        dual.encode_images([{"image": photos(1)[0]}])


def test_fingerprint_covers_both_towers(dual_dir, tmp_path):
    from safetensors.torch import load_file, save_file

    original = uniembed.load(dual_dir, device="cpu").fingerprint
    changed = tmp_path / "changed"
    import shutil

    shutil.copytree(dual_dir, changed)
    weights = load_file(changed / "model.safetensors")
    name = next(k for k in weights if "vision" in k and k.endswith("weight"))
    weights[name] = weights[name] + 0.01  # only the image tower changes
    save_file(weights, changed / "model.safetensors", metadata={"format": "pt"})
    assert uniembed.load(changed, device="cpu").fingerprint != original


def test_text_only_models_refuse_images_but_take_text_items(tiny_model):
    with pytest.raises(InputError, match="text only"):
        tiny_model.encode_images([photos(1)[0]])
    with pytest.raises(InputError, match="item 1 holds an image"):
        tiny_model.encode_items([{"text": "a cat"}, {"image": photos(1)[0]}])
    np.testing.assert_allclose(
        tiny_model.encode_items([{"text": "a cat"}]), tiny_model.encode(["a cat"]), atol=1e-6
    )


def test_dual_models_refuse_options_they_do_not_have(dual_dir):
    with pytest.raises(InputError, match="torch backend"):
        uniembed.load(dual_dir, backend="onnx")
    with pytest.raises(InputError, match="pooling"):
        uniembed.load(dual_dir, pooling="cls")
