"""Image evaluation: zero-shot, image-text retrieval and MMEB Precision@1, on encoders whose right
answers are known by construction; IDX, class-folder and record-file data; bad input."""

from __future__ import annotations

import gzip
import io
import json

import numpy as np
import pytest

pytest.importorskip("PIL")
import uniembed
from helpers import ColourEncoder, colour_image
from uniembed.errors import InputError
from uniembed.eval.image_data import load_labelled_images, read_idx
from uniembed.eval.image_tasks import class_vectors, precision_at_1

COLOURS = ["red", "green", "blue"]


def png(name: str) -> bytes:
    buffer = io.BytesIO()
    colour_image(name).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def class_folders(tmp_path):
    root = tmp_path / "colours"
    for name in COLOURS:
        (root / name).mkdir(parents=True)
        for i in range(3):
            colour_image(name).save(root / name / f"{i}.png")
    return root


def test_zero_shot_follows_clips_protocol(class_folders):
    result = uniembed.evaluate(
        ColourEncoder(),
        "zero-shot",
        class_folders,
        templates=["a {} thing", "the colour {}"],
        show_progress=False,
    )
    assert (
        result.main_score == 1.0
        and result.scores["n_images"] == 9
        and result.scores["accuracy_per_class"]["red"] == 1.0
    )
    constant = uniembed.evaluate(
        ColourEncoder(constant=True), "zero-shot", class_folders, show_progress=False
    )
    assert constant.main_score == pytest.approx(
        1 / 3
    )  # every image takes the first class: 3 of 9 right


def test_class_vectors_average_normalised_templates():
    model = ColourEncoder()
    got = class_vectors(model, ["red"], ["{}", "red {}"], {"batch_size": 4})[0]
    a, b = model.encode(["red"])[0], model.encode(["red red"])[0]
    expected = (a + b) / np.linalg.norm(a + b)
    np.testing.assert_allclose(got, expected, atol=1e-6)
    with pytest.raises(InputError, match="must contain"):
        class_vectors(model, ["red"], ["no slot"], {})


def _write_idx(path, array: np.ndarray) -> None:
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_idx_folders_are_read_directly(tmp_path):
    folder = tmp_path / "fashion-mnist"
    folder.mkdir()
    images = np.arange(3 * 4 * 5).reshape(3, 4, 5) % 256
    _write_idx(folder / "t10k-images-idx3-ubyte.gz", images)
    _write_idx(folder / "t10k-labels-idx1-ubyte.gz", np.array([2, 0, 1]))
    assert np.array_equal(read_idx(folder / "t10k-images-idx3-ubyte.gz"), images)
    data = load_labelled_images(folder, "test")
    assert data.labels.tolist() == [2, 0, 1] and data.classes == [
        "T-shirt/top",
        "trouser",
        "pullover",
    ]
    assert np.array_equal(data.images[0], images[0])
    with pytest.raises(InputError, match="t10k"):
        load_labelled_images(folder, "validation")
    (folder / "bad-images-idx3-ubyte").write_bytes(
        b"\x00\x00\x08\x03" + (5).to_bytes(4, "big") * 3 + b"\x00"
    )
    (folder / "bad-labels-idx1-ubyte").write_bytes(b"\x00\x00\x08\x01" + (5).to_bytes(4, "big"))
    with pytest.raises(InputError, match="header says"):
        load_labelled_images(folder, "bad")


def test_real_idx_data_loads():
    from conftest import shared

    data = load_labelled_images(shared("fashion-mnist"), "test", limit=5)
    assert (
        data.images[0].shape == (28, 28)
        and len(data.classes) == 10
        and data.classes[9] == "ankle boot"
    )


def test_record_files_with_splits_and_relative_paths(tmp_path):
    colour_image("blue").save(tmp_path / "b.png")
    rows = [
        {"image": "b.png", "label": "blue", "split": "test"},
        {"image": "b.png", "label": "red", "split": "train"},
    ]
    (tmp_path / "data.jsonl").write_text("\n".join(json.dumps(row) for row in rows))
    data = load_labelled_images(tmp_path / "data.jsonl", "test")
    assert data.classes == ["blue"] and data.images == [str(tmp_path / "b.png")]
    with pytest.raises(InputError, match="no images in split 'dev'"):
        load_labelled_images(tmp_path / "data.jsonl", "dev")
    (tmp_path / "nolabel.jsonl").write_text(json.dumps({"image": "b.png", "what": "blue"}))
    with pytest.raises(InputError, match="--label-column"):
        load_labelled_images(tmp_path / "nolabel.jsonl")


def test_image_retrieval_recalls(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    captions = ["a red square", "a green square", "a blue square"]
    pq.write_table(
        pa.table({"png": [png(c) for c in COLOURS], "caption": captions, "split": ["test"] * 3}),
        tmp_path / "pairs.parquet",
    )
    result = uniembed.evaluate(
        ColourEncoder(), "image-retrieval", tmp_path / "pairs.parquet", show_progress=False
    )
    assert (
        result.scores["text_to_image_recall_at_1"] == 1.0
        and result.scores["image_to_text_recall_at_1"] == 1.0
    )
    constant = uniembed.evaluate(
        ColourEncoder(constant=True),
        "image-retrieval",
        tmp_path / "pairs.parquet",
        show_progress=False,
    )
    assert constant.scores["text_to_image_recall_at_1"] == pytest.approx(
        1 / 3
    )  # ties at random: chance, not 100%
    assert constant.scores["image_to_text_recall_at_5"] == 1.0  # 5 >= the 3 candidates


def _candidate_file(tmp_path, n_queries: int = 300) -> str:
    rng = np.random.default_rng(0)
    rows = []
    for _ in range(n_queries):
        right = COLOURS[rng.integers(3)]
        others = [c for c in COLOURS if c != right]
        rows.append(
            {
                "query": {"text": f"something {right}"},
                "candidates": [
                    {
                        "image": "data:image/png;base64,"
                        + __import__("base64").b64encode(png(right)).decode()
                    }
                ]
                + [{"text": f"a {c} thing"} for c in others],
            }
        )
    path = tmp_path / "mmeb.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    return path


def test_mmeb_precision_at_1_and_a_collapsed_model_scores_chance(tmp_path):
    path = _candidate_file(tmp_path)
    good = uniembed.evaluate(ColourEncoder(), "mmeb", path, show_progress=False)
    assert good.main_score == 1.0 and good.scores["chance"] == pytest.approx(1 / 3)
    collapsed = uniembed.evaluate(ColourEncoder(constant=True), "mmeb", path, show_progress=False)
    assert abs(collapsed.main_score - 1 / 3) < 0.08  # random tie-breaking: chance, not 100%


def test_precision_at_1_breaks_ties_at_random():
    tied = [np.zeros(4) for _ in range(4000)]
    assert abs(precision_at_1(tied, seed=1) - 0.25) < 0.03
    assert precision_at_1([np.array([1.0, 0.5]), np.array([0.2, 0.9])], seed=1) == 0.5


def test_mmebs_own_layout_and_bad_lists(tmp_path):
    from uniembed.eval.image_data import load_candidate_lists

    colour_image("red").save(tmp_path / "r.png")
    (tmp_path / "own.jsonl").write_text(
        json.dumps(
            {
                "qry_text": "find red",
                "qry_img_path": None,
                "tgt_text": ["", ""],
                "tgt_img_path": ["r.png", "r.png"],
            }
        )
    )
    data = load_candidate_lists(tmp_path / "own.jsonl")
    assert data.queries == [{"text": "find red"}] and data.candidates[0][0] == {
        "image": str(tmp_path / "r.png")
    }
    for row, message in (
        ({"query": {"text": "x"}, "candidates": [{"text": "y"}]}, "at least 2"),
        ({"query": {"text": "x"}, "candidates": [{"text": "y"}, {}]}, "neither"),
        (
            {"query": {"text": "x"}, "candidates": [{"text": "y"}, {"text": "z"}], "positive": 5},
            "positive",
        ),
        ({"q": 1}, "expected 'query'"),
    ):
        (tmp_path / "bad.jsonl").write_text(json.dumps(row))
        with pytest.raises(InputError, match=message):
            load_candidate_lists(tmp_path / "bad.jsonl")


def test_text_models_and_bad_options_are_refused(tiny_model, class_folders):
    with pytest.raises(InputError, match="needs an image model"):
        uniembed.evaluate(tiny_model, "zero-shot", class_folders, show_progress=False)
    with pytest.raises(InputError, match="2 class names given for 3"):
        uniembed.evaluate(
            ColourEncoder(), "zero-shot", class_folders, classes=["a", "b"], show_progress=False
        )


def test_eval_commands_write_mteb_shaped_results(class_folders, tmp_path, clip_dir, capsys):
    from uniembed.cli.main import main

    code = main(
        [
            "eval",
            "zero-shot",
            str(class_folders),
            "--model",
            str(clip_dir),
            "--output-dir",
            str(tmp_path / "res"),
            "--template",
            "a {} picture",
        ]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    saved = json.loads(next((tmp_path / "res").rglob("*.json")).read_text())
    assert (
        saved["scores"]["test"][0]["n_templates"] == 1
        and 0 <= saved["scores"]["test"][0]["main_score"] <= 1
    )


def test_pixel_csv_splits_beside_idx_files(tmp_path):
    folder = tmp_path / "mnist"
    folder.mkdir()
    _write_idx(folder / "t10k-images-idx3-ubyte.gz", np.zeros((2, 2, 2)))
    _write_idx(folder / "t10k-labels-idx1-ubyte.gz", np.array([0, 1]))
    (folder / "train-2.csv").write_text("0,255,7,9,3\n1,2,3,4,0\n")  # 2x2 pixels, then the label
    data = load_labelled_images(folder, "train")
    assert data.labels.tolist() == [3, 0] and data.images[0].tolist() == [[0, 255], [7, 9]]
    assert data.classes == ["zero", "one", "two", "three"]
    (folder / "train-2.csv").write_text("0,256,7,9,3\n")
    with pytest.raises(InputError, match="0-255"):
        load_labelled_images(folder, "train")


def test_real_mnist_training_digits_load():
    from conftest import shared

    data = load_labelled_images(shared("mnist"), "train")
    assert (
        len(data.images) == 5000
        and data.images[0].shape == (28, 28)
        and np.bincount(data.labels).tolist() == [500] * 10
    )
