"""The command line: each command end to end on the tiny model, and one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from uniembed.cli.main import build_parser, main


def run(capsys, *argv):
    code = main(list(map(str, argv)))
    out, err = capsys.readouterr()
    return code, out, err


def test_embed_writes_vectors(tmp_path, tiny_dir, capsys):
    (tmp_path / "texts.txt").write_text("hello world\n\na cat\n")
    code, out, _ = run(
        capsys,
        "embed",
        tmp_path / "texts.txt",
        "-o",
        tmp_path / "v.npy",
        "--model",
        tiny_dir,
        "--device",
        "cpu",
    )
    assert code == 0 and "wrote 3 vectors of dim 32" in out
    assert np.load(tmp_path / "v.npy").shape == (3, 32)


def test_embed_csv_column_and_matryoshka_dim(tmp_path, tiny_dir, capsys):
    (tmp_path / "t.csv").write_text("id,body\n1,hello\n2,a cat\n")
    code, _, _ = run(
        capsys,
        "embed",
        tmp_path / "t.csv",
        "-o",
        tmp_path / "v.parquet",
        "--column",
        "body",
        "--dim",
        "8",
        "--model",
        tiny_dir,
    )
    assert code == 0 and (tmp_path / "v.parquet").exists()


def test_embed_warns_about_truncation_in_one_line(tmp_path, tiny_dir, capsys):
    (tmp_path / "t.txt").write_text(" ".join(["the cat sat on the mat"] * 10) + "\nshort\n")
    code, _, err = run(
        capsys, "embed", tmp_path / "t.txt", "-o", tmp_path / "v.npy", "--model", tiny_dir
    )
    assert code == 0 and "warning: 1 of 2 rows" in err and "--long chunk" in err


@pytest.mark.parametrize(
    ("setup", "args", "message"),
    [
        (lambda p: None, ["absent.txt"], "absent.txt: no such file"),
        (
            lambda p: (p / "t.csv").write_text("a,b\n1,2\n"),
            ["t.csv"],
            "no column 'text'; columns are: a, b",
        ),
        (
            lambda p: (p / "t.jsonl").write_text('{"text": "a"}\n{"text": null}\n'),
            ["t.jsonl"],
            "t.jsonl:2: column 'text' is empty",
        ),
        (
            lambda p: (p / "t.txt").write_text("a\n"),
            ["t.txt", "--model", "no/such/dir/model"],
            "no model named",
        ),
    ],
)
def test_bad_input_gives_one_line_error_and_exit_2(
    tmp_path, tiny_dir, capsys, monkeypatch, setup, args, message
):
    monkeypatch.chdir(tmp_path)
    setup(tmp_path)
    if "--model" not in args:
        args = [*args, "--model", str(tiny_dir)]
    code, _, err = run(capsys, "embed", *args, "-o", "out.npy")
    assert code == 2 and message in err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "out.npy").exists()


def test_corrupt_model_directory_is_one_line(tmp_path, tiny_copy, capsys):
    (tiny_copy / "model.safetensors").write_bytes(b"not safetensors")
    (tmp_path / "t.txt").write_text("a\n")
    code, _, err = run(
        capsys, "embed", tmp_path / "t.txt", "-o", tmp_path / "o.npy", "--model", tiny_copy
    )
    assert code == 2 and "cannot load the weights" in err and err.count("\n") == 1


def test_eval_prints_a_table_and_saves_json(tmp_path, tiny_dir, capsys):
    path = tmp_path / "sts.csv"
    path.write_text(
        "sentence1,sentence2,score\na cat,a cat,5\nthe sun,a dog,0\nhello world,hello,3\n"
    )
    code, out, _ = run(
        capsys, "eval", "sts", path, "--model", tiny_dir, "--output-dir", tmp_path / "results"
    )
    assert code == 0 and "cosine_spearman" in out
    saved = json.loads(next((tmp_path / "results").rglob("*.json")).read_text())
    assert saved["task_name"] == "sts-sts"
    code, out, _ = run(capsys, "eval", "sts", path, "--model", tiny_dir, "--json", "--no-save")
    assert (
        code == 0
        and json.loads(out)["scores"]["test"][0]["main_score"]
        == saved["scores"]["test"][0]["main_score"]
    )


def test_models_lists_the_default(capsys):
    code, out, _ = run(capsys, "models")
    assert code == 0 and "all-MiniLM-L6-v2 (default)" in out and "offline" in out
    code, out, _ = run(capsys, "models", "--json")
    assert any(m["name"] == "all-MiniLM-L6-v2" for m in json.loads(out))


def test_every_command_has_help(capsys):
    parser = build_parser()
    for argv in (
        ["--help"],
        ["embed", "--help"],
        ["eval", "--help"],
        ["eval", "retrieval", "--help"],
        ["models", "--help"],
        ["demo", "--help"],
    ):
        with pytest.raises(SystemExit) as exit_info:
            parser.parse_args(argv)
        assert exit_info.value.code == 0
    assert "usage: uniembed" in capsys.readouterr().out


def test_cli_reference_is_current():
    from pathlib import Path

    from uniembed.cli.reference import render_reference

    committed = (Path(__file__).resolve().parents[1] / "docs" / "cli.md").read_text()
    assert committed == render_reference(), (
        "regenerate: python -m uniembed.cli.reference > docs/cli.md"
    )


def test_demo_runs_end_to_end_on_the_shipped_data(tiny_dir):
    from uniembed.demo import DEMO_QUERIES, run_demo

    lines: list[str] = []
    scores = run_demo(str(tiny_dir), show=lines.append)
    text = "\n".join(lines)
    assert set(scores) == {"classification", "clustering"} and all(
        0 <= s <= 1 for s in scores.values()
    )
    assert "collection: 1232 banking questions" in text and "hybrid (BM25 + dense)" in text
    assert all(f"query: {q}" in text for q in DEMO_QUERIES)


def test_collection_commands_end_to_end(tmp_path, tiny_dir, capsys):
    corpus = tmp_path / "corpus.jsonl"
    rows = [
        {"_id": "1", "title": "Cats", "text": "a cat sat on the mat", "lang": "en"},
        {"_id": "2", "title": "Dogs", "text": "the dog sat in the sun", "lang": "fr"},
        {"_id": "3", "title": "Rain", "text": "rain and blue sky", "lang": "en"},
    ]
    corpus.write_text("".join(json.dumps(r) + "\n" for r in rows))
    col = tmp_path / "docs"
    assert (
        run(
            capsys,
            "collection",
            "create",
            col,
            "--model",
            tiny_dir,
            "--index",
            "hnsw",
            "--quantize",
            "binary",
        )[0]
        == 0
    )
    code, out, _ = run(
        capsys, "collection", "add", col, corpus, "--id-field", "_id", "--text", "title,text"
    )
    assert code == 0 and "added 3 items" in out
    code, out, _ = run(capsys, "search", col, "a cat", "-k", "2", "--filter", "lang=en", "--json")
    hits = json.loads(out)
    assert code == 0 and len(hits) == 2 and all(h["payload"]["lang"] == "en" for h in hits)
    code, out, _ = run(capsys, "search", col, "rain", "--mode", "hybrid")
    assert code == 0 and "Rain rain and blue sky" in out
    code, out, _ = run(capsys, "collection", "info", col, "--json")
    info = json.loads(out)
    assert (info["count"], info["index"], info["quantize"]) == (3, "binary", "binary")
    assert run(capsys, "collection", "delete-items", col, "1", "2")[0] == 0
    assert run(capsys, "collection", "rebuild", col)[0] == 0
    code, out, _ = run(capsys, "collection", "info", col)
    assert "items: 1" in out


def test_collection_errors_are_one_line(tmp_path, tiny_dir, capsys):
    col = tmp_path / "docs"
    run(capsys, "collection", "create", col, "--model", tiny_dir)
    code, _, err = run(capsys, "search", col, "x", "--filter", "colour=red")
    assert (
        code == 2
        and err.startswith("error: unknown filter field 'colour'")
        and err.count("\n") == 1
    )
    code, _, err = run(capsys, "search", tmp_path / "nothing", "x")
    assert code == 2 and "no such collection" in err
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "1", "text": "ok"}\n{"id": "2"}\n')
    code, _, err = run(capsys, "collection", "add", col, bad)
    assert code == 2 and "bad.jsonl:2: no field(s) ['text']" in err


def test_collection_add_names_the_file_and_line_of_a_refused_item(tmp_path, tiny_dir, capsys):
    # issue 30: a NUL in an id printed a traceback (PostgreSQL) or "id 2" of an unseen batch
    from uniembed.cli.main import main

    path = tmp_path / "docs"
    assert main(["collection", "create", str(path), "--model", str(tiny_dir)]) == 0
    rows = tmp_path / "rows.jsonl"
    rows.write_text(
        '{"id": "a", "text": "x"}\n{"id": "b", "text": "y"}\n{"id": "c\\u0000", "text": "z"}\n'
    )
    capsys.readouterr()
    assert main(["collection", "add", str(path), str(rows)]) == 2
    err = capsys.readouterr().err
    assert (
        err.startswith(f"error: {rows}:3: id 2 ('c\\x00') holds the control character")
        and "Traceback" not in err
    )
