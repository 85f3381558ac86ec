"""The encoder interface: one required method, everything else built once here.

An encoder implements `encode_batch(texts) -> (n, dim) float32`. The base class owns input checks,
prompts, length-sorted batching, progress bars, normalisation, Matryoshka truncation and the
report of inputs that were too long.
"""

from __future__ import annotations

import threading
import warnings
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np

from uniembed._text import encodable
from uniembed.compress.truncate import l2_normalize, truncate
from uniembed.errors import InputError

LongPolicy = Literal["truncate", "chunk"]
LONG_POLICIES: tuple[str, ...] = get_args(LongPolicy)

# Prompt names every model accepts, each with the config names it may go by (E5-style configs say
# "passage" for documents); a model whose config defines none of them gets no prefix.
STANDARD_PROMPTS: dict[str, tuple[str, ...]] = {
    "query": ("query",),
    "document": ("document", "passage"),
}


class TruncationWarning(UserWarning):
    """Some inputs were longer than the model's maximum length and were cut."""


@dataclass
class EncodeReport:
    """What the last `encode` call did to its inputs."""

    n_inputs: int = 0
    n_truncated: int = 0  # inputs cut at the model's max length (long="truncate")
    n_chunks: int = 0  # windows embedded for inputs split with long="chunk"
    max_tokens: int | None = None


def check_texts(texts: object) -> list[str]:
    """`texts` as a list of str, or InputError naming the first bad item by index."""
    if isinstance(texts, (str, bytes)):
        raise InputError(
            f"expected a list of strings, got a single {type(texts).__name__}; wrap it in a list"
        )
    if not isinstance(texts, Sequence) and not isinstance(texts, np.ndarray):
        raise InputError(f"expected a list of strings, got {type(texts).__name__}")
    items = list(texts)
    if not items:
        raise InputError("expected at least one text, got an empty list")
    for index, item in enumerate(items):
        if not isinstance(item, str):
            raise InputError(f"item {index} is {type(item).__name__} ({item!r:.40}), expected str")
        if not encodable(item):
            raise InputError(
                f"item {index} is not valid Unicode (a lone surrogate such as \\ud800)"
            )
    return items


def _check_choice(name: str, value: object, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise InputError(f"{name} must be one of {list(allowed)}, got {value!r}")


def check_positive_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise InputError(f"{name} must be a positive integer, got {value!r}")


class Encoder(ABC):
    """Turns texts into float32 vectors of a fixed dimension."""

    # What an encoder can do, declared by each kind and read by callers (never probed):
    # modalities: what encode_* accepts; encoders with an image tower add "image" (ImageTower)
    modalities: tuple[str, ...] = ("text",)
    # gives_token_vectors: encode_tokens(texts) gives per-token vectors (transformer encoders)
    gives_token_vectors: bool = False
    # fuses_items: reads an image+text item as one sequence (VLMs) rather than fusing two vectors
    fuses_items: bool = False
    # token_head: a trained late-interaction head (ColBERT / PyLate) when the model has one
    token_head = None

    def __init__(
        self,
        name: str,
        dim: int,
        *,
        prompts: dict[str, str] | None = None,
        default_prompt: str | None = None,
        max_tokens: int | None = None,
    ):
        self.name = name
        self.dim = dim
        self.prompts = dict(prompts or {})
        self.default_prompt = default_prompt  # a prompt name applied when encode() gets none
        self.source: str | None = None  # where the weights were loaded from, for reports
        self.max_tokens = max_tokens  # None: no token limit
        self._local = threading.local()  # per-thread EncodeReport, so concurrent callers don't mix

    @property
    def fingerprint(self) -> str:
        """Identifies what makes this encoder's vectors: vectors from encoders with different
        fingerprints must not be mixed in one collection. Subclasses add their weights."""
        return digest(
            type(self).__name__, self.name, self.dim, sorted(self.prompts.items()), self.max_tokens
        )

    @property
    def image_fingerprint(self) -> str:
        """Identifies what makes this encoder's image vectors. The same as `fingerprint` for models
        whose towers ship together (CLIP, SigLIP); a bound model's texts are its anchor's (the
        anchor's fingerprint) while its images come from its own tower (this one differs)."""
        return self.fingerprint

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, dim={self.dim})"

    @abstractmethod
    def encode_batch(self, texts: list[str], *, long: LongPolicy = "truncate") -> np.ndarray:
        """(len(texts), dim) float32 raw embeddings (not normalised) of one batch."""

    # -- the public API, built on encode_batch ------------------------------------------------
    def encode(
        self,
        texts: Sequence[str],
        *,
        prompt: str | None = None,
        normalize: bool = True,
        dim: int | None = None,
        batch_size: int = 32,
        long: LongPolicy = "truncate",
        show_progress: bool | None = None,
    ) -> np.ndarray:
        """Embed `texts` into a (n, dim) float32 array, L2-normalised unless `normalize=False`.

        prompt: a prompt name ("query", "document" or one from the model's config), prepended;
                by default the model config's default prompt, if it names one.
        dim: keep only the first `dim` coordinates (Matryoshka), re-normalised.
        long: "truncate" cuts inputs at the model's max length and warns how many were cut;
              "chunk" embeds overlapping windows and pools them, so nothing is lost.
        show_progress: a progress bar; by default shown when there is more than one batch.
        """
        items = check_texts(texts)
        _check_choice("long", long, LONG_POLICIES)
        check_positive_int("batch_size", batch_size)
        self.check_dim(dim)  # before encoding, not after all the work
        prefix = self.prompt_prefix(prompt)
        if prefix:
            items = [prefix + text for text in items]
        self._local.report = EncodeReport(n_inputs=len(items), max_tokens=self.max_tokens)
        vectors = self._encode_sorted(items, batch_size, long, show_progress)
        self._warn_if_truncated()
        if dim is not None:
            return truncate(vectors, dim, normalize=normalize)
        return l2_normalize(vectors) if normalize else vectors

    def check_dim(self, dim: object) -> None:
        """InputError unless `dim` is None or an integer in [1, self.dim] (Matryoshka truncation)."""
        if dim is not None:
            check_positive_int("dim", dim)
            if dim > self.dim:
                raise InputError(f"dim must be an integer in [1, {self.dim}], got {dim!r}")

    def encode_images(self, images, **options) -> np.ndarray:
        """Embed images; only models with an image tower (CLIP, SigLIP, bound models) can."""
        raise InputError(
            f"model {self.name} embeds text only: it has no image encoder "
            "(load a CLIP or SigLIP directory, or a model made by `uniembed bind`)"
        )

    def encode_items(
        self,
        items,
        *,
        image_weight: float = 0.5,
        prompt: str | None = None,
        dim: int | None = None,
        batch_size: int = 32,
        show_progress: bool | None = None,
    ) -> np.ndarray:
        """Embed items {"image": ..., "text": ...} (either or both) into (n, dim) unit vectors. An
        item with both is `image_weight * image + (1 - image_weight) * text` (each normalised),
        renormalised; `prompt` applies to the text part. Text-only models take text-only items."""
        from uniembed.encoders.multimodal import encode_items

        return encode_items(
            self,
            items,
            image_weight=image_weight,
            prompt=prompt,
            dim=dim,
            batch_size=batch_size,
            show_progress=show_progress,
        )

    def prompt_prefix(self, prompt: str | None) -> str:
        """The text prepended for prompt name `prompt` ("" for none)."""
        if prompt is None:
            prompt = self.default_prompt
        if prompt is None:
            return ""
        if prompt in self.prompts:
            return self.prompts[prompt]
        if prompt in STANDARD_PROMPTS:
            return next(
                (
                    self.prompts[alias]
                    for alias in STANDARD_PROMPTS[prompt]
                    if alias in self.prompts
                ),
                "",
            )
        known = sorted(set(self.prompts) | set(STANDARD_PROMPTS))
        raise InputError(f"unknown prompt {prompt!r} for model {self.name}; known prompts: {known}")

    @property
    def last_report(self) -> EncodeReport:
        """What the last `encode` call in this thread did (truncations, chunks)."""
        return getattr(self._local, "report", EncodeReport())

    def note_truncated(self, count: int) -> None:
        """Called by encode_batch implementations when they cut `count` inputs."""
        self.last_report.n_truncated += count

    def note_chunks(self, count: int) -> None:
        """Called by encode_batch implementations when they split inputs into `count` windows."""
        self.last_report.n_chunks += count

    # -- internals ---------------------------------------------------------------------------
    def _encode_sorted(
        self, items: list[str], batch_size: int, long: LongPolicy, show_progress: bool | None
    ) -> np.ndarray:
        # Longest first, so each batch pads to similar lengths; restored to input order at the end.
        order = np.argsort([-len(text) for text in items], kind="stable")
        out = np.empty((len(items), self.dim), dtype=np.float32)
        for idx in progress_bar(_batches(order, batch_size), len(items), batch_size, show_progress):
            out[idx] = self.encode_batch([items[i] for i in idx], long=long)
        return check_model_output(out, self.name)

    def _warn_if_truncated(self) -> None:
        report = self.last_report
        if report.n_truncated:
            warnings.warn(
                f"{report.n_truncated} of {report.n_inputs} inputs were longer than {self.max_tokens} "
                f"tokens and were truncated; pass long='chunk' to embed them whole",
                TruncationWarning,
                stacklevel=3,
            )


def check_model_output(vectors: np.ndarray, model: str) -> np.ndarray:
    """`vectors` unchanged when every value is finite; else ModelOutputError naming the first bad
    input. NaN from a model is the model's fault (damaged weights), not the caller's: it must not
    reach a file, a response or a collection that would then blame the client."""
    bad = ~np.isfinite(vectors).reshape(len(vectors), -1).all(axis=1)
    if bad.any():
        from uniembed.errors import ModelOutputError

        raise ModelOutputError(
            f"model {model} produced NaN or inf for input {int(np.argmax(bad))} "
            f"({int(bad.sum())} of {len(vectors)} inputs): its weights are probably damaged"
        )
    return vectors


def digest(*parts: object) -> str:
    import hashlib
    import json

    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()


def _batches(order: np.ndarray, batch_size: int) -> Iterator[np.ndarray]:
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]


def progress_bar(batches, n_items: int, batch_size: int, show: bool | None):
    if show is None:
        show = n_items > batch_size
    return progress_iter(list(batches), show)


def progress_iter(batches: list, show: bool):
    """`batches`, behind a progress bar when `show`."""
    if not show:
        return batches
    from tqdm.auto import tqdm

    return tqdm(batches, desc="encoding", unit="batch", leave=False)
