"""Reading texts from files and writing vectors: formats, bad rows, streaming, atomic output."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest

from uniembed import InputError
from uniembed.io import embed_file, read_texts
from uniembed.io.writers import open_vector_writer

TEXTS = ["first text", "", "third, with a comma", 'fourth "quoted"']


def write_inputs(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "in.txt").write_text("\n".join(TEXTS) + "\n")
    (tmp_path / "in.jsonl").write_text(
        "\n".join(json.dumps({"id": i, "body": t}) for i, t in enumerate(TEXTS)) + "\n"
    )
    (tmp_path / "strings.jsonl").write_text("\n".join(json.dumps(t) for t in TEXTS) + "\n")
    import csv

    with open(tmp_path / "in.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "body"])
        writer.writerows(enumerate(TEXTS))
    with gzip.open(tmp_path / "in.csv.gz", "wt", newline="") as f:
        f.write((tmp_path / "in.csv").read_text())
    pq.write_table(pa.table({"id": list(range(4)), "body": TEXTS}), tmp_path / "in.parquet")


@pytest.mark.parametrize(
    ("name", "column"),
    [
        ("in.txt", None),
        ("in.jsonl", "body"),
        ("strings.jsonl", None),
        ("in.csv", "body"),
        ("in.csv.gz", "body"),
        ("in.parquet", "body"),
    ],
)
def test_every_input_format_reads_the_same_texts(tmp_path, name, column):
    write_inputs(tmp_path)
    assert list(read_texts(tmp_path / name, column)) == TEXTS


def test_unknown_column_names_the_columns(tmp_path):
    write_inputs(tmp_path)
    with pytest.raises(
        InputError,
        match=r"in.csv:2: no column 'text'; columns are: id, body \(choose one with --column\)",
    ):
        list(read_texts(tmp_path / "in.csv"))


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"text": null}', "in.jsonl:3: column 'text' is empty \\(null\\)"),
        ('{"text": 5}', "in.jsonl:3: column 'text' is int"),
        ("{broken", "in.jsonl:3: invalid JSON"),
        ("[1, 2]", "in.jsonl:3: expected a JSON string or object, got list"),
    ],
)
def test_bad_jsonl_rows_name_file_and_line(tmp_path, line, message):
    (tmp_path / "in.jsonl").write_text('{"text": "a"}\n{"text": "b"}\n' + line + "\n")
    with pytest.raises(InputError, match=message):
        list(read_texts(tmp_path / "in.jsonl"))


def test_missing_unsupported_and_binary_files(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        list(read_texts(tmp_path / "absent.txt"))
    (tmp_path / "data.xlsx").write_text("x")
    with pytest.raises(InputError, match="unsupported input format 'xlsx'"):
        list(read_texts(tmp_path / "data.xlsx"))
    (tmp_path / "latin.txt").write_bytes(b"caf\xe9\n")
    with pytest.raises(InputError, match="not UTF-8"):
        list(read_texts(tmp_path / "latin.txt"))


@pytest.mark.parametrize("suffix", ["npy", "parquet"])
def test_embed_file_writes_row_aligned_vectors(tmp_path, fake, suffix):
    write_inputs(tmp_path)
    target = tmp_path / f"out.{suffix}"
    report = embed_file(
        fake, tmp_path / "in.csv", target, column="body", rows_per_step=3, show_progress=False
    )
    assert (report.rows, report.dim) == (4, 8)
    expected = fake.encode(TEXTS)
    if suffix == "npy":
        got = np.load(target)
    else:
        import pyarrow.parquet as pq

        table = pq.read_table(target)
        assert table.column("row").to_pylist() == [0, 1, 2, 3]
        got = np.array(table.column("embedding").to_pylist(), dtype=np.float32)
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp file left


def test_embed_file_streams_in_steps(tmp_path, fake):
    (tmp_path / "many.txt").write_text("\n".join(f"text {i}" for i in range(25)) + "\n")
    embed_file(
        fake,
        tmp_path / "many.txt",
        tmp_path / "out.npy",
        rows_per_step=10,
        batch_size=4,
        show_progress=False,
    )
    assert max(len(batch) for batch in fake.calls) == 4
    assert sum(len(batch) for batch in fake.calls) == 25
    assert np.load(tmp_path / "out.npy", mmap_mode="r").shape == (25, 8)


def test_a_bad_row_midway_leaves_no_output_and_keeps_the_old_file(tmp_path, fake):
    source = tmp_path / "in.jsonl"
    source.write_text(
        "".join(json.dumps({"text": f"t{i}"}) + "\n" for i in range(6)) + '{"text": null}\n'
    )
    target = tmp_path / "out.npy"
    target.write_bytes(b"previous contents")
    with pytest.raises(InputError, match="in.jsonl:7"):
        embed_file(fake, source, target, rows_per_step=2, show_progress=False)
    assert target.read_bytes() == b"previous contents"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl", "out.npy"]


def test_an_empty_input_file_is_an_error(tmp_path, fake):
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(InputError, match="no rows to embed"):
        embed_file(fake, tmp_path / "empty.txt", tmp_path / "out.npy", show_progress=False)
    assert not (tmp_path / "out.npy").exists()


def test_output_format_and_folder_are_checked(tmp_path):
    with pytest.raises(InputError, match="unsupported output format 'csv'"):
        open_vector_writer(tmp_path / "out.csv", 4)
    with pytest.raises(InputError, match="does not exist"):
        open_vector_writer(tmp_path / "no" / "out.npy", 4)


def test_npy_writer_handles_large_row_counts_in_its_header(tmp_path):
    with open_vector_writer(tmp_path / "v.npy", 3) as writer:
        writer.rows = 10**12 - 2  # the header must still fit its reserved space
        writer.write(np.ones((2, 3), dtype=np.float32))
    header = (tmp_path / "v.npy").read_bytes()[:128]
    assert b"(1000000000000, 3)" in header


def test_embed_file_memory_stays_flat_as_the_input_grows(tmp_path):
    import tracemalloc

    from helpers import FakeEncoder

    def peak_bytes(rows: int) -> int:
        source = tmp_path / f"{rows}.txt"
        source.write_text("".join(f"line number {i} with some words\n" for i in range(rows)))
        encoder = FakeEncoder(dim=16)
        encoder.encode_batch = lambda texts, long="truncate": np.ones(
            (len(texts), 16), np.float32
        )  # cheap
        tracemalloc.start()
        embed_file(
            encoder, source, tmp_path / f"{rows}.npy", rows_per_step=500, show_progress=False
        )
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert np.load(tmp_path / f"{rows}.npy", mmap_mode="r").shape == (rows, 16)
        return peak

    small, large = peak_bytes(2_000), peak_bytes(40_000)
    # 20x the rows (and 20x the output bytes) must not mean 20x the memory: bounded by one step
    assert large < 2 * small


def test_an_interrupt_midway_leaves_no_output(tmp_path, fake):
    (tmp_path / "in.txt").write_text("".join(f"t{i}\n" for i in range(10)))
    calls = {"n": 0}
    real = fake.encode_batch

    def interrupted(texts, long="truncate"):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(texts, long=long)

    fake.encode_batch = interrupted
    with pytest.raises(KeyboardInterrupt):
        embed_file(
            fake, tmp_path / "in.txt", tmp_path / "out.npy", rows_per_step=3, show_progress=False
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.txt"]
