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
    prompt: str | None = None,
    normalize: bool = True,
    dim: int | None = None,
    long: str = "truncate",
    batch_size: int = 32,
    rows_per_step: int = 2048,
    show_progress: bool = True,
) -> EmbedFileReport:
    """Embed every row of `source` into `target` (.npy or .parquet), row i -> vector i.

    Reads `rows_per_step` rows at a time, so memory stays flat. The output appears only when
    complete; on any error (bad row, interrupt) no output file is left behind.
    """
    if isinstance(rows_per_step, bool) or not isinstance(rows_per_step, int) or rows_per_step < 1:
        raise InputError(f"rows_per_step must be a positive integer, got {rows_per_step!r}")
    if Path(source).resolve() == Path(target).resolve():
        raise InputError(f"{target} is also the input: writing it would destroy the texts; choose another -o")
    texts = read_texts(source, column)
    first = list(islice(texts, rows_per_step))  # read before opening the output: fail early on bad input
    if not first:
        raise InputError(f"{source}: no rows to embed")
    out_dim = dim or model.dim
    truncated = 0
    bar = _bar(show_progress)
    with open_vector_writer(target, out_dim) as writer:
        block = first
        while block:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", TruncationWarning)  # one warning for the file, below
                vectors = model.encode(
                    block, prompt=prompt, normalize=normalize, dim=dim, long=long, batch_size=batch_size, show_progress=False
                )
            writer.write(vectors)
            truncated += model.last_report.n_truncated
            bar.update(len(block))
            block = list(islice(texts, rows_per_step))
    bar.close()
    if truncated:
        warnings.warn(
            f"{truncated} of {writer.rows} rows of {source} were longer than {model.max_tokens} tokens and were "
            f"truncated; use long='chunk' (--long chunk) to embed them whole",
            TruncationWarning,
            stacklevel=2,
        )
    return EmbedFileReport(Path(target), writer.rows, out_dim, truncated)


def _bar(show: bool):
    from tqdm.auto import tqdm

    return tqdm(desc="embedding", unit="rows", disable=not show)
