"""The compatibility matrix (BCT protocol): C[query model][gallery model].

For an upgrade old -> new, the cells that matter:

    C[old][old]              today's quality
    C[new][new]              after a full re-index; the update gain is C[new][new] - C[old][old]
    C[new][old]              new queries against the old gallery, raw (only when the dims agree)
    C[new->old adapter][old] new queries through an adapter, against the old gallery

"Compatible" (BCT): C[query][old] > C[old][old]. Two tasks: retrieval (a BEIR folder, nDCG@10,
exact search) and classification by kNN (a folder with train and test files: the train texts
are the gallery, each test text takes the majority label of its 10 nearest, accuracy).

Adapters are fitted on pairs drawn from the *gallery's* texts (as an upgrade fits them on the
collection's own texts), never on the queries or the test texts.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from uniembed.encoders.base import Encoder
from uniembed.errors import InputError
from uniembed.eval import metrics
from uniembed.eval.loaders import load_beir, load_labelled, split_file
from uniembed.spaces.adapters import AUTO, CHOICES, KINDS, choose_by_held_out, fit_adapter
from uniembed.upgrade.pseudo import pseudo_query_vectors as pseudo_query_vectors_of_texts

KNN = 10
VALIDATION_TEXTS = 1000  # train texts held out as validation queries (a tenth when fewer)


@dataclass
class Task:
    """One task's texts and how to score (query vectors, gallery vectors)."""

    name: str
    metric: str
    queries: list[str]
    gallery: list[str]
    prompts: tuple[str | None, str | None]  # (query prompt, gallery prompt)
    per_query: (
        callable  # (query vectors, gallery vectors) -> each query's score (nDCG@10; 1/0 correct)
    )

    def score(self, queries: np.ndarray, gallery: np.ndarray) -> float:
        return float(np.mean(self.per_query(queries, gallery)))


def load_task(data: str | Path, task: str | None = None, split: str = "test") -> Task:
    """A BEIR folder (retrieval) or a folder with train and test files (kNN classification).

    split: the queries to score. Retrieval: any qrels split (SciFact has "train" beside "test").
    Classification: "test" (test texts against the train texts) or "validation" (1,000 train texts,
    or a tenth when fewer, drawn with a fixed seed, against the rest of train): where settings are chosen without
    looking at test."""
    folder = Path(data)
    task = task or _guess_task(folder)
    if task not in ("retrieval", "classification"):
        raise InputError(f"task must be 'retrieval' or 'classification', got {task!r}")
    if not isinstance(split, str) or not split:
        raise InputError(f"split must be a non-empty string, got {split!r}")
    return _retrieval(folder, split) if task == "retrieval" else _classification(folder, split)


def task_vectors(model: Encoder, task: Task, show_progress: bool = False) -> dict[str, np.ndarray]:
    """{"queries", "gallery"}: `model`'s vectors of the task's texts."""
    query_prompt, gallery_prompt = task.prompts
    return {
        "queries": encode_texts(model, task.queries, query_prompt, show_progress),
        "gallery": encode_texts(model, task.gallery, gallery_prompt, show_progress),
    }


def compatibility_matrix(
    old: Encoder,
    new: Encoder,
    data: str | Path,
    *,
    task: str | None = None,
    adapters: tuple[str, ...] = ("procrustes",),
    pairs: tuple[int, ...] = (500, 2000, 5000),
    seed: int = 0,
    show_progress: bool = False,
) -> list[dict]:
    """One row per cell: {task, query model, gallery model, metric, score, compatible, ...}."""
    _check_options(adapters, pairs)
    if old.fingerprint == new.fingerprint:
        raise InputError(
            f"the old and new models have the same fingerprint ({old.fingerprint[:12]}): "
            "nothing to compare"
        )
    loaded = load_task(data, task)
    pseudo = (
        pseudo_query_vectors(new, loaded, show_progress)
        if {"contrastive", AUTO} & set(adapters)
        else None
    )
    return matrix(
        loaded,
        task_vectors(old, loaded, show_progress),
        task_vectors(new, loaded, show_progress),
        old_fingerprint=old.fingerprint,
        new_fingerprint=new.fingerprint,
        adapters=adapters,
        pairs=pairs,
        seed=seed,
        pseudo=pseudo,
    )


def pseudo_query_vectors(
    model: Encoder, task: Task, show_progress: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """(vectors, owners): `model`'s vectors of sentences cut from the task's gallery texts (the
    contrastive adapter's pseudo-queries) and the gallery row each came from."""
    return pseudo_query_vectors_of_texts(
        model, task.gallery, prompt=task.prompts[0], show_progress=show_progress
    )


def _check_options(adapters, pairs) -> None:
    for kind in adapters:
        if kind not in CHOICES:
            raise InputError(f"adapter must be one of {list(CHOICES)}, got {kind!r}")
    if not pairs or any(isinstance(n, bool) or not isinstance(n, int) or n < 2 for n in pairs):
        raise InputError(f"pairs must be integers >= 2, got {pairs!r}")


def matrix(
    task: Task,
    old: dict[str, np.ndarray],
    new: dict[str, np.ndarray],
    *,
    old_fingerprint: str | None = None,
    new_fingerprint: str | None = None,
    adapters: tuple[str, ...] = ("procrustes",),
    pairs: tuple[int, ...] = (500, 2000, 5000),
    seed: int = 0,
    pseudo: tuple[np.ndarray, np.ndarray] | None = None,
    per_query: bool = False,
) -> list[dict]:
    """The matrix from vectors already made (`task_vectors` of each model; `pseudo_query_vectors`
    of the new one for the contrastive adapter, which fits pairs alone without them).
    per_query: each row also holds "per query", its queries' scores (for paired intervals)."""
    _check_options(adapters, pairs)

    def cell(query: str, gallery: str, scores: np.ndarray | None, **extra) -> dict:
        row = {
            **_cell(
                task,
                query,
                gallery,
                float(np.mean(scores)) if scores is not None else float("nan"),
                base,
            ),
            **extra,
        }
        if per_query and scores is not None:
            row["per query"] = scores
        return row

    old_scores = task.per_query(old["queries"], old["gallery"])
    base = float(np.mean(old_scores))
    rows = [
        cell("old", "old", old_scores),
        cell("new", "new", task.per_query(new["queries"], new["gallery"])),
    ]
    if new["queries"].shape[1] == old["gallery"].shape[1]:
        rows.append(cell("new (raw)", "old", task.per_query(new["queries"], old["gallery"])))
    rng = np.random.default_rng(seed)
    for n in pairs:
        drawn = rng.permutation(len(task.gallery))[: min(n, len(task.gallery))]
        # pseudo-queries train the contrastive kind and give every kind its held-out MRR (auto's choice)
        queries = _drawn_queries(pseudo, drawn) if pseudo is not None else {}
        fitted: dict[str, object] = {}  # kind -> Adapter, or the InputError that refused it

        # fitted, drawn and queries are this draw's: bound now, as the function is called only in it
        def fitted_kind(kind: str, fitted=fitted, drawn=drawn, queries=queries):
            if kind not in fitted:
                try:
                    fitted[kind] = fit_adapter(
                        new["gallery"][drawn],
                        old["gallery"][drawn],
                        kind,
                        **queries,
                        new_fingerprint=new_fingerprint,
                        old_fingerprint=old_fingerprint,
                        seed=seed,
                    )
                except (
                    InputError
                ) as exc:  # e.g. Procrustes with fewer pairs than dims: said in the table
                    fitted[kind] = exc
            return fitted[kind]

        for kind in adapters:
            note = {}
            if kind == AUTO:  # fit_adapter(kind="auto")'s choice, made from the kinds fitted here
                candidates = {
                    k: a for k in KINDS if not isinstance(a := fitted_kind(k), InputError)
                }
                chosen = choose_by_held_out(candidates)
                adapter, note = candidates[chosen], {"note": f"chose {chosen}"}
            else:
                adapter = fitted_kind(kind)
            if isinstance(adapter, InputError):
                rows.append(
                    cell(
                        f"new->old {kind}",
                        "old",
                        None,
                        pairs=len(drawn),
                        note=str(adapter).split(":")[0],
                    )
                )
                continue
            rows.append(
                cell(
                    f"new->old {kind}",
                    "old",
                    task.per_query(adapter(new["queries"]), old["gallery"]),
                    pairs=len(drawn),
                    **{"held-out cosine": adapter.card.holdout_cosine},
                    **note,
                )
            )
    return rows


def _drawn_queries(pseudo: tuple[np.ndarray, np.ndarray], drawn: np.ndarray) -> dict:
    """The pseudo-queries of the drawn gallery rows, their owners renumbered as rows of the draw."""
    vectors, owners = pseudo
    row_in_draw = {int(row): i for i, row in enumerate(drawn)}
    mine = np.isin(owners, drawn)
    return {
        "queries": vectors[mine],
        "owners": np.array([row_in_draw[int(o)] for o in owners[mine]], dtype=np.int64),
    }


def _cell(task: Task, query: str, gallery: str, score: float, base: float) -> dict:
    row = {
        "task": task.name,
        "query model": query,
        "gallery model": gallery,
        "metric": task.metric,
        "score": round(100 * score, 2) if np.isfinite(score) else float("nan"),
    }
    if gallery == "old" and query != "old":
        row["compatible"] = bool(np.isfinite(score) and score > base)
    if query == "new" and gallery == "new":
        row["update gain"] = round(100 * (score - base), 2)
    return row


def _guess_task(folder: Path) -> str:
    if (folder / "corpus.jsonl").is_file() and (folder / "queries.jsonl").is_file():
        return "retrieval"
    try:
        split_file(folder, "train")
        split_file(folder, "test")
    except InputError:
        raise InputError(
            f"{folder}: neither a BEIR folder (corpus.jsonl, queries.jsonl, qrels/) nor a folder "
            "with train and test files"
        ) from None
    return "classification"


def encode_texts(
    model: Encoder, texts: list[str], prompt: str | None, show_progress: bool = False
) -> np.ndarray:
    """`model`'s float32 vectors of `texts` as the matrix encodes a task's: long texts cut silently."""
    import warnings

    from uniembed.encoders.base import TruncationWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TruncationWarning)  # long documents are cut, as MTEB does
        return np.asarray(
            model.encode(texts, prompt=prompt, show_progress=show_progress), dtype=np.float32
        )


def _retrieval(folder: Path, split: str) -> Task:
    data = load_beir(folder, split)
    judged = [
        i
        for i, qid in enumerate(data.query_ids)
        if any(grade > 0 for grade in data.qrels[qid].values())
    ]

    def per_query(queries: np.ndarray, gallery: np.ndarray) -> np.ndarray:
        # the queries retrieval_scores averages over (a positive judgement): its nDCG@10, query by query
        top = np.argsort(-(queries[judged] @ gallery.T), axis=1)[:, :10]
        return np.array(
            [
                metrics.ndcg_at_k(
                    [data.corpus_ids[r] for r in top[row]], data.qrels[data.query_ids[i]], 10
                )
                for row, i in enumerate(judged)
            ]
        )

    return Task(
        f"{folder.name} retrieval",
        "nDCG@10",
        data.queries,
        data.corpus,
        ("query", "document"),
        per_query,
    )


def _classification(folder: Path, split: str) -> Task:
    train = load_labelled(split_file(folder, "train"))
    if split == "test":
        test = load_labelled(split_file(folder, "test"))
        queries, truth, gallery, gallery_labels = (
            test.texts,
            test.labels,
            train.texts,
            np.asarray(train.labels),
        )
    elif split == "validation":
        if len(train.texts) < 10:
            raise InputError(
                f"{folder}: a validation split needs at least 10 train texts, got {len(train.texts)}"
            )
        order = np.random.default_rng(0).permutation(len(train.texts))
        size = min(VALIDATION_TEXTS, len(order) // 10)
        held, rest = order[:size], order[size:]
        queries, truth = [train.texts[i] for i in held], [train.labels[i] for i in held]
        gallery, gallery_labels = [train.texts[i] for i in rest], np.asarray(train.labels)[rest]
    else:
        raise InputError(
            f"split must be 'test' or 'validation' for a classification folder, got {split!r}"
        )

    def per_query(query_vectors: np.ndarray, gallery_vectors: np.ndarray) -> np.ndarray:
        return knn_correct(query_vectors, gallery_vectors, gallery_labels, truth).astype(np.float64)

    return Task(
        f"{folder.name} kNN classification", "accuracy", queries, gallery, (None, None), per_query
    )


def knn_accuracy(
    queries: np.ndarray,
    gallery: np.ndarray,
    gallery_labels: np.ndarray,
    truth: list[str],
    k: int = KNN,
) -> float:
    """Share of queries whose k nearest gallery items (cosine) vote their label; ties go to the
    label with the larger summed similarity."""
    return float(np.mean(knn_correct(queries, gallery, gallery_labels, truth, k)))


def knn_correct(
    queries: np.ndarray,
    gallery: np.ndarray,
    gallery_labels: np.ndarray,
    truth: list[str],
    k: int = KNN,
    block: int = 1024,
) -> np.ndarray:
    """For each query, whether its k nearest gallery items vote its label (`knn_accuracy`'s rule)."""
    correct = np.zeros(len(queries), dtype=bool)
    for start in range(0, len(queries), block):
        similarity = queries[start : start + block] @ gallery.T
        nearest = np.argsort(-similarity, axis=1)[:, :k]
        for row, items in enumerate(nearest):
            votes = Counter(gallery_labels[items])
            weight = {label: 0.0 for label in votes}
            for item in items:
                weight[gallery_labels[item]] += float(similarity[row, item])
            predicted = max(votes, key=lambda label: (votes[label], weight[label]))
            correct[start + row] = predicted == truth[start + row]
    return correct
