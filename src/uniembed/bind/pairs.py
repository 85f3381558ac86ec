"""Paired data for binding: each example is an input (an image, or a vector from another encoder)
with one or more captions, any of which may stand for it.

Images come from what the image evaluation reads (uniembed.eval.image_data): an IDX folder
(MNIST, Fashion-MNIST, the `train` split or a pixel csv such as train-5k), a folder per class, or
a record file (jsonl/csv/parquet) with an image column, optionally a `split` column. Captions are
templates over the example's fields: `{label}` (the class name) everywhere, and any column of a
record file (`{title}`, `{keywords}`, ...). Several templates give several captions; a template
whose field is empty for an example is skipped for it, and an example left with no caption is an
error.

A source given as a dict can leave classes out ({"path": ..., "exclude_labels": ["dress"]}): how
the open-vocabulary test of bench/bind.py trains without the classes it then asks about.

Positives: two examples whose caption sets are equal (label-templated captions: the same class)
are the same thing to the loss. Their pairs are positives for each other, never negatives (see
uniembed.bind.training's loss), so a batch never asks the model to tell "a photo of a shoe"
from "a photo of a shoe".
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from uniembed.errors import InputError

VECTOR_COLUMNS = ("vector", "embedding", "vectors")


@dataclass
class Pairs:
    inputs: list | np.ndarray  # images (anything encode_images takes) or an (n, d) float32 array
    captions: list[list[int]]  # per example: indices into `texts`
    texts: list[str]  # every distinct caption
    groups: np.ndarray  # per example: its positive group (equal caption sets share one)
    sources: list[str] = field(
        default_factory=list
    )  # where each part came from, for the model card

    def __len__(self) -> int:
        return len(self.captions)

    def subset(self, rows: np.ndarray) -> Pairs:
        inputs = (
            self.inputs[rows]
            if isinstance(self.inputs, np.ndarray)
            else [self.inputs[i] for i in rows]
        )
        return Pairs(
            inputs, [self.captions[i] for i in rows], self.texts, self.groups[rows], self.sources
        )


def template_fields(template: str) -> list[str]:
    """The field names a caption template uses, or InputError when it is not a valid template."""
    if not isinstance(template, str) or not template.strip():
        raise InputError(f"a caption template must be a non-empty string, got {template!r}")
    try:
        names = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as exc:
        raise InputError(f"caption template {template!r} is not a valid template: {exc}") from None
    if any(not name.isidentifier() for name in names):
        raise InputError(
            f"caption template {template!r}: fields are named, e.g. {{label}} or {{title}}"
        )
    return names


def image_pairs(sources: list, templates: list[str], split: str = "train") -> Pairs:
    """Pairs from one or more image sources. A source is a path (captioned by `templates`) or a
    dict {"path": ..., "captions": [templates]} with its own templates."""
    described, inputs, caption_lists = [], [], []
    for source in sources:
        path, own, exclude = _source(source)
        chosen = own or list(templates)
        if not chosen:
            raise InputError(
                f"binding images needs captions: give {path} at least one template, e.g. 'a photo of a {{label}}'"
            )
        for template in chosen:
            template_fields(template)
        examples = [
            e for e in _image_examples(path, split) if str(e[2].get("label")) not in exclude
        ]
        if not examples:
            raise InputError(
                f"{path}: no images left in split {split!r} after excluding {sorted(exclude)}"
            )
        where_missing = [
            where for where, _, fields in examples if not _render(chosen, fields, where)
        ]
        if where_missing:
            raise InputError(
                f"{path}: {len(where_missing)} of {len(examples)} images have no caption "
                f"(every template's fields are empty), the first: {where_missing[0]}"
            )
        for where, image, fields in examples:
            inputs.append(image)
            caption_lists.append(_render(chosen, fields, where))
        described.append(
            f"{path} ({split}, {len(examples)} images; captions: {' | '.join(chosen)})"
        )
    if not inputs:
        raise InputError("binding images needs at least one image source")
    return _indexed(inputs, caption_lists, described)


def _source(source) -> tuple[Path, list[str], set[str]]:
    """(path, its own templates, labels to leave out) of a source."""
    if isinstance(source, dict):
        unknown = sorted(set(source) - {"path", "captions", "exclude_labels"})
        if unknown or "path" not in source:
            raise InputError(
                "an image source is a path or {'path': ..., 'captions': [...], 'exclude_labels': [...]}, "
                f"got keys {sorted(source)}"
            )
        captions = source.get("captions") or []
        exclude = source.get("exclude_labels") or []
        for name, value in (("captions", captions), ("exclude_labels", exclude)):
            if isinstance(value, str) or not isinstance(value, list):
                raise InputError(f"{source['path']}: {name!r} must be a list, got {value!r}")
        return Path(source["path"]), list(captions), {str(label) for label in exclude}
    if not isinstance(source, (str, Path)):
        raise InputError(
            f"an image source is a path or {{'path': ..., 'captions': [...]}}, got {type(source).__name__}"
        )
    return Path(source), [], set()


def _render(templates: list[str], fields: dict, where: str) -> list[str]:
    captions = []
    for template in templates:
        missing = [name for name in template_fields(template) if name not in fields]
        if missing:
            raise InputError(
                f"caption template {template!r} names {missing[0]!r}, which {where} does not have; "
                f"its fields are: {', '.join(sorted(fields))}"
            )
        values = {name: _field_text(name, fields[name]) for name in template_fields(template)}
        if all(values.values()):
            caption = " ".join(template.format(**values).split())
            if caption and caption not in captions:
                captions.append(caption)
    return captions


def _field_text(name: str, value) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value if v not in (None, ""))
    text = str(value).strip()
    return text.replace("|", ", ") if name == "keywords" else text  # Open Clip Art's "a|b|c"


def _image_examples(path: Path, split: str):
    """(where, image, fields) per example of one source."""
    from uniembed.eval.image_data import load_labelled_images

    if path.is_file():
        yield from _record_examples(path, split)
        return
    data = load_labelled_images(path, split)
    for index, (image, label) in enumerate(zip(data.images, data.labels)):
        yield f"{path} image {index}", image, {"label": data.classes[int(label)]}


def _record_examples(path: Path, split: str):
    from uniembed.eval.image_data import IMAGE_COLUMNS, LABEL_COLUMNS, pick_column, rows_of_split
    from uniembed.io.items import image_value

    base, image_key, label_key = path.resolve().parent, None, None
    count = 0
    for where, record in rows_of_split(path, split):
        if image_key is None:
            image_key = pick_column(where, record, None, IMAGE_COLUMNS, "image", "an image column")
            label_key = next((c for c in LABEL_COLUMNS if c in record), None)
        image = image_value(where, record.get(image_key), base)
        if image is None:
            raise InputError(f"{where}: empty image")
        fields = {
            key: value
            for key, value in record.items()
            if key != image_key and not isinstance(value, bytes)
        }
        if label_key is not None:
            fields["label"] = record[label_key]
        count += 1
        yield where, image, fields
    if not count:
        raise InputError(f"{path}: no rows in split {split!r}")


def vector_pairs(
    vectors: str | Path, texts: str | Path, *, text_column: str | None = None
) -> Pairs:
    """Pairs of precomputed vectors (a .npy array, or a record file with a vector column and
    optionally an `id`) and texts (a record file; joined by `id` when both have one, else by row)."""
    from uniembed.io.records import iter_records, text_of

    ids, matrix = _read_vectors(Path(vectors))
    text_rows = [(where, record) for where, record in iter_records(texts)]
    if not text_rows:
        raise InputError(f"{texts}: no texts")
    text_ids = [record.get("id") if isinstance(record, dict) else None for _, record in text_rows]
    captions = [text_of(where, record, text_column) for where, record in text_rows]
    if ids is not None and all(i is not None for i in text_ids):
        by_id = {str(i): caption for i, caption in zip(text_ids, captions)}
        missing = [i for i in ids if i not in by_id]
        if missing:
            raise InputError(
                f"{texts}: no text for {len(missing)} of {len(ids)} vector ids, the first: {missing[0]!r}"
            )
        captions = [by_id[i] for i in ids]
    elif len(captions) != len(matrix):
        raise InputError(
            f"{vectors} holds {len(matrix)} vectors and {texts} {len(captions)} texts; without an 'id' "
            "column in both, they pair by row and must be as many"
        )
    return _indexed(
        matrix,
        [[caption] for caption in captions],
        [f"{vectors} + {texts} ({len(matrix)} vectors)"],
    )


def _read_vectors(path: Path) -> tuple[list[str] | None, np.ndarray]:
    from uniembed.io.records import iter_records

    if not path.is_file():
        raise InputError(f"{path}: no such file")
    if path.suffix == ".npy":
        try:
            matrix = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise InputError(f"{path}: not a numeric .npy array ({exc})") from None
        ids = None
    else:
        ids, rows, dim, key = [], [], None, None
        for where, record in iter_records(path):
            if not isinstance(record, dict):
                raise InputError(f"{where}: expected a record with a vector column")
            key = key or next((c for c in VECTOR_COLUMNS if c in record), None)
            if key is None:
                raise InputError(f"{where}: no vector column ({', '.join(VECTOR_COLUMNS)})")
            value = record.get(key)
            if not isinstance(value, (list, tuple, np.ndarray)) or not len(value):
                raise InputError(f"{where}: {key!r} must be a list of numbers")
            if dim is not None and len(value) != dim:
                raise InputError(
                    f"{where}: a vector of {len(value)} numbers, the earlier ones have {dim}: "
                    "vectors must all have one dimension"
                )
            dim = len(value)
            rows.append(value)
            ids.append(str(record["id"]) if record.get("id") is not None else None)
        try:
            matrix = np.asarray(
                rows
            )  # int64 when every value is an integer: refused below, as an integer .npy is
        except (TypeError, ValueError) as exc:
            raise InputError(f"{path}: vectors must hold numbers ({exc})") from None
        ids = ids if ids and all(i is not None for i in ids) else None
    if matrix.ndim != 2 or not len(matrix) or not np.issubdtype(matrix.dtype, np.number):
        raise InputError(f"{path}: expected an (n, dim) array of numbers, got shape {matrix.shape}")
    if not np.issubdtype(matrix.dtype, np.floating):
        raise InputError(
            f"{path}: the vectors are integers ({matrix.dtype}): embeddings are floats, and integers are "
            "more likely labels or ids; save them as float32 if they really are vectors"
        )
    with np.errstate(over="ignore"):
        matrix = np.ascontiguousarray(
            matrix, dtype=np.float32
        )  # before the checks: 1e300 becomes inf here
    if not np.isfinite(matrix).all():
        raise InputError(f"{path}: vectors contain NaN or inf (or values beyond float32)")
    zero = np.flatnonzero(~matrix.any(axis=1))
    if len(zero):
        raise InputError(
            f"{path}: vector {zero[0]} is all zeros ({len(zero)} such vectors): it has no direction to "
            "bind a text to"
        )
    return ids, matrix


def _indexed(inputs, caption_lists: list[list[str]], sources: list[str]) -> Pairs:
    texts: dict[str, int] = {}
    captions = [
        [texts.setdefault(c, len(texts)) for c in caption_list] for caption_list in caption_lists
    ]
    if len(texts) == 1 and len(caption_lists) > 1:
        raise InputError(
            f"{'; '.join(sources)}: all {len(caption_lists)} examples have the same caption "
            f"{next(iter(texts))!r:.80}: binding learns to tell captions apart, so it needs at least two"
        )
    group_of: dict[tuple, int] = {}
    groups = np.asarray(
        [group_of.setdefault(tuple(sorted(c)), len(group_of)) for c in captions], dtype=np.int64
    )
    return Pairs(inputs, captions, list(texts), groups, sources)
