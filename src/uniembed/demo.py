"""The main job: load the default model offline, embed the shipped Banking77 subset, evaluate it
and show a few searches. `uniembed demo` runs it; it needs no network and no files outside the package."""
from __future__ import annotations

from collections.abc import Callable

from uniembed.datasets import banking77_dir
from uniembed.encoders.load import load
from uniembed.encoders.registry import CATALOGUE
from uniembed.eval.loaders import load_labelled, split_file
from uniembed.eval.report import format_table
from uniembed.eval.run import evaluate
from uniembed.index.exact import TopK

DEMO_QUERIES = (
    "I lost my card yesterday, what should I do?",
    "why was I charged twice for the same coffee?",
    "can I send money to my friend in Spain?",
)


def run_demo(model_name: str | None = None, *, show: Callable[[str], None] = print, show_progress: bool = False) -> dict:
    """Run the demo, printing as it goes; returns the main scores for callers and tests."""
    model = load(model_name)
    show(f"model: {model.name} ({model.dim} dims, {model.pooling} pooling, max {model.max_tokens} tokens, {model.device})")
    show(f"weights: {model.source}" + (" (SHA-256 verified)" if _is_pinned(model.name) else ""))
    folder = banking77_dir()
    show(f"data: Banking77 subset shipped in the package (CC BY 4.0, PolyAI), {folder}")
    results = [
        evaluate(model, "classification", folder, name="banking77-subset", samples_per_label=8, show_progress=show_progress),
        evaluate(model, "clustering", split_file(folder, "test"), name="banking77-subset", show_progress=show_progress),
    ]
    show("\n" + format_table(results) + "\n")
    _show_searches(model, folder, show, show_progress)
    return {r.task_type: r.main_score for r in results}


def _is_pinned(name: str) -> bool:
    entry = CATALOGUE.get(name)
    return entry is not None and entry.sha256 is not None


def _show_searches(model, folder, show: Callable[[str], None], show_progress: bool) -> None:
    train = load_labelled(split_file(folder, "train"))
    documents = model.encode(train.texts, prompt="document", show_progress=show_progress)
    best = TopK(model.encode(list(DEMO_QUERIES), prompt="query"), k=3)
    best.add(documents)
    scores, rows = best.result()
    show(f"semantic search over {len(train.texts)} banking questions:")
    for query, query_scores, query_rows in zip(DEMO_QUERIES, scores, rows):
        show(f"\n  query: {query}")
        for score, row in zip(query_scores, query_rows):
            show(f"    {score:.3f}  [{train.labels[row]}] {train.texts[row]}")
