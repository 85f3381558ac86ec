"""`uniembed embed` and `embed_file` with images: folders, item files (jsonl, csv, parquet with
bytes), and bad input that writes nothing."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest

pytest.importorskip("PIL")
from PIL import Image

from uniembed.cli.main import main


def run(capsys, *argv):
    code = main(list(map(str, argv)))
    out, err = capsys.readouterr()
    return code, out, err


def png(seed: int, size=(20, 30)) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, size=(*size, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def photos(tmp_path):
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    for name, seed in (("b.png", 1), ("a.png", 2), ("sub/c.png", 3)):
        (folder / name).write_bytes(png(seed))
    (folder / "notes.txt").write_text("not an image")
    return folder


def test_a_folder_embeds_in_sorted_order_with_ids(photos, tmp_path, clip_dir, clip_model, capsys):
    import pyarrow.parquet as pq

    code, out, err = run(capsys, "embed", photos, "-o", tmp_path / "v.parquet", "--model", clip_dir)
    assert code == 0 and "wrote 3 vectors of dim 24" in out and "1 other files skipped" in err
    table = pq.read_table(tmp_path / "v.parquet")
    assert table.column("id").to_pylist() == ["a.png", "b.png", "sub/c.png"]
    expected = clip_model.encode_images([photos / "a.png", photos / "b.png", photos / "sub/c.png"])
    np.testing.assert_allclose(np.array(table.column("embedding").to_pylist()), expected, atol=1e-6)


def test_item_files_mix_image_text_and_both(photos, tmp_path, clip_dir, clip_model, capsys):
    uri = "data:image/png;base64," + base64.b64encode(png(5)).decode()
    rows = [
        {"image": "photos/a.png", "text": "a cat"},
        {"text": "a cat"},
        {"image": uri},
        {"image": None, "text": "the sun"},
    ]
    (tmp_path / "items.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    code, out, _ = run(
        capsys,
        "embed",
        tmp_path / "items.jsonl",
        "-o",
        tmp_path / "v.npy",
        "--model",
        clip_dir,
        "--image-weight",
        "0.25",
    )
    assert code == 0 and "wrote 4 vectors" in out
    items = [
        {"image": str(photos / "a.png"), "text": "a cat"},
        {"text": "a cat"},
        {"image": uri},
        {"text": "the sun"},
    ]
    np.testing.assert_allclose(
        np.load(tmp_path / "v.npy"), clip_model.encode_items(items, image_weight=0.25), atol=1e-6
    )


def test_parquet_image_bytes_column(tmp_path, clip_dir, clip_model, capsys):
    import pyarrow as pa
    import pyarrow.parquet as pq

    images = [png(7), png(8)]
    pq.write_table(
        pa.table({"png": images, "title": ["a red star", "a blue cat"]}), tmp_path / "art.parquet"
    )
    code, _, _ = run(
        capsys,
        "embed",
        tmp_path / "art.parquet",
        "-o",
        tmp_path / "v.npy",
        "--model",
        clip_dir,
        "--image-column",
        "png",
        "--column",
        "title",
    )
    assert code == 0
    expected = clip_model.encode_items(
        [{"image": b, "text": t} for b, t in zip(images, ["a red star", "a blue cat"])]
    )
    np.testing.assert_allclose(np.load(tmp_path / "v.npy"), expected, atol=1e-6)


@pytest.mark.parametrize(
    "rows, message",
    [
        ([{"image": "missing.png"}], "items.jsonl:1"),
        ([{"text": "ok"}, {"image": None}], "items.jsonl:2 has neither"),
        ([{"image": "data:image/png;base64,!!!"}], "base64"),
        ([{"image": "https://example.com/a.png"}], "never fetches"),
        ([{"picture": "a.png"}], "neither column 'image' nor 'text'"),
        ([{"image": 42}], "image cell is int"),
    ],
)
def test_bad_item_rows_write_nothing(tmp_path, clip_dir, capsys, rows, message):
    (tmp_path / "items.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    code, _, err = run(
        capsys,
        "embed",
        tmp_path / "items.jsonl",
        "-o",
        tmp_path / "v.npy",
        "--model",
        clip_dir,
        "--image-column",
        "image",
    )
    assert code != 0 and message in err and "Traceback" not in err
    assert not (tmp_path / "v.npy").exists() and not list(tmp_path.glob(".v.npy*"))


def test_a_damaged_image_in_a_folder_is_named_and_nothing_is_written(
    photos, tmp_path, clip_dir, capsys
):
    (photos / "broken.png").write_bytes(png(9)[:50])
    code, _, err = run(capsys, "embed", photos, "-o", tmp_path / "v.npy", "--model", clip_dir)
    assert code != 0 and "broken.png" in err and "truncated" in err
    assert not (tmp_path / "v.npy").exists()


def test_images_to_a_text_model_and_empty_folders_are_clear_errors(
    photos, tmp_path, tiny_dir, clip_dir, capsys
):
    code, _, err = run(capsys, "embed", photos, "-o", tmp_path / "v.npy", "--model", tiny_dir)
    assert code != 0 and "text only" in err
    (tmp_path / "empty").mkdir()
    code, _, err = run(
        capsys, "embed", tmp_path / "empty", "-o", tmp_path / "v.npy", "--model", clip_dir
    )
    assert code != 0 and "no image files" in err


def test_collections_of_images_from_the_command_line(photos, tmp_path, clip_dir, capsys):
    import uniembed
    from uniembed.store import Collection

    pics = tmp_path / "pics"
    code, out, _ = run(
        capsys, "collection", "create", pics, "--model", clip_dir, "--images", "bytes"
    )
    assert code == 0
    code, out, err = run(capsys, "collection", "add", pics, photos)
    assert code == 0 and "added 3 items" in out and "1 other files skipped" in err
    code, out, _ = run(capsys, "search", pics, "--image", photos / "b.png", "-k", "1", "--json")
    assert code == 0 and json.loads(out)[0]["id"] == "b.png"
    code, out, _ = run(capsys, "search", pics, "a red cat", "-k", "3")
    assert code == 0 and out.count("png") == 3
    code, out, _ = run(
        capsys, "search", pics, "but in blue", "--image", photos / "sub/c.png", "-k", "1", "--json"
    )
    model = uniembed.load(clip_dir)
    vector = model.encode_items(
        [{"image": photos / "sub/c.png", "text": "but in blue"}], prompt="query"
    )[0]
    stored = Collection.open(pics).get([h["id"] for h in json.loads(out)])[0].vectors["default"]
    best = max(
        ("a.png", "b.png", "sub/c.png"), key=lambda i: model.encode_images([photos / i])[0] @ vector
    )
    assert json.loads(out)[0]["id"] == best and stored.shape == (24,)
    code, out, _ = run(capsys, "collection", "info", pics)
    assert code == 0 and "images: bytes" in out
    code, _, err = run(capsys, "search", pics)
    assert code != 0 and "--image" in err


def test_item_files_add_images_with_captions_and_payloads(photos, tmp_path, clip_dir, capsys):
    from uniembed.store import Collection

    rows = [
        {"id": "x", "image": "photos/a.png", "text": "a cat", "year": 2020},
        {"id": "y", "image": "photos/b.png", "year": 2021},
    ]
    (tmp_path / "items.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    pics = tmp_path / "pics"
    assert (
        run(
            capsys,
            "collection",
            "create",
            pics,
            "--model",
            clip_dir,
            "--images",
            "path",
            "--image-root",
            tmp_path,
        )[0]
        == 0
    )
    code, out, err = run(capsys, "collection", "add", pics, tmp_path / "items.jsonl")
    assert code == 0, err
    col = Collection.open(pics)
    x, y = col.get(["x", "y"])
    assert (x.image, x.text, x.payload) == (
        "photos/a.png",
        "a cat",
        {"year": 2020},
    ) and y.text is None
    assert col.search(image=photos / "b.png", k=1, filter="year>=2021")[0].id == "y"
    (tmp_path / "bad.jsonl").write_text(json.dumps({"id": "z", "image": "../../etc/passwd.png"}))
    code, _, err = run(capsys, "collection", "add", pics, tmp_path / "bad.jsonl")
    assert code != 0 and "outside" in err and len(col) == 2
    (tmp_path / "text.jsonl").write_text(json.dumps({"id": "t", "text": "hi"}))
    code, _, err = run(capsys, "collection", "add", tmp_path / "texts", tmp_path / "text.jsonl")
    assert code != 0  # no such collection


def test_a_folder_into_a_text_collection_is_a_clear_error(photos, tmp_path, tiny_dir, capsys):
    assert run(capsys, "collection", "create", tmp_path / "t", "--model", tiny_dir)[0] == 0
    code, _, err = run(capsys, "collection", "add", tmp_path / "t", photos)
    assert code != 0 and "keeps no images" in err


def test_search_with_another_model_checks_its_fingerprint(tmp_path, tiny_dir, clip_dir, capsys):
    (tmp_path / "docs.jsonl").write_text(
        '{"id": "a", "text": "a cat sat"}\n{"id": "b", "text": "the bank"}\n'
    )
    col = tmp_path / "docs"
    assert run(capsys, "collection", "create", col, "--model", tiny_dir)[0] == 0
    assert run(capsys, "collection", "add", col, tmp_path / "docs.jsonl")[0] == 0
    code, out, _ = run(capsys, "search", col, "a cat", "-k", "1", "--model", tiny_dir, "--json")
    assert code == 0 and json.loads(out)[0]["id"] == "a"
    code, _, err = run(capsys, "search", col, "a cat", "--model", clip_dir)
    assert code != 0 and "made by model" in err


def test_a_file_name_that_is_not_utf8_is_refused_by_name_before_any_work(
    photos, tmp_path, clip_dir, capsys
):
    # issue 30: embed encoded everything, then died writing the id; collection add said "id 1"
    import os

    with open(os.fsencode(photos) + b"/bad-\xff.png", "wb") as file:
        file.write(png(4))
    code, _, err = run(capsys, "embed", photos, "-o", tmp_path / "v.parquet", "--model", clip_dir)
    assert (
        code == 2
        and "bad-\\xff.png: the file name is not valid UTF-8" in err
        and "Traceback" not in err
    )
    assert not (tmp_path / "v.parquet").exists()
    pics = tmp_path / "pics"
    assert (
        run(capsys, "collection", "create", pics, "--model", clip_dir, "--images", "bytes")[0] == 0
    )
    code, _, err = run(capsys, "collection", "add", pics, photos)
    assert code == 2 and "bad-\\xff.png: the file name is not valid UTF-8" in err
    from uniembed.store import Collection

    assert len(Collection.open(pics)) == 0
