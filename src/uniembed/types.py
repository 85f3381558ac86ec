"""Shared result types."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)  # not frozen: a frozen init costs more, and searches make many hits
class Hit:
    """One search result: the item's id, its score (higher is better) and its payload."""

    id: str
    score: float
    payload: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Item:
    """A stored item as `Collection.get` returns it."""

    id: str
    text: str | None
    payload: dict
    vectors: dict  # field -> float32 (dim,) array
    tokens: object = None  # multi-vector collections: the (tokens, dim) float32 token vectors
    image: bytes | str | None = (
        None  # image collections: the image's bytes, or its path relative to the image root
    )


@dataclass(frozen=True)
class CollectionInfo:
    path: str
    count: int
    model: str | None
    fingerprint: str | None
    fields: dict  # vector field -> dimension
    index: str
    quantize: str
    index_params: dict
    bytes_per_vector: float  # first search stage, default field
    disk_bytes: int
    version: int
    payload_fields: dict  # filterable payload field -> type
    multivector: dict | None = None  # method, token_dim, storage, fde parameters
    token_bytes_per_item: float | None = None  # mean stored bytes of token vectors per item
    images: dict | None = None  # image collections: storage ("bytes" or "path"), max_bytes, root
    relative: dict | None = (
        None  # relative collections: {"anchors": count, "sha256": of the anchor texts}
    )


@dataclass(frozen=True)
class TaskResult:
    """The scores of one evaluation task on one split; `to_mteb()` gives MTEB's JSON shape."""

    task_name: str
    task_type: str  # "sts", "retrieval", "classification", "clustering", "pairs"
    split: str
    main_metric: str
    scores: dict = field(default_factory=dict)  # metric name -> float (or list per experiment)
    model: str = ""
    evaluation_time: float = 0.0

    @property
    def main_score(self) -> float:
        return float(self.scores[self.main_metric])

    def to_mteb(self) -> dict:
        from uniembed import __version__

        entry = {
            "hf_subset": "default",
            "languages": ["eng-Latn"],
            "main_score": self.main_score,
            **self.scores,
        }
        return {
            "dataset_revision": None,
            "evaluation_time": self.evaluation_time,
            "kg_co2_emissions": None,
            "mteb_version": None,
            "uniembed_version": __version__,
            "model_name": self.model,
            "scores": {self.split: [entry]},
            "task_name": self.task_name,
        }
