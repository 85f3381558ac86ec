"""`embed_file`: a text file in, a vector file out, in flat memory however large the input."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

from uniembed.encoders.base import Encoder, TruncationWarning
from uniembed.errors import InputError
from uniembed.io.records import read_texts
from uniembed.io.writers import open_vector_writer


@dataclass(frozen=True)
class EmbedFileReport:
    path: Path
    rows: int
    dim: int
    truncated: int  # inputs cut at the model's max length


def embed_file(
    model: Encoder,
    source: str | Path,
    target: str | Path,
    *,
    column: str | None = None,
    image_column: str | None = None,
    image_weight: float = 0.5,
    prompt: str | None = None,
    normalize: bool = True,
    dim: int | None = None,
    long: str = "truncate",
    batch_size: int = 32,
    rows_per_step: int = 2048,
    show_progress: bool = True,
) -> EmbedFileReport:
    """Embed every row of `source` into `target` (.npy or .parquet), row i -> vector i.

    source: a text file (.txt, .jsonl, .csv, .tsv, .parquet: the `column`, default "text"); an
    item file (the same formats with an `image_column`, default "image" when the model embeds
    images: image-only, text-only and image+text rows, fused as `encode_items` fuses them); or a
    folder of images (walked in sorted order; a parquet output gets their relative paths as ids).

    Reads `rows_per_step` rows at a time, so memory stays flat. The output appears only when
    complete; on any error (bad row, interrupt) no output file is left behind.
    """
    if isinstance(rows_per_step, bool) or not isinstance(rows_per_step, int) or rows_per_step < 1:
        raise InputError(f"rows_per_step must be a positive integer, got {rows_per_step!r}")
    if Path(source).resolve() == Path(target).resolve():
        raise InputError(
            f"{target} is also the input: writing it would destroy the texts; choose another -o"
        )
    blocks, with_ids = _blocks(
        model,
        Path(source),
        column,
        image_column,
        image_weight,
        prompt,
        normalize,
        dim,
        long,
        batch_size,
        rows_per_step,
    )
    first = next(blocks, None)  # read before opening the output: fail early on bad input
    if first is None:
        raise InputError(f"{source}: no rows to embed")
    out_dim = dim or model.dim
    truncated = 0
    bar = _bar(show_progress)
    with open_vector_writer(target, out_dim, with_ids=with_ids) as writer:
        block = first
        while block is not None:
            vectors, ids, cut = block
            writer.write(vectors, ids)
            truncated += cut
            bar.update(len(vectors))
            block = next(blocks, None)
    bar.close()
    if truncated:
        warnings.warn(
            f"{truncated} of {writer.rows} rows of {source} were longer than {model.max_tokens} tokens and were "
            f"truncated; use long='chunk' (--long chunk) to embed them whole",
            TruncationWarning,
            stacklevel=2,
        )
    return EmbedFileReport(Path(target), writer.rows, out_dim, truncated)


def _blocks(
    model,
    source: Path,
    column,
    image_column,
    image_weight,
    prompt,
    normalize,
    dim,
    long,
    batch_size,
    rows_per_step,
):
    """(iterator of (vectors, ids or None, rows truncated) per block, whether rows have ids)."""
    from uniembed.io.items import has_image_column

    if source.is_dir():
        return _folder_blocks(model, source, dim, normalize, batch_size, rows_per_step), True
    wants_items = image_column is not None or (
        "image" in model.modalities and has_image_column(source, image_column)
    )
    if wants_items:
        return _item_blocks(
            model,
            source,
            column,
            image_column,
            image_weight,
            prompt,
            dim,
            batch_size,
            rows_per_step,
        ), False
    return _text_blocks(
        model, source, column, prompt, normalize, dim, long, batch_size, rows_per_step
    ), False


def _text_blocks(model, source, column, prompt, normalize, dim, long, batch_size, rows_per_step):
    texts = read_texts(source, column)
    while block := list(islice(texts, rows_per_step)):
        with warnings.catch_warnings():
            warnings.simplefilter(
                "ignore", TruncationWarning
            )  # one warning for the file, in embed_file
            vectors = model.encode(
                block,
                prompt=prompt,
                normalize=normalize,
                dim=dim,
                long=long,
                batch_size=batch_size,
                show_progress=False,
            )
        yield vectors, None, model.last_report.n_truncated


def _item_blocks(
    model, source, column, image_column, image_weight, prompt, dim, batch_size, rows_per_step
):
    from uniembed.encoders.multimodal import encode_items
    from uniembed.io.items import read_items

    rows = read_items(source, image_column, column)
    while block := list(islice(rows, rows_per_step)):
        wheres = [where for where, _ in block]
        vectors = encode_items(
            model,
            [item for _, item in block],
            image_weight=image_weight,
            prompt=prompt,
            dim=dim,
            batch_size=batch_size,
            show_progress=False,
            labels=wheres,
        )
        yield vectors, None, 0


def _folder_blocks(model, folder, dim, normalize, batch_size, rows_per_step):
    from uniembed.images.files import walk_images

    found = walk_images(folder)
    if found.skipped or found.outside:
        warnings.warn(f"{folder}: {found.summary()}", UserWarning, stacklevel=4)
    ids = found.ids
    for start in range(0, len(ids), rows_per_step):
        chunk = ids[start : start + rows_per_step]
        vectors = model.encode_images(
            [found.root / i for i in chunk],
            normalize=normalize,
            dim=dim,
            batch_size=batch_size,
            show_progress=False,
            labels=[f"{folder}/{i}" for i in chunk],
        )
        yield vectors, chunk, 0


def _bar(show: bool):
    from tqdm.auto import tqdm

    return tqdm(desc="embedding", unit="rows", disable=not show)
