"""The command line under hostile files and signals: one-line errors, no traceback, no partial
output, no silent data loss (issue 13)."""

from __future__ import annotations

import gzip
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from uniembed.cli.main import main


def run(capsys, *argv):
    code = main(list(map(str, argv)))
    out, err = capsys.readouterr()
    return code, out, err


def embed(capsys, tiny_dir, source, target, *extra):
    return run(
        capsys, "embed", source, "-o", target, "--model", tiny_dir, "--device", "cpu", *extra
    )


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("t.csv", "text,label\nhello,1\n"),
        ("t.tsv", "text\tlabel\nhello\t1\n"),
        ("t.jsonl", '{"text": "hello"}\n'),
    ],
)
def test_a_byte_order_mark_does_not_break_the_header(tmp_path, tiny_dir, capsys, name, content):
    (tmp_path / name).write_bytes(b"\xef\xbb\xbf" + content.encode())
    code, out, err = embed(capsys, tiny_dir, tmp_path / name, tmp_path / "v.npy")
    assert code == 0, err
    assert np.load(tmp_path / "v.npy").shape == (1, 32)


def test_truncated_and_fake_gzip_files_are_named_in_one_line(tmp_path, tiny_dir, capsys):
    whole = gzip.compress(b"hello\nworld\n" * 1000)
    (tmp_path / "cut.txt.gz").write_bytes(whole[: len(whole) // 2])
    (tmp_path / "fake.txt.gz").write_bytes(b"plain text, not gzip\n")
    for name in ("cut.txt.gz", "fake.txt.gz"):
        code, _, err = embed(capsys, tiny_dir, tmp_path / name, tmp_path / "v.npy")
        assert code == 2 and name in err and "gzip" in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.txt.gz", "fake.txt.gz"]


def test_an_output_that_is_a_folder_fails_before_any_work(tmp_path, tiny_dir, capsys):
    (tmp_path / "t.txt").write_text("hello\n")
    (tmp_path / "out.npy").mkdir()
    code, _, err = embed(capsys, tiny_dir, tmp_path / "t.txt", tmp_path / "out.npy")
    assert code == 2 and "is a folder" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.npy", "t.txt"]


def test_an_unterminated_quote_is_an_error_not_a_swallowed_file(tmp_path, tiny_dir, capsys):
    (tmp_path / "t.csv").write_text('text,label\n"unterminated,1\nmore,2\nand more,3\n')
    code, _, err = embed(capsys, tiny_dir, tmp_path / "t.csv", tmp_path / "v.npy")
    assert code == 2 and "t.csv" in err and "malformed CSV" in err
    assert not (tmp_path / "v.npy").exists()


def test_duplicate_header_columns_are_refused(tmp_path, tiny_dir, capsys):
    (tmp_path / "t.csv").write_text("text,text\na,b\n")
    code, _, err = embed(capsys, tiny_dir, tmp_path / "t.csv", tmp_path / "v.npy")
    assert code == 2 and "more than once" in err and "'text'" in err


def test_embedding_a_file_onto_itself_is_refused(tmp_path, tiny_dir, capsys):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"text": ["a", "b"]}), tmp_path / "x.parquet")
    before = (tmp_path / "x.parquet").read_bytes()
    code, _, err = embed(capsys, tiny_dir, tmp_path / "x.parquet", tmp_path / "x.parquet")
    assert code == 2 and "also the input" in err
    assert (tmp_path / "x.parquet").read_bytes() == before


def test_column_on_a_txt_file_says_txt_has_no_columns(tmp_path, tiny_dir, capsys):
    (tmp_path / "t.txt").write_text("hello\n")
    code, _, err = embed(
        capsys, tiny_dir, tmp_path / "t.txt", tmp_path / "v.npy", "--column", "body"
    )
    assert code == 2 and "has no columns" in err


def test_distill_on_an_empty_corpus_fails(tmp_path, tiny_dir, capsys):
    (tmp_path / "empty.txt").write_text("\n\n")
    code, _, err = run(
        capsys, "distill", tiny_dir, "-o", tmp_path / "static", "--corpus", tmp_path / "empty.txt"
    )
    assert code == 2 and "corpus holds no text" in err
    assert not (tmp_path / "static").exists()


def test_graph_embed_on_a_folder_points_at_its_edge_list(tmp_path, capsys):
    (tmp_path / "g").mkdir()
    (tmp_path / "g" / "edges.csv").write_text("source,target\na,b\n")
    code, _, err = run(capsys, "graph", "embed", tmp_path / "g", "--out", tmp_path / "n.npy")
    assert code == 2 and "is a folder" in err and "edges.csv" in err


@pytest.mark.parametrize("value", ["nan", "0", "-1", "inf"])
def test_serve_refuses_a_meaningless_body_limit(capsys, value):
    code, _, err = run(capsys, "serve", "--max-body-mb", value)
    assert code == 2 and "--max-body-mb" in err


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("nourl", "--remote-collection takes NAME=URL, got 'nourl'"),
        ("x=/tmp/folder", "'/tmp/folder' is not a postgresql:// or milvus:// collection URL"),
        ("../x=postgresql://u@h/db#c", "remote collection name '../x' is not allowed"),
        ("x=postgresql://user:secret@h/db", "names the collection after '#'"),
    ],
)
def test_serve_refuses_a_bad_remote_collection_without_showing_a_password(capsys, value, message):
    code, _, err = run(capsys, "serve", "--remote-collection", value)
    assert code == 2 and message in err and "secret" not in err


def test_a_tokenizer_larger_than_the_embedding_table_is_refused_at_load(tmp_path):
    import torch
    from safetensors.torch import load_file, save_file

    import uniembed
    from helpers import write_tiny_bert
    from uniembed.errors import ModelLoadError

    directory = write_tiny_bert(tmp_path / "m")
    weights = load_file(directory / "model.safetensors")
    key = next(k for k in weights if k.endswith("word_embeddings.weight"))
    weights[key] = weights[key][:10].contiguous()  # 10 rows for a larger vocabulary
    save_file(weights, directory / "model.safetensors")
    config = (directory / "config.json").read_text()
    import json

    data = json.loads(config)
    data["vocab_size"] = 10
    (directory / "config.json").write_text(json.dumps(data))
    del torch
    with pytest.raises(ModelLoadError, match="embedding table"):
        uniembed.load(directory, device="cpu")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_mid_run_leaves_no_partial_file(tmp_path, tiny_dir, sig):
    (tmp_path / "t.txt").write_text(
        "".join(f"the cat sat on the mat number {i}\n" for i in range(300_000))
    )
    command = [
        sys.executable,
        "-m",
        "uniembed.cli.main",
        "embed",
        str(tmp_path / "t.txt"),
        "-o",
        str(tmp_path / "v.npy"),
        "--model",
        str(tiny_dir),
        "--device",
        "cpu",
    ]
    # a suite started in the background (`cmd &`, nohup) inherits SIGINT as *ignored*, and Python
    # then installs no KeyboardInterrupt handler: give the child the default disposition a user's
    # terminal gives it, so the test does not depend on how pytest was launched
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parent)},
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 120
    while (
        not list(tmp_path.glob(".v.npy.*.tmp"))
        and time.monotonic() < deadline
        and process.poll() is None
    ):
        time.sleep(0.05)
    assert list(tmp_path.glob(".v.npy.*.tmp")), "the run never started writing"
    process.send_signal(sig)
    _, err = process.communicate(timeout=60)
    assert process.returncode == (143 if sig == signal.SIGTERM else 130), err
    assert b"no partial output" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.txt"]
