"""A VLM2Vec-style encoder on a tiny LLaVA built in-process: the vectors equal a plain
transformers forward (last token of one sequence: image tokens, then the text)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("PIL")
from PIL import Image

import uniembed
from helpers import write_tiny_vlm
from uniembed.encoders.vlm import IMAGE_INSTRUCTION
from uniembed.errors import InputError


@pytest.fixture(scope="module")
def vlm_dir(tmp_path_factory):
    return write_tiny_vlm(tmp_path_factory.mktemp("vlm") / "tiny-llava")


@pytest.fixture(scope="module")
def vlm(vlm_dir):
    return uniembed.load(vlm_dir, device="cpu")


def photos(n: int) -> list:
    rng = np.random.default_rng(2)
    return [
        Image.fromarray(rng.integers(0, 256, size=(36, 48, 3), dtype=np.uint8)) for _ in range(n)
    ]


def reference(vlm_dir, text: str | None, image) -> np.ndarray:
    """One item through transformers alone: ids built by hand, pixels by CLIPImageProcessorPil."""
    import torch
    from transformers import AutoModel, AutoTokenizer
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    model, tokenizer = (
        AutoModel.from_pretrained(vlm_dir).eval(),
        AutoTokenizer.from_pretrained(vlm_dir),
    )
    ids = tokenizer(text if text is not None else IMAGE_INSTRUCTION)["input_ids"]
    inputs = {}
    if image is not None:
        ids = [model.config.image_token_id] * 16 + ids  # (32 / 8)^2 patch features, CLS dropped
        processor = CLIPImageProcessorPil(
            size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
        )
        inputs["pixel_values"] = processor(images=[image], return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        last = model(input_ids=torch.tensor([ids]), **inputs).last_hidden_state[0, -1].numpy()
    return last / np.linalg.norm(last)


def test_vectors_equal_a_plain_transformers_forward(vlm, vlm_dir):
    images = photos(2)
    items = [
        {"image": images[0], "text": "what is this cat"},
        {"text": "a dog sat"},
        {"image": images[1]},
    ]
    got = vlm.encode_items(items, batch_size=3)  # one padded batch, images and texts mixed
    for row, item in zip(got, items):
        np.testing.assert_allclose(
            row, reference(vlm_dir, item.get("text"), item.get("image")), atol=1e-5
        )
    np.testing.assert_allclose(vlm.encode(["a dog sat"]), got[1:2], atol=1e-5)
    np.testing.assert_allclose(vlm.encode_images([images[1]]), got[2:3], atol=1e-5)
    one_by_one = np.concatenate([vlm.encode_items([item]) for item in items])
    np.testing.assert_allclose(one_by_one, got, atol=1e-5)


def test_vlm_items_fuse_in_the_model_and_refuse_bad_input(vlm):
    image = photos(1)[0]
    fused = vlm.encode_items([{"image": image, "text": "a red cat"}])[0]
    weighted = (
        vlm.encode_items([{"image": image}])[0] + vlm.encode_items([{"text": "a red cat"}])[0]
    )
    assert not np.allclose(
        fused, weighted / np.linalg.norm(weighted), atol=1e-3
    )  # not a weighted sum
    with pytest.raises(InputError, match="item 0 has neither"):
        vlm.encode_items([{}])
    with pytest.raises(InputError, match="long="):
        vlm.encode(["x"], long="chunk")
    assert vlm.modalities == ("text", "image") and len(vlm.fingerprint) == 64
