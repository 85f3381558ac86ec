"""Image evaluation tasks, MTEB-shaped like the text ones (registered into TASKS):

- zero-shot: CLIP's protocol. Each class name goes into every prompt template; the normalised
  template vectors of a class are averaged and renormalised; each image takes its nearest class.
  Top-1 accuracy (and top-5 when there are more than 5 classes).
- image-retrieval: one caption per image; text -> image and image -> text Recall@1/5/10 over
  the whole split (each query has exactly one right answer: its own pair; ties broken at random,
  in expectation).
- mmeb: MMEB's metric. Each query has its own candidate list (1 positive, N negatives); a query
  scores when the positive ranks first. Ties are broken at random (seeded): a collapsed encoder
  that gives every candidate the same score scores 1/N, not 100%.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from uniembed.encoders.base import Encoder
from uniembed.errors import InputError
from uniembed.eval.tasks import register

# Six of CLIP's ImageNet prompt templates (the short list its notebooks use for quick evaluation).
DEFAULT_TEMPLATES = (
    "a photo of a {}.",
    "a bad photo of a {}.",
    "a photo of the large {}.",
    "a photo of the small {}.",
    "a good photo of a {}.",
    "itap of a {}.",
)


def _image_options(encode: dict) -> dict:
    return {
        "batch_size": encode.get("batch_size", 32),
        "show_progress": encode.get("show_progress"),
    }


def _needs_images(model: Encoder, task: str) -> None:
    if "image" not in model.modalities:
        raise InputError(
            f"task {task!r} needs an image model (CLIP, SigLIP, a bound model); {model.name} embeds text only"
        )


def class_vectors(
    model: Encoder, classes: list[str], templates: tuple[str, ...] | list[str], encode: dict
) -> np.ndarray:
    """(n_classes, dim) unit vectors: per class, the renormalised mean of its normalised template vectors."""
    for template in templates:
        if not isinstance(template, str) or "{}" not in template:
            raise InputError(
                f"a prompt template must contain '{{}}' where the class name goes, got {template!r}"
            )
    texts = [template.format(name) for name in classes for template in templates]
    vectors = model.encode(texts, batch_size=encode.get("batch_size", 32), show_progress=False)
    means = vectors.reshape(len(classes), len(templates), -1).mean(axis=1)
    return means / np.linalg.norm(means, axis=1, keepdims=True)


@register("zero-shot")
def zero_shot(
    model: Encoder,
    path: Path,
    *,
    encode: dict,
    split: str = "test",
    templates: list[str] | None = None,
    classes: list[str] | None = None,
    image_column: str | None = None,
    label_column: str | None = None,
    limit: int | None = None,
) -> tuple[str, dict]:
    """Zero-shot classification by text prompts (see the module docstring)."""
    from uniembed.eval.image_data import load_labelled_images

    _needs_images(model, "zero-shot")
    data = load_labelled_images(
        path,
        split,
        image_column=image_column,
        label_column=label_column,
        classes=classes,
        limit=limit,
    )
    chosen = tuple(templates) if templates else DEFAULT_TEMPLATES
    prototypes = class_vectors(model, data.classes, chosen, encode)
    images = model.encode_images(data.images, **_image_options(encode))
    similarity = images @ prototypes.T
    ranked = np.argsort(-similarity, axis=1)
    scores = {
        "accuracy": float(np.mean(ranked[:, 0] == data.labels)),
        "n_images": len(data.labels),
        "n_classes": len(data.classes),
        "n_templates": len(chosen),
    }
    if len(data.classes) > 5:
        scores["top5_accuracy"] = float(
            np.mean((ranked[:, :5] == data.labels[:, None]).any(axis=1))
        )
    per_class = {
        name: float(np.mean(ranked[data.labels == i, 0] == i))
        for i, name in enumerate(data.classes)
        if (data.labels == i).any()
    }
    return "accuracy", {**scores, "accuracy_per_class": per_class}


def _recalls(similarity: np.ndarray, prefix: str) -> dict:
    """Recall@1/5/10 when query i's one right answer is item i. Ties are broken at random, in
    expectation: with `above` items scored higher and `tied` others scored the same, the right one
    lands in each of the tied places with equal chance (a collapsed model scores k / n, not 1)."""
    right = np.diag(similarity)[:, None]
    above = (similarity > right + 1e-6).sum(axis=1)
    tied = (np.abs(similarity - right) <= 1e-6).sum(axis=1) - 1  # float noise must not break a tie
    return {
        f"{prefix}_recall_at_{k}": float(np.mean(np.clip((k - above) / (tied + 1), 0, 1)))
        for k in (1, 5, 10)
    }


@register("image-retrieval")
def image_retrieval(
    model: Encoder,
    path: Path,
    *,
    encode: dict,
    split: str = "test",
    image_column: str | None = None,
    text_column: str | None = None,
    limit: int | None = None,
) -> tuple[str, dict]:
    """Text -> image and image -> text Recall@1/5/10; main score: the mean of text->image R@1 and image->text R@1."""
    from uniembed.eval.image_data import load_image_text_pairs

    _needs_images(model, "image-retrieval")
    data = load_image_text_pairs(
        path, split, image_column=image_column, text_column=text_column, limit=limit
    )
    images = model.encode_images(data.images, **_image_options(encode))
    texts = model.encode(data.texts, prompt="query", **_image_options(encode))
    similarity = texts @ images.T
    scores = {
        **_recalls(similarity, "text_to_image"),
        **_recalls(similarity.T, "image_to_text"),
        "n_pairs": len(texts),
    }
    scores["mean_recall_at_1"] = (
        scores["text_to_image_recall_at_1"] + scores["image_to_text_recall_at_1"]
    ) / 2
    return "mean_recall_at_1", scores


def precision_at_1(scores: list[np.ndarray], seed: int) -> float:
    """Share of candidate lists whose first candidate (the positive) ranks first; ties at the top
    are broken uniformly at random."""
    rng = np.random.default_rng(seed)
    hits = 0
    for row in scores:
        top = np.flatnonzero(row >= row.max() - 1e-6)  # float noise must not separate equal scores
        hits += int(rng.choice(top) == 0)
    return hits / len(scores)


@register("mmeb")
def mmeb(
    model: Encoder, path: Path, *, encode: dict, image_weight: float = 0.5, seed: int = 42
) -> tuple[str, dict]:
    """MMEB-style Precision@1 over per-query candidate lists (see the module docstring)."""
    from uniembed.encoders.multimodal import encode_items
    from uniembed.eval.image_data import load_candidate_lists

    data = load_candidate_lists(path)
    options = _image_options(encode)
    queries = encode_items(
        model, data.queries, image_weight=image_weight, prompt="query", **options
    )
    flat = [item for items in data.candidates for item in items]
    vectors = encode_items(model, flat, image_weight=image_weight, prompt="document", **options)
    bounds = np.cumsum([0] + [len(items) for items in data.candidates])
    scores = [vectors[bounds[i] : bounds[i + 1]] @ queries[i] for i in range(len(queries))]
    chance = float(np.mean([1 / len(items) for items in data.candidates]))
    return "precision_at_1", {
        "precision_at_1": precision_at_1(scores, seed),
        "chance": chance,
        "n_queries": len(queries),
    }
