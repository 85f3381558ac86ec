"""Dev and validation splits the benches choose settings on (never a test split), and SciFact's
seen/unseen split of its test claims.

- STS Benchmark: sts-dev.csv (1,500 pairs) for choices; sts-test.csv only for the reported score.
- SciFact: a validation part carved out of the *train* claims (20%, seeded), with their train
  judgements; the test claims only for the reported score.
- Banking77: train.csv for choices on short texts.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SCIFACT = DATA / "scifact"


def stsb_sentences(name: str) -> list[str]:
    """The distinct sentences of one STSb file (sts-dev.csv, sts-test.csv, ...), in file order."""
    sentences = []
    for line in (DATA / "stsb" / name).read_text(encoding="utf-8").splitlines():
        sentences += line.split("\t")[5:7]
    return list(dict.fromkeys(sentences))


def banking77_train() -> list[str]:
    with open(DATA / "banking77" / "train.csv", newline="") as f:
        return [row["text"] for row in csv.DictReader(f)]


def scifact_train_claims() -> list[str]:
    return sorted(
        {
            line.split("\t")[0]
            for line in (SCIFACT / "qrels" / "train.tsv").read_text().splitlines()[1:]
        }
    )


def scifact_validation_claims(share: float = 0.2, seed: int = 0) -> list[str]:
    """A fixed, seeded share of SciFact's train claims, held out for choosing settings."""
    claims = scifact_train_claims()
    picked = np.random.default_rng(seed).permutation(len(claims))[: round(share * len(claims))]
    return sorted(claims[i] for i in picked)


def scifact_validation(share: float = 0.2, seed: int = 0):
    """SciFact's corpus with the validation claims as queries, judged by their train qrels
    (a RetrievalData, like load_beir's)."""
    from uniembed.eval.loaders import load_beir

    train = load_beir(SCIFACT, "train")
    keep = set(scifact_validation_claims(share, seed))
    chosen = [i for i, q in enumerate(train.query_ids) if q in keep]
    return type(train)(
        train.corpus_ids,
        train.corpus,
        [train.query_ids[i] for i in chosen],
        [train.queries[i] for i in chosen],
        {q: train.qrels[q] for q in keep},
    )


def claim_texts(ids: set[str]) -> list[str]:
    return [
        q["text"]
        for q in map(json.loads, (SCIFACT / "queries.jsonl").read_text().splitlines())
        if q["_id"] in ids
    ]


def unseen_document_queries(data) -> list[int]:
    """Test queries none of whose relevant documents is a positive in the train qrels: 104 of 300
    on SciFact. The others share relevant abstracts with training claims, which a model trained on
    those claims can learn to favour."""
    from uniembed.eval.loaders import load_beir

    seen = {d for q in load_beir(SCIFACT, "train").qrels.values() for d, g in q.items() if g > 0}
    return [
        i
        for i, q in enumerate(data.query_ids)
        if not {d for d, g in data.qrels[q].items() if g > 0} & seen
    ]


def ndcg_at_10(
    corpus: np.ndarray, queries: np.ndarray, data, only: list[int] | None = None
) -> float:
    """nDCG@10 (x100) of exact cosine search, over the queries at `only` (default all)."""
    from uniembed.eval.metrics import ndcg_at_k

    chosen = range(len(data.query_ids)) if only is None else only
    values = []
    for i in chosen:
        top = np.argsort(-(corpus @ queries[i]))[:10]
        values.append(
            ndcg_at_k([data.corpus_ids[j] for j in top], data.qrels[data.query_ids[i]], 10)
        )
    return round(100 * float(np.mean(values)), 2)
