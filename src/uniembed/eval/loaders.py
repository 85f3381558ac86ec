"""Loading standard evaluation formats: STS Benchmark, BEIR folders, labelled text files.

Every loader returns plain lists and dicts and raises InputError naming the file and line of
anything malformed.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from uniembed.errors import InputError
from uniembed.io.records import columns_hint, file_format, iter_records, text_of

LABEL_COLUMNS = ("label", "category", "intent", "labels")
TEXT_EXTENSIONS = (".csv", ".tsv", ".jsonl", ".parquet", ".csv.gz", ".jsonl.gz", ".tsv.gz")


@dataclass(frozen=True)
class STSData:
    first: list[str]
    second: list[str]
    scores: list[float]


@dataclass(frozen=True)
class RetrievalData:
    corpus_ids: list[str]
    corpus: list[str]  # title + " " + text, as BEIR and MTEB embed documents
    query_ids: list[str]
    queries: list[str]
    qrels: dict[str, dict[str, int]]


@dataclass(frozen=True)
class LabelledTexts:
    texts: list[str]
    labels: list[str]


@dataclass(frozen=True)
class PairData:
    first: list[str]
    second: list[str]
    labels: list[int]


def _require_file(path: Path) -> Path:
    if not path.exists():
        raise InputError(f"{path}: no such file or directory")
    return path


# -- STS -----------------------------------------------------------------------------------------
def load_sts(path: str | Path) -> STSData:
    """STS Benchmark's tab-separated files (score, sentence1, sentence2 in columns 4-6), or any
    csv/tsv/jsonl/parquet with columns sentence1, sentence2, score."""
    path = _require_file(Path(path))
    if _is_stsbenchmark(path):
        return _load_stsbenchmark(path)
    first, second, scores = [], [], []
    for where, record in iter_records(path):
        first.append(text_of(where, record, "sentence1"))
        second.append(text_of(where, record, "sentence2"))
        scores.append(_number(where, record, "score"))
    return _nonempty(STSData(first, second, scores), path)


def _is_stsbenchmark(path: Path) -> bool:
    if path.suffix != ".csv":
        return False
    with open(path, encoding="utf-8", errors="replace") as f:
        first_line = f.readline()
    return first_line.count("\t") >= 6


def _load_stsbenchmark(path: Path) -> STSData:
    first, second, scores = [], [], []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            fields = line.rstrip("\n").split("\t")  # no quoting: some sentences contain quotes
            if len(fields) < 7:
                raise InputError(
                    f"{path}:{number}: expected at least 7 tab-separated fields, got {len(fields)}"
                )
            score, a, b = fields[4:7]
            scores.append(_parse_float(f"{path}:{number}", score))
            first.append(a)
            second.append(b)
    return _nonempty(STSData(first, second, scores), path)


def _parse_float(where: str, value: object) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise InputError(f"{where}: score {value!r} is not a number") from None


def _number(where: str, record: object, column: str) -> float:
    if not isinstance(record, dict) or column not in record:
        columns = columns_hint(record) if isinstance(record, dict) else type(record).__name__
        raise InputError(f"{where}: no column {column!r}; columns are: {columns}")
    return _parse_float(where, record[column])


def _nonempty(data, path: Path):
    if not getattr(data, "first", None) and not getattr(data, "texts", None):
        raise InputError(f"{path}: no rows")
    return data


# -- retrieval (BEIR) ----------------------------------------------------------------------------
def load_beir(folder: str | Path, split: str = "test") -> RetrievalData:
    """A BEIR folder: corpus.jsonl, queries.jsonl and qrels/<split>.tsv. Only judged queries are kept."""
    folder = _require_file(Path(folder))
    qrels = _load_qrels(
        _require_file(folder / "qrels" / f"{split}.tsv")
        if (folder / "qrels").is_dir()
        else folder / "qrels"
    )
    corpus_ids, corpus = [], []
    for where, record in iter_records(_require_file(folder / "corpus.jsonl")):
        corpus_ids.append(_id_of(where, record))
        title = record.get("title") or ""
        corpus.append((title + " " + text_of(where, record, "text")).strip())
    query_ids, queries = [], []
    for where, record in iter_records(_require_file(folder / "queries.jsonl")):
        query_id = _id_of(where, record)
        if query_id in qrels:
            query_ids.append(query_id)
            queries.append(text_of(where, record, "text"))
    if not query_ids:
        raise InputError(f"{folder}: no query in queries.jsonl has judgements in qrels/{split}.tsv")
    return RetrievalData(corpus_ids, corpus, query_ids, queries, qrels)


def _id_of(where: str, record: object) -> str:
    if not isinstance(record, dict) or "_id" not in record:
        raise InputError(f"{where}: expected a JSON object with an '_id'")
    return str(record["_id"])


def _load_qrels(path: Path) -> dict[str, dict[str, int]]:
    if not path.is_file():
        raise InputError(f"{path}: no such qrels file")
    qrels: dict[str, dict[str, int]] = {}
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.reader(f, delimiter="\t")
        header = next(reader, None)
        if header is None:
            raise InputError(f"{path}: empty qrels file")
        for number, row in enumerate(reader, start=2):
            if len(row) < 3:
                raise InputError(f"{path}:{number}: expected query-id, corpus-id, score")
            try:
                grade = int(float(row[2]))
            except ValueError:
                raise InputError(f"{path}:{number}: score {row[2]!r} is not a number") from None
            qrels.setdefault(row[0], {})[row[1]] = grade
    return qrels


# -- labelled texts (classification, clustering) -------------------------------------------------
def load_labelled(
    path: str | Path, text_column: str = "text", label_column: str | None = None
) -> LabelledTexts:
    """Texts and labels from csv/tsv/jsonl/parquet; the label column defaults to the first of
    label, category, intent, labels that exists."""
    path = _require_file(Path(path))
    texts, labels = [], []
    for where, record in iter_records(path):
        if not isinstance(record, dict):
            raise InputError(
                f"{where}: expected a record with columns, got {type(record).__name__}"
            )
        column = label_column or _guess_label_column(where, record)
        if record.get(column) is None:
            raise InputError(
                f"{where}: no value in label column {column!r}; columns are: {columns_hint(record)}"
            )
        texts.append(text_of(where, record, text_column))
        labels.append(str(record[column]))
    return _nonempty(LabelledTexts(texts, labels), path)


def _guess_label_column(where: str, record: dict) -> str:
    for column in LABEL_COLUMNS:
        if column in record:
            return column
    raise InputError(
        f"{where}: no label column ({', '.join(LABEL_COLUMNS)}); columns are: {columns_hint(record)}"
    )


def split_file(folder: Path, split: str) -> Path:
    """`folder/<split>.<ext>` for the first text extension that exists."""
    for ext in TEXT_EXTENSIONS:
        candidate = folder / f"{split}{ext}"
        if candidate.is_file():
            return candidate
    raise InputError(f"{folder}: no {split} file ({split}.csv, {split}.jsonl, ...)")


# -- pair classification -------------------------------------------------------------------------
def load_pairs(path: str | Path) -> PairData:
    """Columns sentence1, sentence2 and label (1 = positive pair, 0 = negative)."""
    path = _require_file(Path(path))
    file_format(path)
    first, second, labels = [], [], []
    for where, record in iter_records(path):
        first.append(text_of(where, record, "sentence1"))
        second.append(text_of(where, record, "sentence2"))
        label = _number(where, record, "label")
        if label not in (0, 1):
            raise InputError(f"{where}: label must be 0 or 1, got {record['label']!r}")
        labels.append(int(label))
    return _nonempty(PairData(first, second, labels), path)
