"""Training data: read and checked completely before any compute is spent.

pairs / triplets   {"anchor", "positive", "negative" | "negatives": [...]}   (jsonl, csv, parquet)
                   also {"query", "positive"} or {"sentence1", "sentence2"}
labelled texts     {"text", "label"}                                          (triplet loss)
scored pairs       {"sentence1", "sentence2", "score"}; STS Benchmark files   (CoSENT)
a BEIR folder      queries + corpus + qrels/<split>.tsv: (query, relevant document) pairs
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from uniembed.errors import InputError

ANCHOR_FIELDS = ("anchor", "query", "sentence1", "text1")
POSITIVE_FIELDS = ("positive", "document", "sentence2", "text2")


@dataclass
class PairSet:
    anchors: list[str]
    positives: list[str]
    negatives: list[list[str]] = field(default_factory=list)  # per anchor, possibly empty
    source: str = ""

    def __len__(self) -> int:
        return len(self.anchors)


@dataclass
class LabelledSet:
    texts: list[str]
    labels: list[str]
    source: str = ""

    def __len__(self) -> int:
        return len(self.texts)


@dataclass
class ScoredSet:
    first: list[str]
    second: list[str]
    scores: list[float]
    source: str = ""

    def __len__(self) -> int:
        return len(self.first)


KIND_OF_LOSS = {
    "mnrl": "pairs",
    "cached-mnrl": "pairs",
    "gist": "pairs",
    "triplet": "labelled",
    "cosent": "scored",
}


def load_training_data(path: str | Path, loss: str, *, split: str = "train"):
    """The examples in `path` in the shape `loss` needs; InputError naming the file and row otherwise."""
    if loss not in KIND_OF_LOSS:
        raise InputError(f"loss must be one of {sorted(KIND_OF_LOSS)}, got {loss!r}")
    path = Path(path)
    if not path.exists():
        raise InputError(f"training data {path} does not exist")
    kind = KIND_OF_LOSS[loss]
    if path.is_dir():
        if kind != "pairs":
            raise InputError(
                f"{path} is a folder (BEIR); the {loss} loss needs a file of {kind} examples"
            )
        return _beir_pairs(path, split)
    if kind == "scored":
        return _scored(path)
    records = _records(path)
    data = _pairs(path, records) if kind == "pairs" else _labelled(path, records)
    if len(data) < 2:
        raise InputError(f"{path}: {len(data)} usable example(s); training needs at least 2")
    return data


def _records(path: Path) -> list[tuple[str, dict]]:
    from uniembed.io.records import iter_records

    records = []
    for where, record in iter_records(path):
        if not isinstance(record, dict):
            raise InputError(
                f"{where}: training data needs records with named fields (jsonl, csv, parquet), not plain lines"
            )
        records.append((where, record))
    if not records:
        raise InputError(f"{path} holds no examples")
    return records


def _text(where: str, record: dict, names: tuple[str, ...], what: str) -> str:
    for name in names:
        if name in record:
            value = record[name]
            if not isinstance(value, str) or not value.strip():
                raise InputError(
                    f"{where}: field {name!r} ({what}) must be a non-empty string, got {value!r}"
                )
            return value
    raise InputError(
        f"{where}: no {what} field (one of {list(names)}); the row has {sorted(record)}"
    )


def _pairs(path: Path, records) -> PairSet:
    data = PairSet([], [], [], source=str(path))
    for where, record in records:
        data.anchors.append(_text(where, record, ANCHOR_FIELDS, "anchor"))
        data.positives.append(_text(where, record, POSITIVE_FIELDS, "positive"))
        negatives = record.get("negatives", record.get("negative"))
        if negatives is None:
            negatives = []
        elif isinstance(negatives, str):
            negatives = [negatives]
        if not isinstance(negatives, list) or not all(
            isinstance(n, str) and n.strip() for n in negatives
        ):
            raise InputError(
                f"{where}: negatives must be a non-empty string or a list of them, got {negatives!r}"
            )
        data.negatives.append(list(negatives))
    counts = {len(n) for n in data.negatives}
    if len(counts) > 1:
        raise InputError(
            f"{path}: rows have different numbers of negatives {sorted(counts)}; give every row the same number"
        )
    return data


def _labelled(path: Path, records) -> LabelledSet:
    data = LabelledSet([], [], source=str(path))
    for where, record in records:
        data.texts.append(_text(where, record, ("text", "sentence"), "text"))
        if "label" not in record or record["label"] in (None, ""):
            raise InputError(f"{where}: no label")
        data.labels.append(str(record["label"]))
    counts: dict[str, int] = {}
    for label in data.labels:
        counts[label] = counts.get(label, 0) + 1
    if max(counts.values()) < 2:
        raise InputError(
            f"{path}: every label occurs once: the triplet loss needs labels shared by two or more texts"
        )
    return data


def _scored(path: Path) -> ScoredSet:
    from uniembed.eval.loaders import load_sts

    sts = load_sts(path)  # STS Benchmark files or sentence1/sentence2/score records, checked there
    data = ScoredSet(
        list(sts.first), list(sts.second), [float(s) for s in sts.scores], source=str(path)
    )
    if len(set(data.scores)) < 2:
        raise InputError(
            f"{path}: all pairs have the same score; CoSENT learns from differences between scores"
        )
    return data


def _beir_pairs(folder: Path, split: str) -> PairSet:
    from uniembed.eval.loaders import load_beir

    beir = load_beir(folder, split)
    documents = dict(zip(beir.corpus_ids, beir.corpus))
    data = PairSet([], [], [], source=f"{folder} ({split} qrels)")
    for query_id, query in zip(beir.query_ids, beir.queries):
        for doc_id, grade in beir.qrels[query_id].items():
            if grade > 0 and doc_id in documents:
                data.anchors.append(query)
                data.positives.append(documents[doc_id])
                data.negatives.append([])
    if len(data) < 2:
        raise InputError(
            f"{folder}: fewer than 2 (query, relevant document) pairs in the {split} qrels"
        )
    return data
