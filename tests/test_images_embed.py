"""`uniembed embed` and `embed_file` with images: folders, item files (jsonl, csv, parquet with
bytes), and bad input that writes nothing."""
from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest

pytest.importorskip("PIL")
from PIL import Image  # noqa: E402

from uniembed.cli.main import main  # noqa: E402


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
    rows = [{"image": "photos/a.png", "text": "a cat"}, {"text": "a cat"}, {"image": uri}, {"image": None, "text": "the sun"}]
    (tmp_path / "items.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    code, out, _ = run(capsys, "embed", tmp_path / "items.jsonl", "-o", tmp_path / "v.npy", "--model", clip_dir,
                       "--image-weight", "0.25")
    assert code == 0 and "wrote 4 vectors" in out
    items = [{"image": str(photos / "a.png"), "text": "a cat"}, {"text": "a cat"}, {"image": uri}, {"text": "the sun"}]
    np.testing.assert_allclose(np.load(tmp_path / "v.npy"), clip_model.encode_items(items, image_weight=0.25), atol=1e-6)


def test_parquet_image_bytes_column(tmp_path, clip_dir, clip_model, capsys):
    import pyarrow as pa
    import pyarrow.parquet as pq

    images = [png(7), png(8)]
    pq.write_table(pa.table({"png": images, "title": ["a red star", "a blue cat"]}), tmp_path / "art.parquet")
    code, _, _ = run(capsys, "embed", tmp_path / "art.parquet", "-o", tmp_path / "v.npy", "--model", clip_dir,
                     "--image-column", "png", "--column", "title")
    assert code == 0
    expected = clip_model.encode_items([{"image": b, "text": t} for b, t in zip(images, ["a red star", "a blue cat"])])
    np.testing.assert_allclose(np.load(tmp_path / "v.npy"), expected, atol=1e-6)


@pytest.mark.parametrize("rows, message", [
    ([{"image": "missing.png"}], "items.jsonl:1"),
    ([{"text": "ok"}, {"image": None}], "items.jsonl:2 has neither"),
    ([{"image": "data:image/png;base64,!!!"}], "base64"),
    ([{"image": "https://example.com/a.png"}], "never fetches"),
    ([{"picture": "a.png"}], "neither column 'image' nor 'text'"),
    ([{"image": 42}], "image cell is int"),
])
def test_bad_item_rows_write_nothing(tmp_path, clip_dir, capsys, rows, message):
    (tmp_path / "items.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    code, _, err = run(capsys, "embed", tmp_path / "items.jsonl", "-o", tmp_path / "v.npy", "--model", clip_dir,
                       "--image-column", "image")
    assert code != 0 and message in err and "Traceback" not in err
    assert not (tmp_path / "v.npy").exists() and not list(tmp_path.glob(".v.npy*"))


def test_a_damaged_image_in_a_folder_is_named_and_nothing_is_written(photos, tmp_path, clip_dir, capsys):
    (photos / "broken.png").write_bytes(png(9)[:50])
    code, _, err = run(capsys, "embed", photos, "-o", tmp_path / "v.npy", "--model", clip_dir)
    assert code != 0 and "broken.png" in err and "truncated" in err
    assert not (tmp_path / "v.npy").exists()


def test_images_to_a_text_model_and_empty_folders_are_clear_errors(photos, tmp_path, tiny_dir, clip_dir, capsys):
    code, _, err = run(capsys, "embed", photos, "-o", tmp_path / "v.npy", "--model", tiny_dir)
    assert code != 0 and "text only" in err
    (tmp_path / "empty").mkdir()
    code, _, err = run(capsys, "embed", tmp_path / "empty", "-o", tmp_path / "v.npy", "--model", clip_dir)
    assert code != 0 and "no image files" in err
