"""Binding (uniembed.bind): a small image encoder or a projector trained into a frozen anchor's
space. Tiny anchor (a 2-layer BERT), tiny images (coloured squares), tiny towers: seconds."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

pytest.importorskip("PIL")
pytest.importorskip("torch")

import uniembed
from uniembed.bind import BindConfig, bind
from uniembed.errors import InputError, ModelLoadError

COLOURS = {
    "red": (220, 30, 30),
    "green": (30, 200, 40),
    "blue": (30, 40, 220),
    "yellow": (230, 220, 30),
}
TINY_TOWER = dict(channels=[4, 8], image_size=8, batch_size=16, learning_rate=1e-2, validation=0.1)


def colour_folders(root, per_class: int, seed: int):
    """One sub-folder of noisy squares per colour (the class name is the folder name)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for name, rgb in COLOURS.items():
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = np.clip(np.array(rgb) + rng.normal(0, 25, (10, 10, 3)), 0, 255).astype(
                np.uint8
            )
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def colours(tmp_path_factory):
    root = tmp_path_factory.mktemp("colours")
    return colour_folders(root / "train", 24, 0), colour_folders(root / "test", 8, 1)


@pytest.fixture(scope="module")
def bound(tiny_dir, colours, tmp_path_factory):
    output = tmp_path_factory.mktemp("bound") / "colour-bind"
    result = bind(
        BindConfig(
            output=str(output),
            anchor=str(tiny_dir),
            images=[str(colours[0])],
            captions=["a photo of a {label}", "{label}"],
            epochs=12,
            **TINY_TOWER,
        ),
        show_progress=False,
    )
    return result


def test_bound_model_sees_colours_and_keeps_the_anchors_texts(bound, tiny_dir, colours):
    from uniembed.eval import evaluate

    model = uniembed.load(bound.output)
    anchor = uniembed.load(tiny_dir, device="cpu")
    assert model.modalities == ("text", "image") and model.dim == anchor.dim
    texts = ["a photo of a red", "something else entirely"]
    np.testing.assert_array_equal(
        model.encode(texts), anchor.encode(texts)
    )  # texts are the anchor's, bit for bit
    assert model.fingerprint == anchor.fingerprint and model.image_fingerprint != anchor.fingerprint
    score = evaluate(
        model, "zero-shot", colours[1], templates=["a photo of a {}"], show_progress=False
    ).main_score
    assert score >= 0.9  # chance is 0.25
    assert bound.history and bound.best_score is not None and bound.best_score >= 90
    saved = json.loads((bound.output / "uniembed_bind.json").read_text())
    assert (
        saved["anchor"]["fingerprint"] == anchor.fingerprint
        and saved["training"]["validation pairs"] == 10
    )


def test_a_text_collection_of_the_anchor_is_searched_by_image(bound, tiny_dir, colours, tmp_path):
    from uniembed.store import Collection

    col = Collection.create(tmp_path / "texts", model=str(tiny_dir))
    col.add(list(COLOURS), [f"a photo of a {name}" for name in COLOURS])
    opened = Collection.open(tmp_path / "texts", model=uniembed.load(bound.output))
    for name in COLOURS:
        hits = opened.search(image=str(colours[1] / name / "0.png"), k=1)
        assert hits[0].id == name


def test_an_image_collection_refuses_another_tower_on_the_same_anchor(
    bound, tiny_dir, colours, tmp_path
):
    from uniembed.store import Collection

    col = Collection.create(tmp_path / "images", model=str(bound.output), images="bytes")
    col.add(["r"], images=[str(colours[1] / "red" / "0.png")])
    other = bind(
        BindConfig(
            output=str(tmp_path / "other"),
            anchor=str(tiny_dir),
            images=[str(colours[0])],
            captions=["{label}"],
            epochs=1,
            **TINY_TOWER,
        ),
        show_progress=False,
    )
    with pytest.raises(InputError, match="embeds texts alike but images differently"):
        Collection.open(tmp_path / "images", model=uniembed.load(other.output))
    assert (
        Collection.open(tmp_path / "images", model=uniembed.load(bound.output))
        .search(image=str(colours[1] / "red" / "1.png"), k=1)[0]
        .id
        == "r"
    )


def test_same_label_pairs_share_a_positive_group(colours):
    from uniembed.bind.pairs import image_pairs

    pairs = image_pairs([colours[0]], ["a photo of a {label}", "{label} colour"])
    assert len(pairs) == 96 and len(pairs.texts) == 8 and len(set(pairs.groups.tolist())) == 4
    first_red, first_green = (
        0,
        24,
    )  # class folders are read in sorted order: blue, green, red, yellow
    assert pairs.groups[first_red] == pairs.groups[first_red + 1] != pairs.groups[first_green]
    assert [pairs.texts[i] for i in pairs.captions[0]] == ["a photo of a blue", "blue colour"]


def test_same_group_or_same_drawn_caption_are_positives_never_negatives():
    import torch

    from uniembed.bind.training import positive_mask

    mask = positive_mask(torch.tensor([0, 0, 1, 2]), torch.tensor([5, 6, 7, 7]))
    assert mask.tolist() == [[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 1], [0, 0, 1, 1]]


def test_captions_can_belong_to_one_source(colours):
    from uniembed.bind.pairs import image_pairs
    from uniembed.cli.bind import sources_and_captions

    given = [
        ("captions", "{label}"),
        ("images", "a"),
        ("images", "b"),
        ("captions", "the colour {label}"),
    ]
    assert sources_and_captions(given) == (
        [{"path": "a", "captions": []}, {"path": "b", "captions": ["the colour {label}"]}],
        ["{label}"],
    )
    pairs = image_pairs(
        [str(colours[0]), {"path": str(colours[1]), "captions": ["the colour {label}"]}],
        ["{label}"],
    )
    assert [pairs.texts[i] for i in pairs.captions[0]] == ["blue"]
    assert [pairs.texts[i] for i in pairs.captions[-1]] == ["the colour yellow"]
    with pytest.raises(InputError, match="'captions' must be a list, got '{label}'"):
        image_pairs([{"path": str(colours[1]), "captions": "{label}"}], [])
    kept = image_pairs([{"path": str(colours[1]), "exclude_labels": ["red", "blue"]}], ["{label}"])
    assert sorted(kept.texts) == ["green", "yellow"] and len(kept) == 16
    with pytest.raises(InputError, match="no images left in split 'train' after excluding"):
        image_pairs([{"path": str(colours[1]), "exclude_labels": list(COLOURS)}], ["{label}"])


def test_an_interrupted_run_resumes_to_the_same_weights(tiny_dir, colours, tmp_path, monkeypatch):
    from safetensors.numpy import load_file

    from uniembed.bind import training

    settings = dict(
        anchor=str(tiny_dir),
        images=[str(colours[0])],
        captions=["{label}"],
        epochs=3,
        checkpoint_every=2,
        **TINY_TOWER,
    )
    straight = bind(BindConfig(output=str(tmp_path / "straight"), **settings), show_progress=False)

    original = training._Loop.loss

    def interrupted(self, rows, step):
        if step == 7:
            raise KeyboardInterrupt
        return original(self, rows, step)

    monkeypatch.setattr(training._Loop, "loss", interrupted)
    with pytest.raises(KeyboardInterrupt):
        bind(BindConfig(output=str(tmp_path / "resumed"), **settings), show_progress=False)
    assert (
        not (tmp_path / "resumed").exists()
        and (tmp_path / "resumed.bind-state" / "state.json").is_file()
    )
    monkeypatch.setattr(training._Loop, "loss", original)
    resumed = bind(BindConfig(output=str(tmp_path / "resumed"), **settings), show_progress=False)
    assert resumed.steps == straight.steps and resumed.history == straight.history
    a, b = (
        load_file(str(straight.output / "tower.safetensors")),
        load_file(str(resumed.output / "tower.safetensors")),
    )
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    assert (
        not (tmp_path / "resumed.bind-state").exists()
        and not (tmp_path / "resumed.bind-cache").exists()
    )


def test_a_projector_binds_vectors_from_another_encoder(tmp_path):
    """The real default model as the anchor: the tiny BERT's text vectors are all alike (cosine
    0.998), too alike for a projector to tell apart, which says nothing about binding."""
    words = (
        "apple river castle violin tiger glacier pencil volcano umbrella bicycle desert lantern whale orchid "
        "rocket cathedral spider kettle meadow trumpet canyon mirror falcon harbour quilt thunder lemon "
        "anchor compass blanket carpet dolphin engine feather garden hammer island jacket ladder marble "
        "necklace ocean parrot rabbit saddle tunnel vinegar wallet yacht zebra bridge candle forest "
        "guitar honey igloo jungle koala lighthouse mountain nest onion pyramid"
    ).split()
    rng = np.random.default_rng(0)
    anchor = uniembed.load(device="cpu")
    # another encoder's vectors of the same things: a random linear map of the anchor's, plus noise
    other_space = anchor.encode(words) @ rng.normal(size=(anchor.dim, 48)).astype(np.float32)
    other_space += rng.normal(0, 0.05, other_space.shape).astype(np.float32)
    np.save(tmp_path / "vectors.npy", other_space)
    (tmp_path / "texts.jsonl").write_text("".join(json.dumps({"text": w}) + "\n" for w in words))
    result = bind(
        BindConfig(
            output=str(tmp_path / "proj"),
            vectors=str(tmp_path / "vectors.npy"),
            texts=str(tmp_path / "texts.jsonl"),
            encoder="linear",
            epochs=60,
            batch_size=16,
            learning_rate=1e-2,
            validation=0,
        ),
        show_progress=False,
    )
    model = uniembed.load(result.output)
    assert model.modalities == ("text", "vector") and result.history[-1]["validation top-1"] is None
    projected, texts = model.encode_vectors(other_space), model.encode(list(words))
    # each projected vector finds its own word among all of them (training pairs: a fit, not generalisation)
    assert np.mean((projected @ texts.T).argmax(1) == np.arange(len(words))) >= 0.9
    with pytest.raises(InputError, match=r"must be an \(n, 48\) array, got shape \(3, 5\)"):
        model.encode_vectors(np.zeros((3, 5)))
    with pytest.raises(InputError, match="binds vectors of 48 dims, not images"):
        model.encode_images([np.zeros((4, 4), np.uint8)])


# -- bad input: a clear error, nothing written -----------------------------------------------------
def test_bad_binds_are_refused_and_write_nothing(tiny_dir, clip_dir, colours, tmp_path):
    out = tmp_path / "out"
    base = dict(output=str(out), anchor=str(tiny_dir), **TINY_TOWER)
    (tmp_path / "records.jsonl").write_text(
        "".join(
            json.dumps(
                {
                    "image": str(colours[0] / "red" / f"{i}.png"),
                    "title": "" if i == 3 else f"red {i}",
                }
            )
            + "\n"
            for i in range(6)
        )
    )
    (tmp_path / "mixed.jsonl").write_text(
        '{"vector": [1, 2, 3], "text": "a"}\n{"vector": [1, 2], "text": "b"}\n'
    )
    (tmp_path / "texts.jsonl").write_text('{"text": "a"}\n{"text": "b"}\n')
    (tmp_path / "same.jsonl").write_text('{"text": "a"}\n{"text": "a"}\n')
    (tmp_path / "ints.jsonl").write_text('{"vector": [1, 2, 3]}\n{"vector": [0, 1, 1]}\n')
    np.save(tmp_path / "ints.npy", np.arange(6).reshape(2, 3))
    np.save(tmp_path / "zeros.npy", np.array([[0.5, 0.1, 0.2], [0.0, 0.0, 0.0]], np.float32))
    np.save(tmp_path / "floats.npy", np.array([[0.5, 0.1, 0.2], [0.1, 0.3, 0.0]], np.float32))
    np.save(
        tmp_path / "huge.npy", np.array([[0.5, 0.1, 0.2], [1e300, 0.3, 0.0]])
    )  # float64: inf once float32
    cases = [
        (
            dict(images=[str(tmp_path / "records.jsonl")], captions=["{title}"]),
            "1 of 6 images have no caption",
        ),
        (
            dict(images=[str(colours[0])], captions=["a photo of a {colour}"]),
            "names 'colour', which .* does not have",
        ),
        (dict(images=[str(colours[0])], captions=[]), "needs captions"),
        (
            dict(
                vectors=str(tmp_path / "mixed.jsonl"),
                texts=str(tmp_path / "texts.jsonl"),
                encoder="mlp",
            ),
            "a vector of 2 numbers, the earlier ones have 3",
        ),
        (
            dict(
                images=[str(colours[0])],
                vectors=str(tmp_path / "mixed.jsonl"),
                captions=["{label}"],
            ),
            "either images",
        ),
        (
            dict(images=[str(colours[0])], captions=["{label}"], anchor=str(clip_dir)),
            "anchor must be a text model .* is an image model",
        ),
        (
            dict(images=[str(colours[0])], captions=["{label}"], batch_size=1),
            "batch_size must be at least 2",
        ),
        # issue 30: each of these used to train without a word
        (
            dict(
                vectors=str(tmp_path / "ints.npy"),
                texts=str(tmp_path / "texts.jsonl"),
                encoder="mlp",
            ),
            "the vectors are integers",
        ),
        (
            dict(
                vectors=str(tmp_path / "ints.jsonl"),
                texts=str(tmp_path / "texts.jsonl"),
                encoder="mlp",
            ),
            "the vectors are integers",
        ),
        (
            dict(
                vectors=str(tmp_path / "zeros.npy"),
                texts=str(tmp_path / "texts.jsonl"),
                encoder="mlp",
            ),
            "vector 1 is all zeros",
        ),
        (
            dict(
                vectors=str(tmp_path / "huge.npy"),
                texts=str(tmp_path / "texts.jsonl"),
                encoder="mlp",
            ),
            "values beyond float32",
        ),
        (
            dict(
                vectors=str(tmp_path / "floats.npy"),
                texts=str(tmp_path / "same.jsonl"),
                encoder="mlp",
            ),
            "all 2 examples have the same caption 'a'",
        ),
        (
            dict(images=[str(colours[0])], captions=["a photo"]),
            "all 96 examples have the same caption 'a photo'",
        ),
        (
            dict(images=[str(colours[0])], captions=["{label}"], eval_every=0),
            "eval_every must be a positive number of steps",
        ),
        (
            dict(images=[str(colours[0])], captions=["{label}"], channels=[]),
            "channels must be a non-empty list",
        ),
    ]
    for options, message in cases:
        with pytest.raises(InputError, match=message):
            bind(BindConfig(**{**base, **options}), show_progress=False)
        assert not out.exists()
    out.mkdir()
    with pytest.raises(InputError, match="already exists"):
        bind(
            BindConfig(**{**base, "images": [str(colours[0])], "captions": ["{label}"]}),
            show_progress=False,
        )


def test_a_bound_model_whose_anchor_changed_or_moved_is_a_clear_error(tiny_dir, colours, tmp_path):
    anchor = shutil.copytree(tiny_dir, tmp_path / "anchor")
    result = bind(
        BindConfig(
            output=str(tmp_path / "b"),
            anchor=str(anchor),
            images=[str(colours[0])],
            captions=["{label}"],
            epochs=1,
            **TINY_TOWER,
        ),
        show_progress=False,
    )
    config_file = result.output / "uniembed_bind.json"
    config = json.loads(config_file.read_text())
    config["anchor"]["fingerprint"] = "0" * 64
    config_file.write_text(json.dumps(config))
    with pytest.raises(
        ModelLoadError, match="with fingerprint 000000000000; the model found there now has"
    ):
        uniembed.load(result.output)
    shutil.move(anchor, tmp_path / "moved")
    with pytest.raises(ModelLoadError, match="which cannot be loaded \\(moved or deleted\\?\\)"):
        uniembed.load(result.output)
    with pytest.raises(InputError, match="backend: not options of bound models"):
        uniembed.load(result.output, backend="onnx")


def test_cli_bind_writes_a_model_and_reports_bad_input(tiny_dir, colours, tmp_path, capsys):
    from uniembed.cli.main import main

    argv = [
        "bind",
        "--anchor",
        str(tiny_dir),
        "--images",
        str(colours[0]),
        "--captions",
        "a photo of a {label}",
        "--channels",
        "4,8",
        "--image-size",
        "8",
        "--epochs",
        "1",
        "--batch-size",
        "16",
        "-o",
        str(tmp_path / "cli-bind"),
    ]
    assert main(argv) == 0
    out, _ = capsys.readouterr()
    assert (
        "wrote" in out
        and "validation top-1" in out
        and (tmp_path / "cli-bind" / "tower.safetensors").is_file()
    )
    assert main(argv) != 0
    assert "already exists" in capsys.readouterr().err
    assert main([*argv[:-1], str(tmp_path / "x"), "--channels", "4,a"]) != 0
    assert "--channels must be comma-separated integers, got '4,a'" in capsys.readouterr().err
    assert main([*argv[:-1], str(tmp_path / "x"), "--channels", ""]) == 2
    assert "--channels must be comma-separated integers, got ''" in capsys.readouterr().err
    assert main([*argv[:-1], str(tmp_path / "x"), "--eval-every", "0"]) == 2
    assert "eval_every must be a positive number of steps" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_the_service_serves_a_bound_model(bound, tiny_dir, colours):
    import base64

    from fastapi.testclient import TestClient

    from uniembed.serve import ServeSettings, create_app

    model = uniembed.load(bound.output)
    image = (colours[1] / "red" / "0.png").read_bytes()
    with TestClient(
        create_app(ServeSettings(model="colour-bind"), encoder=model), base_url="http://localhost"
    ) as client:
        response = client.post(
            "/v1/embeddings",
            json={
                "model": model.name,
                "input": [
                    {"image": base64.b64encode(image).decode()},
                    {"text": "a photo of a red"},
                ],
            },
        )
        texts = client.post(
            "/v1/embeddings", json={"model": model.name, "input": ["a photo of a red"]}
        )
    assert response.status_code == 200 and texts.status_code == 200, response.text
    got = np.array(
        [row["embedding"] for row in sorted(response.json()["data"], key=lambda d: d["index"])],
        np.float32,
    )
    np.testing.assert_allclose(got[0], model.encode_images([image])[0], atol=1e-5)
    anchor_vector = uniembed.load(tiny_dir, device="cpu").encode(["a photo of a red"])[0]
    np.testing.assert_allclose(got[1], anchor_vector, atol=1e-6)
    np.testing.assert_allclose(texts.json()["data"][0]["embedding"], anchor_vector, atol=1e-6)


def test_cli_searches_a_text_collection_by_image_with_a_bound_model(
    bound, tiny_dir, colours, tmp_path, capsys
):
    from uniembed.cli.main import main
    from uniembed.store import Collection

    col = Collection.create(tmp_path / "texts", model=str(tiny_dir))
    col.add(list(COLOURS), [f"a photo of a {name}" for name in COLOURS])
    capsys.readouterr()
    argv = [
        "search",
        str(tmp_path / "texts"),
        "--image",
        str(colours[1] / "blue" / "3.png"),
        "-k",
        "1",
        "--json",
    ]
    assert main([*argv, "--model", str(bound.output)]) == 0
    assert json.loads(capsys.readouterr().out)[0]["id"] == "blue"
    assert main(argv) != 0  # the collection's own model embeds text only
    assert "embeds text only" in capsys.readouterr().err


def test_vector_files_join_their_texts_by_id(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from uniembed.bind.pairs import vector_pairs

    pq.write_table(
        pa.table({"id": ["n2", "n1"], "vector": [[0.0, 1.0], [1.0, 0.0]]}),
        tmp_path / "nodes.parquet",
    )
    (tmp_path / "nodes.csv").write_text("id,text\nn1,first node\nn2,second node\n")
    pairs = vector_pairs(tmp_path / "nodes.parquet", tmp_path / "nodes.csv")
    assert [pairs.texts[c[0]] for c in pairs.captions] == ["second node", "first node"]
    np.testing.assert_array_equal(pairs.inputs, [[0.0, 1.0], [1.0, 0.0]])
    (tmp_path / "short.csv").write_text("id,text\nn1,first node\n")
    with pytest.raises(InputError, match="no text for 1 of 2 vector ids, the first: 'n2'"):
        vector_pairs(tmp_path / "nodes.parquet", tmp_path / "short.csv")
    np.save(tmp_path / "bad.npy", np.array([[1.0, np.nan]]))
    with pytest.raises(InputError, match="NaN or inf"):
        vector_pairs(tmp_path / "bad.npy", tmp_path / "short.csv")
