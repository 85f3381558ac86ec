"""The evaluation tasks, MTEB-faithful. Each task encodes its data with the model and returns
(main metric name, scores). Register a new task with `@register("name")`."""

from __future__ import annotations

import warnings
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np

from uniembed._extras import require
from uniembed.encoders.base import Encoder, TruncationWarning
from uniembed.eval import metrics
from uniembed.eval.loaders import load_beir, load_labelled, load_pairs, load_sts, split_file
from uniembed.index.exact import TopK

TaskFn = Callable[..., tuple[str, dict]]
TASKS: dict[str, TaskFn] = {}


def register(name: str) -> Callable[[TaskFn], TaskFn]:
    def add(fn: TaskFn) -> TaskFn:
        TASKS[name] = fn
        return fn

    return add


def _encode(
    model: Encoder, texts: list[str], options: dict, prompt: str | None = None
) -> np.ndarray:
    return model.encode(texts, prompt=prompt, **options)


@register("sts")
def sts(model: Encoder, path: Path, *, encode: dict) -> tuple[str, dict]:
    """Spearman correlation of cosine similarity with the gold scores (STS Benchmark format)."""
    data = load_sts(path)
    vectors = _encode(model, data.first + data.second, encode)
    a, b = vectors[: len(data.first)], vectors[len(data.first) :]
    gold = np.asarray(data.scores)
    similarities = {
        "cosine": (a * b).sum(1),
        "euclidean": -np.linalg.norm(a - b, axis=1),
        "manhattan": -np.abs(a - b).sum(1),
    }
    scores = {}
    for name, values in similarities.items():
        scores[f"{name}_pearson"] = metrics.pearson(values, gold)
        scores[f"{name}_spearman"] = metrics.spearman(values, gold)
    return "cosine_spearman", scores


@register("retrieval")
def retrieval(
    model: Encoder,
    folder: Path,
    *,
    encode: dict,
    split: str = "test",
    top_k: int = 1000,
    block_rows: int = 4096,
) -> tuple[str, dict]:
    """nDCG@10 (and MAP, MRR, recall) on a BEIR folder; the corpus is encoded and searched block
    by block, so memory holds one block of vectors plus the running top-k."""
    data = load_beir(folder, split)
    queries = _encode(model, data.queries, encode, prompt="query")
    best = TopK(queries, top_k)
    block_options = {**encode, "show_progress": False}
    from tqdm.auto import tqdm

    truncated = 0
    with tqdm(
        total=len(data.corpus),
        desc="corpus",
        unit="docs",
        disable=not encode.get("show_progress", True),
    ) as bar:
        for start in range(0, len(data.corpus), block_rows):
            block = data.corpus[start : start + block_rows]
            with warnings.catch_warnings():
                warnings.simplefilter(
                    "ignore", TruncationWarning
                )  # one warning for the corpus, below
                best.add(_encode(model, block, block_options, prompt="document"))
            truncated += model.last_report.n_truncated
            bar.update(len(block))
    if truncated:
        warnings.warn(
            f"{truncated} of {len(data.corpus)} documents were longer than {model.max_tokens} "
            "tokens and were truncated "
            f"(as MTEB does)",
            TruncationWarning,
            stacklevel=2,
        )
    _, rows = best.result()
    rankings = {qid: [data.corpus_ids[r] for r in rows[i]] for i, qid in enumerate(data.query_ids)}
    return "ndcg_at_10", metrics.retrieval_scores(rankings, data.qrels)


def undersample(
    labels: list[str], n_experiments: int, per_label: int, seed: int
) -> list[np.ndarray]:
    """MTEB's training subsets: per experiment, shuffle the (persistent) index order with a fresh
    generator seeded `seed`, then keep the first `per_label` examples of each label."""
    order = np.arange(len(labels))
    subsets = []
    for _ in range(n_experiments):
        np.random.default_rng(seed).shuffle(order)
        taken: dict[str, int] = defaultdict(int)
        chosen = []
        for i in order:
            if taken[labels[i]] < per_label:
                taken[labels[i]] += 1
                chosen.append(i)
        subsets.append(np.array(chosen))
    return subsets


@register("classification")
def classification(
    model: Encoder,
    folder: Path,
    *,
    encode: dict,
    split: str = "test",
    train_split: str = "train",
    text_column: str = "text",
    label_column: str | None = None,
    n_experiments: int = 10,
    samples_per_label: int = 8,
    seed: int = 42,
) -> tuple[str, dict]:
    """MTEB protocol: logistic regression (max_iter 100) on `samples_per_label` examples per label,
    `n_experiments` times over different subsets; mean accuracy on the test split."""
    require("eval")
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    train = load_labelled(split_file(Path(folder), train_split), text_column, label_column)
    test = load_labelled(split_file(Path(folder), split), text_column, label_column)
    subsets = undersample(train.labels, n_experiments, samples_per_label, seed)
    used = np.unique(np.concatenate(subsets))  # encode each needed training text once
    row_of = np.full(len(train.texts), -1)
    row_of[used] = np.arange(len(used))
    train_vectors = _encode(model, [train.texts[i] for i in used], encode)
    test_vectors = _encode(model, test.texts, encode)
    train_labels = np.asarray(train.labels)
    runs = []
    for subset in subsets:
        classifier = LogisticRegression(random_state=seed, max_iter=100)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # max_iter=100 is the protocol
            classifier.fit(train_vectors[row_of[subset]], train_labels[subset])
        predicted = classifier.predict(test_vectors)
        f1, f1_weighted = metrics.f1_scores(test.labels, predicted)
        runs.append(
            {
                "accuracy": metrics.accuracy(test.labels, predicted),
                "f1": f1,
                "f1_weighted": f1_weighted,
            }
        )
    scores = {key: float(np.mean([run[key] for run in runs])) for key in runs[0]}
    return "accuracy", {**scores, "scores_per_experiment": runs}


@register("clustering")
def clustering(
    model: Encoder,
    path: Path,
    *,
    encode: dict,
    text_column: str = "text",
    label_column: str | None = None,
    seed: int = 42,
) -> tuple[str, dict]:
    """V-measure of MiniBatchKMeans (batch 500, k = number of labels) against the labels."""
    require("eval")
    from sklearn.cluster import MiniBatchKMeans

    data = load_labelled(path, text_column, label_column)
    vectors = _encode(model, data.texts, encode)
    k = len(set(data.labels))
    clusters = MiniBatchKMeans(
        n_clusters=k, batch_size=500, n_init="auto", random_state=seed
    ).fit_predict(vectors)
    return "v_measure", {"v_measure": metrics.v_measure(data.labels, clusters)}


@register("pairs")
def pairs(model: Encoder, path: Path, *, encode: dict) -> tuple[str, dict]:
    """Average precision of each similarity at telling positive pairs from negative; main: the max."""
    data = load_pairs(path)
    vectors = _encode(model, data.first + data.second, {**encode, "normalize": False})
    a, b = vectors[: len(data.first)], vectors[len(data.first) :]
    unit_a, unit_b = (
        v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12) for v in (a, b)
    )
    similarities = {
        "cosine": (unit_a * unit_b).sum(1),
        "dot": (a * b).sum(1),
        "euclidean": -np.linalg.norm(a - b, axis=1),
        "manhattan": -np.abs(a - b).sum(1),
    }
    scores = {
        f"{name}_ap": metrics.average_precision(data.labels, values)
        for name, values in similarities.items()
    }
    scores["max_ap"] = max(scores.values())
    return "max_ap", scores
