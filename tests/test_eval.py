"""The evaluation tasks end to end on small files whose right answers are known by construction."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from helpers import FakeEncoder, KeywordEncoder
from uniembed import InputError
from uniembed.eval import evaluate, format_table, save_result
from uniembed.eval.loaders import load_sts
from uniembed.eval.tasks import undersample
from uniembed.index import TopK

KEYWORDS = ["card", "money", "rain", "cat"]


def write_csv(path, header, rows):
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def test_sts_correlates_similarity_with_gold(tmp_path):
    rows = [
        ("card card", "card card", 5.0),
        ("card money", "card", 3.0),
        ("rain", "cat", 0.0),
        ("cat money money", "cat", 2.5),
    ]
    path = write_csv(tmp_path / "sts.csv", ["sentence1", "sentence2", "score"], rows)
    result = evaluate(KeywordEncoder(KEYWORDS), "sts", path, show_progress=False)
    assert result.main_metric == "cosine_spearman" and result.main_score == pytest.approx(1.0)


def test_stsbenchmark_tab_format_is_parsed(tmp_path):
    path = tmp_path / "sts-test.csv"
    path.write_text(
        'genre\tfile\tyear\t0001\t4.5\tA "quoted" one.\tAnother, with comma.\textra\tcols\n'
        "genre\tfile\tyear\t0002\t1.0\tShort.\tOther.\n"
    )
    data = load_sts(path)
    assert (
        data.scores == [4.5, 1.0]
        and data.first[0] == 'A "quoted" one.'
        and data.second[1] == "Other."
    )


def write_beir(folder):
    (folder / "qrels").mkdir(parents=True)
    docs = {
        "d1": ("Cards", "card card"),
        "d2": ("", "money money"),
        "d3": ("Weather", "rain"),
        "d4": ("", "cat"),
    }
    (folder / "corpus.jsonl").write_text(
        "".join(json.dumps({"_id": k, "title": t, "text": x}) + "\n" for k, (t, x) in docs.items())
    )
    queries = {"q1": "card", "q2": "rain", "q3": "cat", "q4": "unjudged"}
    (folder / "queries.jsonl").write_text(
        "".join(json.dumps({"_id": k, "text": v}) + "\n" for k, v in queries.items())
    )
    (folder / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td3\t1\nq3\td2\t1\n"
    )


def test_retrieval_scores_a_beir_folder(tmp_path):
    write_beir(tmp_path / "beir")
    result = evaluate(
        KeywordEncoder(KEYWORDS), "retrieval", tmp_path / "beir", show_progress=False, block_rows=2
    )
    # q1 and q2 find their document first; q3 ("cat") is judged against the money document: a miss
    assert result.scores["mrr_at_1"] == pytest.approx(2 / 3)
    assert result.scores["recall_at_100"] == pytest.approx(1.0)
    assert result.main_metric == "ndcg_at_10"


def test_retrieval_needs_the_split_qrels(tmp_path):
    write_beir(tmp_path / "beir")
    with pytest.raises(InputError, match="dev.tsv"):
        evaluate(FakeEncoder(), "retrieval", tmp_path / "beir", split="dev", show_progress=False)


def test_top_k_over_blocks_equals_a_full_sort():
    rng = np.random.default_rng(0)
    queries, database = rng.normal(size=(5, 8)), rng.normal(size=(103, 8))
    best = TopK(queries, k=7)
    for start in range(0, 103, 10):
        best.add(database[start : start + 10])
    scores, rows = best.result()
    full = queries @ database.T
    np.testing.assert_array_equal(rows, np.argsort(-full, axis=1)[:, :7])
    np.testing.assert_allclose(scores, np.sort(full, axis=1)[:, ::-1][:, :7], rtol=1e-5)


def write_labelled(folder, per_label_train=20, per_label_test=5):
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", per_label_train), ("test", per_label_test)):
        rows = [(f"{word} {word} {i}", f"about_{word}") for word in KEYWORDS for i in range(n)]
        write_csv(folder / f"{split}.csv", ["text", "category"], rows)
    return folder


def test_classification_follows_the_mteb_protocol(tmp_path):
    folder = write_labelled(tmp_path / "intents")
    result = evaluate(
        KeywordEncoder(KEYWORDS),
        "classification",
        folder,
        samples_per_label=3,
        n_experiments=4,
        show_progress=False,
    )
    assert result.main_score == 1.0 and len(result.scores["scores_per_experiment"]) == 4


def test_undersampling_takes_per_label_counts_and_differs_per_experiment():
    labels = ["a"] * 10 + ["b"] * 10 + ["c"] * 2
    subsets = undersample(labels, n_experiments=3, per_label=4, seed=42)
    for subset in subsets:
        counts = {label: sum(labels[i] == label for i in subset) for label in "abc"}
        assert counts == {"a": 4, "b": 4, "c": 2}
    assert not np.array_equal(np.sort(subsets[0]), np.sort(subsets[1]))
    assert all(
        np.array_equal(a, b) for a, b in zip(subsets, undersample(labels, 3, 4, 42))
    )  # deterministic


def test_clustering_recovers_separable_groups(tmp_path):
    folder = write_labelled(tmp_path / "intents")
    result = evaluate(
        KeywordEncoder(KEYWORDS), "clustering", folder / "test.csv", show_progress=False
    )
    assert result.main_metric == "v_measure" and result.main_score == pytest.approx(1.0)


def test_pair_classification_reports_max_ap(tmp_path):
    rows = [("card", "card card", 1), ("rain", "rain", 1), ("card", "cat", 0), ("money", "rain", 0)]
    path = write_csv(tmp_path / "pairs.csv", ["sentence1", "sentence2", "label"], rows)
    result = evaluate(KeywordEncoder(KEYWORDS), "pairs", path, show_progress=False)
    assert result.scores["cosine_ap"] == pytest.approx(1.0) and result.main_metric == "max_ap"


def test_pairs_labels_must_be_binary(tmp_path):
    path = write_csv(tmp_path / "pairs.csv", ["sentence1", "sentence2", "label"], [("a", "b", 2)])
    with pytest.raises(InputError, match="pairs.csv:2: label must be 0 or 1"):
        evaluate(FakeEncoder(), "pairs", path, show_progress=False)


def test_unknown_task_and_option_are_refused(tmp_path):
    with pytest.raises(InputError, match="unknown task 'ranking'"):
        evaluate(FakeEncoder(), "ranking", tmp_path)
    with pytest.raises(InputError, match=r"has no option\(s\) \['split'\]"):
        evaluate(FakeEncoder(), "sts", tmp_path, split="dev")


def test_missing_label_column_names_the_columns(tmp_path):
    path = write_csv(tmp_path / "x.csv", ["text", "kind"], [("a", "b")])
    with pytest.raises(InputError, match="no label column.*columns are: text, kind"):
        evaluate(FakeEncoder(), "clustering", path, show_progress=False)


def test_results_are_saved_mteb_shaped(tmp_path):
    rows = [("card", "card", 5.0), ("rain", "cat", 0.0), ("cat", "cat money", 3.0)]
    path = write_csv(tmp_path / "sts.csv", ["sentence1", "sentence2", "score"], rows)
    result = evaluate(KeywordEncoder(KEYWORDS), "sts", path, name="MySTS", show_progress=False)
    saved = json.loads(save_result(result, tmp_path / "results").read_text())
    assert (
        saved["task_name"] == "MySTS"
        and saved["scores"]["test"][0]["main_score"] == result.main_score
    )
    assert "cosine_spearman" in saved["scores"]["test"][0]
    assert "MySTS" in format_table([result])
