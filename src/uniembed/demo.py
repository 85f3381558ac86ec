"""The main job: load the default model offline, embed the shipped Banking77 subset, evaluate it,
store it in a collection and show a few searches (dense, hybrid, filtered); then the same for
images: image-mini (bound to the default model) on shipped clip art, searched by text and by image.
`uniembed demo` runs it; it needs no network and no files outside the package."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

from uniembed.datasets import banking77_dir
from uniembed.encoders.load import load
from uniembed.encoders.registry import CATALOGUE
from uniembed.eval.loaders import load_labelled, split_file
from uniembed.eval.report import format_table
from uniembed.eval.run import evaluate

DEMO_QUERIES = (
    "I lost my card yesterday, what should I do?",
    "why was I charged twice for the same coffee?",
    "can I send money to my friend in Spain?",
)


def run_demo(
    model_name: str | None = None,
    *,
    show: Callable[[str], None] = print,
    show_progress: bool = False,
) -> dict:
    """Run the demo, printing as it goes; returns the main scores for callers and tests."""
    model = load(model_name)
    show(
        f"model: {model.name} ({model.dim} dims, {model.pooling} pooling, "
        f"max {model.max_tokens} tokens, {model.device})"
    )
    show(f"weights: {model.source}" + (" (SHA-256 verified)" if _is_pinned(model.name) else ""))
    folder = banking77_dir()
    show(f"data: Banking77 subset shipped in the package (CC BY 4.0, PolyAI), {folder}")
    results = [
        evaluate(
            model,
            "classification",
            folder,
            name="banking77-subset",
            samples_per_label=8,
            show_progress=show_progress,
        ),
        evaluate(
            model,
            "clustering",
            split_file(folder, "test"),
            name="banking77-subset",
            show_progress=show_progress,
        ),
    ]
    show("\n" + format_table(results) + "\n")
    _show_searches(model, folder, show, show_progress)
    scores = {r.task_type: r.main_score for r in results}
    if model_name is None:  # the image part runs on image-mini, which is bound to the default model
        scores.update(_show_images(show))
    return scores


def _is_pinned(name: str) -> bool:
    entry = CATALOGUE.get(name)
    return entry is not None and entry.sha256 is not None


def _show_searches(model, folder, show: Callable[[str], None], show_progress: bool) -> None:
    """Store the training questions in a collection (binary HNSW + rescoring) and query it."""
    from uniembed.store import Collection

    train = load_labelled(split_file(folder, "train"))
    with tempfile.TemporaryDirectory(prefix="uniembed-demo-") as tmp:
        col = Collection.create(Path(tmp) / "banking", model=model, index="hnsw", quantize="binary")
        ids = [f"q{i}" for i in range(len(train.texts))]
        col.add(
            ids,
            model.encode(train.texts, prompt="document", show_progress=show_progress),
            texts=train.texts,
            payloads=[
                {"intent": label, "text": text} for label, text in zip(train.labels, train.texts)
            ],
        )
        info = col.info()
        show(
            f"collection: {info.count} banking questions, {info.index} index, "
            f"{info.bytes_per_vector:.0f} bytes/vector in memory (float32 would be {4 * model.dim})"
        )
        for query in DEMO_QUERIES:
            _show_hits(show, f"query: {query}", col.search(query, k=3))
        _show_hits(
            show,
            "hybrid (BM25 + dense): refund not showing up",
            col.search("refund not showing up", k=3, mode="hybrid"),
        )
        _show_hits(
            show,
            "filtered to intent in (card_arrival, card_delivery_estimate): where is my card?",
            col.search(
                "where is my card?", k=3, filter="intent in (card_arrival, card_delivery_estimate)"
            ),
        )


def _show_hits(show: Callable[[str], None], title: str, hits) -> None:
    show(f"\n  {title}")
    for hit in hits:
        show(f"    {hit.score:.3f}  [{hit.payload['intent']}] {hit.payload['text']}")


IMAGE_QUERIES = ("a star", "a national flag", "a playing card")


def _show_images(show: Callable[[str], None]) -> dict:
    """image-mini on the shipped clip art: zero-shot category accuracy, then a collection searched
    by text and by image."""
    import numpy as np
    import pyarrow.parquet as pq

    from uniembed.datasets import clipart_file
    from uniembed.eval.image_tasks import DEFAULT_TEMPLATES, class_vectors
    from uniembed.store import Collection

    model = load("image-mini")
    rows = pq.read_table(clipart_file()).to_pylist()
    show(
        f"\nimages: {model.name} ({model.dim} dims, texts by {model.anchor.name}, images by a "
        f"{sum(p.numel() for p in model.tower.parameters()) / 1e6:.1f}M-parameter CNN)"
    )
    show(
        f"data: {len(rows)} public-domain clip-art images shipped in the package "
        f"(Open Clip Art, test split), {clipart_file()}"
    )
    vectors = model.encode_images([r["png"] for r in rows], show_progress=False)
    categories = sorted({r["category"] for r in rows})
    prototypes = class_vectors(
        model, [c.replace("_", " ") for c in categories], DEFAULT_TEMPLATES, {}
    )
    truth = np.asarray([categories.index(r["category"]) for r in rows])
    accuracy = float(np.mean((vectors @ prototypes.T).argmax(1) == truth))
    show(
        f"zero-shot category accuracy over its {len(categories)} categories: {100 * accuracy:.1f}% "
        f"(always guessing the commonest: {100 * np.bincount(truth).max() / len(truth):.1f}%)"
    )
    with tempfile.TemporaryDirectory(prefix="uniembed-demo-") as tmp:
        col = Collection.create(Path(tmp) / "clipart", model=model, images="bytes")
        col.add(
            [r["id"] for r in rows],
            vectors,
            images=[r["png"] for r in rows],
            texts=[r["title"] for r in rows],
            payloads=[{"title": r["title"], "category": r["category"]} for r in rows],
        )
        for query in IMAGE_QUERIES:
            _show_image_hits(show, f"text -> image: {query}", col.search(query, k=3))
        probe = rows[0]
        _show_image_hits(
            show,
            f"image -> image: the picture of '{probe['title']}' ({probe['category']})",
            col.search(image=probe["png"], k=3),
        )
    return {"zero-shot (clip art categories)": accuracy}


def _show_image_hits(show: Callable[[str], None], title: str, hits) -> None:
    show(f"\n  {title}")
    for hit in hits:
        show(
            f"    {hit.score:.3f}  [{hit.payload['category']}] {hit.payload['title'] or '(untitled)'}  ({hit.id})"
        )
