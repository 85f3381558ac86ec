"""Checks only the real default model can show: exact parity with sentence-transformers and the
MTEB reference score. Seconds, not milliseconds."""

from __future__ import annotations

import json

import numpy as np
import pytest

import uniembed
from conftest import shared
from uniembed.encoders import registry
from uniembed.eval import evaluate

pytestmark = pytest.mark.real_model


@pytest.fixture(scope="module")
def default_model():
    return uniembed.load(device="cpu")


@pytest.fixture(scope="module")
def stsb_sentences():
    sentences = []
    for line in shared("stsb", "sts-test.csv").read_text(encoding="utf-8").splitlines():
        sentences += line.split("\t")[5:7]
    return list(dict.fromkeys(sentences))


def test_default_model_is_the_pinned_offline_package(default_model):
    entry = registry.CATALOGUE[registry.DEFAULT_MODEL]
    directory = registry.package_dir(entry)
    assert registry.sha256_of(directory / "model.safetensors") == entry.sha256
    assert (default_model.dim, default_model.pooling, default_model.max_tokens) == (
        384,
        "mean",
        256,
    )


def test_parity_with_sentence_transformers_on_all_stsb_test_sentences(
    default_model, stsb_sentences
):
    from sentence_transformers import SentenceTransformer

    entry = registry.CATALOGUE[registry.DEFAULT_MODEL]
    reference = SentenceTransformer(str(registry.package_dir(entry)), device="cpu")
    expected = reference.encode(stsb_sentences, batch_size=64, convert_to_numpy=True)
    got = default_model.encode(stsb_sentences, batch_size=64, show_progress=False)
    assert len(stsb_sentences) > 2500
    assert np.abs(got - expected).max() < 1e-5


def test_stsbenchmark_reproduces_the_mteb_reference(default_model):
    reference = json.loads(shared("reference", "STSBenchmark.json").read_text())["scores"]["test"][
        0
    ]["main_score"]
    result = evaluate(default_model, "sts", shared("stsb", "sts-test.csv"), show_progress=False)
    assert abs(result.main_score - reference) < 0.005  # 0.5 points on MTEB's x100 scale


def test_image_mini_ships_pinned_and_sees_fashion_mnist(default_model):
    """The shipped image model: offline, SHA-256 pinned, bound to the default model (its texts are
    the default model's), and it classifies Fashion-MNIST test images by prompt."""
    entry = registry.CATALOGUE["image-mini"]
    directory = registry.package_dir(entry)
    assert registry.sha256_of(directory / "tower.safetensors") == entry.sha256
    assert (directory / "tower.safetensors").stat().st_size <= 10 * 1024 * 1024
    model = uniembed.load("image-mini")
    assert model.fingerprint == default_model.fingerprint and model.modalities == ("text", "image")
    score = evaluate(
        model, "zero-shot", shared("fashion-mnist"), limit=1000, show_progress=False
    ).main_score
    assert score >= 0.85  # chance is 0.10; bench/bind.py reports the whole test split
    assert {m.name: m for m in registry.list_models()}["image-mini"].available_offline


def test_image_mini_with_tampered_weights_is_refused(tmp_path, monkeypatch):
    import shutil

    from uniembed.errors import IntegrityError

    entry = registry.CATALOGUE["image-mini"]
    copy = shutil.copytree(registry.package_dir(entry), tmp_path / "image-mini")
    weights = bytearray((copy / "tower.safetensors").read_bytes())
    weights[-1] ^= 1
    (copy / "tower.safetensors").write_bytes(bytes(weights))
    monkeypatch.setattr(registry, "package_dir", lambda e: copy if e.name == "image-mini" else None)
    with pytest.raises(IntegrityError, match="tower.safetensors has SHA-256"):
        uniembed.load("image-mini")


# The README, then the guides in the order the README lists them: one namespace, as a reader goes.
GUIDES = [
    "encoding",
    "collections",
    "scale-out",
    "multivector",
    "images",
    "binding",
    "graph",
    "training",
    "upgrades",
    "service",
    "web-page",
]


def test_readme_tour_runs():
    """Docs that run: every ```python block of the README and of the guides (docs/guide/*.md), in
    order, in one namespace. (Moved from the README alone when the guides moved under docs/.)"""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    assert sorted(GUIDES) == sorted(p.stem for p in (root / "docs" / "guide").glob("*.md"))
    pages = [root / "README.md", *(root / "docs" / "guide" / f"{name}.md" for name in GUIDES)]
    readme = "".join(page.read_text() for page in pages)
    blocks = [block.split("```", 1)[0] for block in readme.split("```python\n")[1:]]
    assert blocks, "the README has no python example"
    namespace: dict = {}
    for block in blocks:
        if block.startswith(
            "# needs:"
        ):  # an example that needs files the machine may not have, said in its first line
            continue
        if "127.0.0.1:8080" in block:  # the service example: serve the tour's model on a free port
            from serve_helpers import live_server
            from uniembed.serve import ServeSettings, create_app

            with live_server(
                create_app(ServeSettings(model="default"), encoder=namespace["model"])
            ) as url:
                exec(
                    compile(block.replace("http://127.0.0.1:8080", url), "README.md", "exec"),
                    namespace,
                )
            assert namespace["response"].data[0].embedding == pytest.approx(
                namespace["model"].encode(["a sentence"])[0].tolist()
            )
            continue
        exec(compile(block, "README.md", "exec"), namespace)
