"""Loading image evaluation data: labelled images, image-text pairs and MMEB-style candidate lists.

Labelled images come from
- an IDX folder (MNIST, Fashion-MNIST: `<split>-images-idx3-ubyte.gz` and `-labels-idx1-ubyte.gz`,
  the test split named `t10k`), read directly; class names are the data set's own (Fashion-MNIST's
  ten garment names; digits as words for MNIST) unless `classes` are given; in such a folder, a
  split may also be a pixel csv (`<split>*.csv[.gz]`, no header: a square image's pixels 0-255,
  then the label, as MNIST's `train-5k.csv.gz`);
- a folder with one sub-folder of images per class (class name: the folder name, "_" as spaces);
- a record file (jsonl/csv/parquet) with an image column and a label column, optionally a
  `split` column (rows of other splits are left out), e.g. Open Clip Art's parquet.

Images stay encoded (bytes, paths, or views of the IDX array) until a batch is embedded.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from uniembed.errors import InputError
from uniembed.io.records import columns_hint, iter_records

FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle boot",
)
DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
IMAGE_COLUMNS = ("image", "png", "jpg", "img", "image_path", "path")
LABEL_COLUMNS = ("label", "category", "class", "labels")
CAPTION_COLUMNS = ("caption", "text", "title", "keywords")


@dataclass
class LabelledImages:
    images: list  # anything encode_images takes: arrays, bytes, paths
    labels: np.ndarray  # int class index per image
    classes: list[str]  # class names, by index


@dataclass
class ImageTextPairs:
    images: list
    texts: list[str]


def load_labelled_images(
    path: str | Path,
    split: str = "test",
    *,
    image_column: str | None = None,
    label_column: str | None = None,
    classes: list[str] | None = None,
    limit: int | None = None,
) -> LabelledImages:
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    if path.is_dir() and _pixel_csv(path, split) is not None:
        data = _load_pixel_csv(path, split)
    elif path.is_dir() and _idx_files(path, split) is not None:
        data = _load_idx(path, split)
    elif path.is_dir():
        data = _load_class_folders(path)
    else:
        data = _load_labelled_records(path, split, image_column, label_column)
    if classes is not None:
        if len(classes) != len(data.classes):
            raise InputError(
                f"{path}: {len(classes)} class names given for {len(data.classes)} classes ({data.classes[:5]}...)"
            )
        data.classes = list(classes)
    if limit is not None:
        data.images, data.labels = data.images[:limit], data.labels[:limit]
    if not data.images:
        raise InputError(f"{path}: no images in split {split!r}")
    return data


# -- IDX -----------------------------------------------------------------------------------------
def _idx_files(folder: Path, split: str) -> tuple[Path, Path] | None:
    prefix = "t10k" if split == "test" else split
    for suffix in (".gz", ""):
        images, labels = (
            folder / f"{prefix}-images-idx3-ubyte{suffix}",
            folder / f"{prefix}-labels-idx1-ubyte{suffix}",
        )
        if images.is_file() and labels.is_file():
            return images, labels
    if any(folder.glob("*-idx3-ubyte*")):
        have = sorted(p.name for p in folder.glob("*-idx*"))
        raise InputError(
            f"{folder}: no IDX files for split {split!r} (the test split is named t10k); found {have}"
        )
    return None


def read_idx(path: Path) -> np.ndarray:
    """An IDX array (big-endian header: zero, zero, type 0x08 = uint8, rank, sizes; then data)."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as exc:
        raise InputError(f"{path}: cannot read the IDX file ({exc})") from exc
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise InputError(f"{path}: not an IDX file of unsigned bytes")
    rank = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(rank))
    data = np.frombuffer(raw, np.uint8, offset=4 + 4 * rank)
    if data.size != int(np.prod(shape)):
        raise InputError(
            f"{path}: the header says {shape} ({int(np.prod(shape))} values), the file holds {data.size}"
        )
    return data.reshape(shape)


def _load_idx(folder: Path, split: str) -> LabelledImages:
    image_file, label_file = _idx_files(folder, split)
    images, labels = read_idx(image_file), read_idx(label_file)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise InputError(
            f"{folder}: IDX images {images.shape} and labels {labels.shape} do not match"
        )
    return LabelledImages(
        list(images), labels.astype(np.int64), _class_names(folder, int(labels.max()) + 1)
    )


def _class_names(folder: Path, n_classes: int) -> list[str]:
    """The data set's own class names: Fashion-MNIST's garments, else digits as words."""
    classes = list(
        FASHION_MNIST_CLASSES if "fashion" in folder.resolve().name.lower() else DIGIT_WORDS
    )[:n_classes]
    return classes if len(classes) == n_classes else [str(i) for i in range(n_classes)]


def _pixel_csv(folder: Path, split: str) -> Path | None:
    """The one `<split>*.csv[.gz]` beside IDX files, if any (e.g. MNIST's train-5k.csv.gz)."""
    if not any(folder.glob("*-idx*-ubyte*")):
        return None
    found = sorted(p for p in folder.glob(f"{split}*.csv*") if p.name.endswith((".csv", ".csv.gz")))
    return found[0] if len(found) == 1 else None


def _load_pixel_csv(folder: Path, split: str) -> LabelledImages:
    path = _pixel_csv(folder, split)
    try:
        rows = np.loadtxt(path, delimiter=",", dtype=np.int64, ndmin=2)
    except (OSError, ValueError, EOFError) as exc:
        raise InputError(f"{path}: not a csv of integer pixels and labels ({exc})") from exc
    side = int(round(np.sqrt(rows.shape[1] - 1)))
    if (
        side * side != rows.shape[1] - 1
        or rows[:, :-1].min(initial=0) < 0
        or rows[:, :-1].max(initial=0) > 255
    ):
        raise InputError(
            f"{path}: rows must hold a square image's pixels (0-255) then the label; got {rows.shape[1]} columns"
        )
    images = rows[:, :-1].astype(np.uint8).reshape(-1, side, side)
    labels = rows[:, -1]
    return LabelledImages(list(images), labels, _class_names(folder, int(labels.max()) + 1))


# -- a folder per class --------------------------------------------------------------------------
def _load_class_folders(folder: Path) -> LabelledImages:
    from uniembed.images.files import walk_images

    class_dirs = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not class_dirs:
        raise InputError(
            f"{folder}: expected one sub-folder of images per class (or IDX files, or a labels file)"
        )
    images, labels = [], []
    for index, class_dir in enumerate(class_dirs):
        found = walk_images(class_dir)
        images += found.files
        labels += [index] * len(found.files)
    return LabelledImages(
        images, np.asarray(labels, dtype=np.int64), [d.name.replace("_", " ") for d in class_dirs]
    )


# -- record files --------------------------------------------------------------------------------
def pick_column(
    where: str, record: dict, given: str | None, candidates: tuple[str, ...], what: str, option: str
) -> str:
    if given is not None:
        if given not in record:
            raise InputError(f"{where}: no column {given!r}; columns are: {columns_hint(record)}")
        return given
    found = next((c for c in candidates if c in record), None)
    if found is None:
        raise InputError(
            f"{where}: no {what} column ({', '.join(candidates)}); columns are: {columns_hint(record)}; "
            f"choose one with {option}"
        )
    return found


def rows_of_split(path: Path, split: str):
    """(where, record) of `path` whose `split` column (when there is one) equals `split`."""
    for where, record in iter_records(path):
        if not isinstance(record, dict):
            raise InputError(
                f"{where}: expected a record with columns, got {type(record).__name__}"
            )
        if "split" in record and record["split"] != split:
            continue
        yield where, record


def _load_labelled_records(
    path: Path, split: str, image_column: str | None, label_column: str | None
) -> LabelledImages:
    from uniembed.io.items import image_value

    base, images, names = path.resolve().parent, [], []
    image_key = label_key = None
    for where, record in rows_of_split(path, split):
        if image_key is None:
            image_key = pick_column(
                where, record, image_column, IMAGE_COLUMNS, "image", "--image-column"
            )
            label_key = pick_column(
                where, record, label_column, LABEL_COLUMNS, "label", "--label-column"
            )
        image = image_value(where, record.get(image_key), base)
        if image is None or record.get(label_key) in (None, ""):
            raise InputError(f"{where}: empty image or label")
        images.append(image)
        names.append(str(record[label_key]))
    classes = sorted(set(names))
    index = {name: i for i, name in enumerate(classes)}
    return LabelledImages(images, np.asarray([index[n] for n in names], dtype=np.int64), classes)


def load_image_text_pairs(
    path: str | Path,
    split: str = "test",
    *,
    image_column: str | None = None,
    text_column: str | None = None,
    limit: int | None = None,
) -> ImageTextPairs:
    """One (image, caption) pair per row of a record file; rows with an empty caption are left out
    (and counted in the error when none remain)."""
    from uniembed.io.items import image_value

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: expected a jsonl/csv/parquet file of image-caption pairs")
    base, images, texts, empty = path.resolve().parent, [], [], 0
    image_key = text_key = None
    for where, record in rows_of_split(path, split):
        if image_key is None:
            image_key = pick_column(
                where, record, image_column, IMAGE_COLUMNS, "image", "--image-column"
            )
            text_key = pick_column(
                where, record, text_column, CAPTION_COLUMNS, "caption", "--text-column"
            )
        text = record.get(text_key)
        if not isinstance(text, str) or not text.strip():
            empty += 1
            continue
        image = image_value(where, record.get(image_key), base)
        if image is None:
            raise InputError(f"{where}: empty image")
        images.append(image)
        texts.append(text.replace("|", " ") if text_key == "keywords" else text)
        if limit is not None and len(images) >= limit:
            break
    if not images:
        raise InputError(
            f"{path}: no image-caption pairs in split {split!r} ({empty} rows with an empty caption)"
        )
    return ImageTextPairs(images, texts)


# -- MMEB-style candidate lists ------------------------------------------------------------------
@dataclass
class CandidateLists:
    queries: list[dict]  # items {"image"?, "text"?}
    candidates: list[list[dict]]  # per query; the first is the positive (MMEB's layout)


def load_candidate_lists(path: str | Path) -> CandidateLists:
    """jsonl rows {"query": item, "candidates": [item, ...]} whose first candidate is the right
    one (as MMEB stores them), or with "positive": its index. Items: {"image": path, "text": ...};
    MMEB's own field names (qry_text, qry_img_path, tgt_text, tgt_img_path) are read too. A
    folder: its single .jsonl file."""
    from uniembed.io.items import image_value

    path = Path(path)
    if path.is_dir():
        files = sorted(path.glob("*.jsonl"))
        if len(files) != 1:
            raise InputError(
                f"{path}: expected exactly one .jsonl file of candidate lists, found {len(files)}"
            )
        path = files[0]
    base = path.resolve().parent
    queries, candidates = [], []

    def item(where: str, value) -> dict:
        if not isinstance(value, dict):
            raise InputError(
                f"{where}: an item is an object with 'image' and/or 'text', got {type(value).__name__}"
            )
        out = {}
        if value.get("text"):
            out["text"] = value["text"]
        image = image_value(where, value.get("image"), base)
        if image is not None:
            out["image"] = image
        if not out:
            raise InputError(f"{where}: an item has neither an image nor a text")
        return out

    for where, record in iter_records(path):
        if not isinstance(record, dict):
            raise InputError(f"{where}: expected an object, got {type(record).__name__}")
        if "qry_text" in record or "qry_img_path" in record:  # MMEB's layout
            query = {"text": record.get("qry_text"), "image": record.get("qry_img_path")}
            texts, paths = record.get("tgt_text") or [], record.get("tgt_img_path") or []
            listed = [
                {"text": t, "image": p}
                for t, p in zip(texts or [None] * len(paths), paths or [None] * len(texts))
            ]
            positive = 0
        else:
            if "query" not in record or "candidates" not in record:
                raise InputError(
                    f"{where}: expected 'query' and 'candidates'; columns are: {columns_hint(record)}"
                )
            query, listed, positive = (
                record["query"],
                record["candidates"],
                record.get("positive", 0),
            )
        if not isinstance(listed, list) or len(listed) < 2:
            raise InputError(
                f"{where}: 'candidates' must list at least 2 items (1 positive, negatives)"
            )
        if (
            isinstance(positive, bool)
            or not isinstance(positive, int)
            or not 0 <= positive < len(listed)
        ):
            raise InputError(f"{where}: 'positive' must index the candidates, got {positive!r}")
        items = [item(f"{where} candidate {i}", c) for i, c in enumerate(listed)]
        items.insert(0, items.pop(positive))
        queries.append(item(f"{where} query", query))
        candidates.append(items)
    if not queries:
        raise InputError(f"{path}: no candidate lists")
    return CandidateLists(queries, candidates)
