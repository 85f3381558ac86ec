"""Static models (the model2vec idea): one vector per token, taken from a transformer once; a text
is the weighted mean of its tokens' vectors. Encoding needs numpy and the Rust tokenizer only.

    uniembed distill default -o static-mini       # or distill(model, "static-mini")
    uniembed.load("static-mini")
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from uniembed._atomic import atomic_folder
from uniembed.encoders.base import Encoder, LongPolicy, digest
from uniembed.errors import InputError, ModelLoadError

CONFIG_FILE = "uniembed_static.json"
WEIGHTS_FILE = "static.safetensors"
# Defaults chosen on STSb dev + SciFact validation claims by bench/select_static.py (its tables are in the README)
SIF_SMOOTHING = 3e-2
REFINE_STRENGTH = 3e-3  # pull of the refined table towards its start (see `refine`)
REFINE_START = "sentence"  # how the start table is scaled (see REFINE_STARTS)
REFINE_STARTS = ("sentence", "bag")
STATIC_BATCH = 4096  # texts tokenised per call
GATHER_TOKENS = 32_768  # token rows gathered at once: 32k x 384 dims x 4 bytes = 48 MB


class StaticEncoder(Encoder):
    def __init__(
        self,
        name: str,
        embeddings: np.ndarray,
        tokenizer,
        *,
        unknown_id: int,
        teacher: str,
        fingerprint: str,
        weights: np.ndarray | None = None,
    ):
        super().__init__(name, embeddings.shape[1], max_tokens=None)
        self.embeddings = embeddings  # (vocab, dim) float32
        # per-token weights of the mean (SIF, see `sif_weights`); models made without a corpus have none.
        # Folded into the table once, so encoding sums rows and divides by the summed weights.
        self.weights = (
            np.ones(len(embeddings), dtype=np.float32)
            if weights is None
            else weights.astype(np.float32)
        )
        self._weighted = embeddings * self.weights[:, None]
        self.tokenizer = tokenizer
        self.tokenizer.no_padding()
        self.tokenizer.no_truncation()
        self.unknown_id = unknown_id
        self.teacher = teacher
        self._fingerprint = fingerprint
        self.pooling = "mean of static token vectors"
        self.device = "cpu (numpy)"

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    def encode_batch(self, texts: list[str], *, long: LongPolicy = "truncate") -> np.ndarray:
        # no length limit: every token counts, so `long` changes nothing
        encodings = self.tokenizer.encode_batch(
            [t.strip() for t in texts], add_special_tokens=False
        )
        ids = [
            e.ids or [self.unknown_id] for e in encodings
        ]  # an empty text gets the unknown token
        out = np.empty((len(ids), self.dim), dtype=np.float32)
        start = 0
        for stop in _token_budget_stops(ids, GATHER_TOKENS):
            out[start:stop] = self._pool(ids[start:stop])
            start = stop
        return out

    def _pool(self, ids: list[list[int]]) -> np.ndarray:
        # Texts of equal token count are summed together as one (texts, tokens, dim) gather: 6-9x
        # faster than np.add.reduceat over ragged segments, still numpy only.
        counts = np.fromiter((len(i) for i in ids), dtype=np.int64, count=len(ids))
        flat = np.fromiter((t for i in ids for t in i), dtype=np.int64, count=int(counts.sum()))
        offsets = np.r_[0, np.cumsum(counts)]
        order = np.argsort(counts, kind="stable")
        out = np.empty((len(ids), self.dim), dtype=np.float32)
        for group in np.split(order, np.flatnonzero(np.diff(counts[order])) + 1):
            tokens = flat[offsets[group][:, None] + np.arange(counts[group[0]])]
            out[group] = self._weighted[tokens].sum(1) / self.weights[tokens].sum(1)[:, None]
        return out

    def _encode_sorted(self, items, batch_size, long, show_progress):
        # Nothing is padded, so no sorting; big batches keep the Rust tokenizer's threads busy
        # (encode_batch bounds the gathered rows by GATHER_TOKENS).
        return super()._encode_sorted(items, max(batch_size, STATIC_BATCH), long, show_progress)

    @classmethod
    def load(cls, directory: Path, *, name: str | None = None) -> StaticEncoder:
        from uniembed._extras import require

        require("static")  # tokenizers and safetensors: no torch
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        directory = Path(directory)
        try:
            config = json.loads((directory / CONFIG_FILE).read_text())
            tensors = load_file(str(directory / WEIGHTS_FILE))
            embeddings = tensors["embeddings"]
            tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
        except Exception as exc:  # missing or corrupt files: one clear error
            raise ModelLoadError(
                f"{directory} is not a readable static model: {type(exc).__name__}: {exc}"
            ) from exc
        return cls(
            name or directory.name,
            embeddings.astype(np.float32),
            tokenizer,
            unknown_id=config["unknown_id"],
            teacher=config["teacher"],
            fingerprint=config["fingerprint"],
            weights=tensors.get("weights"),
        )


def _token_budget_stops(ids: list[list[int]], budget: int):
    """End indices of consecutive runs of texts holding about `budget` tokens (at least one text)."""
    total = 0
    for index, text_ids in enumerate(ids):
        if total and total + len(text_ids) > budget:
            yield index
            total = 0
        total += len(text_ids)
    yield len(ids)


def distill(
    teacher,
    output: str | Path,
    *,
    dim: int | None = None,
    corpus: list[str] | None = None,
    batch_size: int = 1024,
    sif: float = SIF_SMOOTHING,
) -> Path:
    """Make a static model from a transformer encoder (a TransformerEncoder from uniembed.load):
    embed every vocabulary token alone, weight by log vocabulary rank (a Zipf prior: later, rarer
    tokens count more), optionally refine on `corpus` (see `refine`) and weight tokens in the mean
    by their frequency in it (see `sif_weights`), rotate with PCA (components by variance, so
    encode(dim=n) truncation keeps the most) and keep `dim` of them (default: all the teacher's),
    and save as safetensors + tokenizer.json. How it compares with its teacher: the README's
    encoding section (bench/encode.py)."""
    from safetensors.numpy import save_file

    output = Path(output)
    if output.exists() and any(output.iterdir()):
        raise InputError(f"{output} already exists and is not empty")
    if dim is not None and (
        isinstance(dim, bool) or not isinstance(dim, int) or not 1 <= dim <= teacher.dim
    ):
        raise InputError(f"dim must be an integer in [1, {teacher.dim}], got {dim!r}")
    if not (isinstance(sif, (int, float)) and not isinstance(sif, bool) and sif > 0):
        raise InputError(f"sif must be a positive number, got {sif!r}")
    if corpus is not None and not any(text.strip() for text in corpus):
        raise InputError(
            "the refinement corpus holds no text: pass corpus=None to distill without one"
        )
    vectors = zipf_token_table(teacher, batch_size)
    tensors = {}
    if corpus:
        ids = corpus_token_ids(teacher, corpus)  # tokenised once, for both uses
        vectors = refine(vectors, teacher, corpus, ids=ids)
        tensors["weights"] = sif_weights(ids, len(vectors), sif)
    reduced = pca(vectors, dim or teacher.dim)
    unknown = teacher.tokenizer.unk_token_id if teacher.tokenizer.unk_token_id is not None else 0
    config = {
        "teacher": teacher.name,
        "teacher_fingerprint": teacher.fingerprint,
        "dim": reduced.shape[1],
        "refined_on": len(corpus or []),
        "sif": sif if corpus else None,
        "unknown_id": int(unknown),
        "refine": {"strength": REFINE_STRENGTH, "start": REFINE_START} if corpus else None,
        "fingerprint": digest(
            "static",
            teacher.fingerprint,
            reduced.shape[1],
            len(corpus or []),
            sif,
            *((REFINE_STRENGTH, REFINE_START) if corpus else ()),
        ),
    }
    with atomic_folder(output) as staging:
        save_file(
            {"embeddings": reduced.astype(np.float32), **tensors}, str(staging / WEIGHTS_FILE)
        )
        teacher.windows.tokenizer.save(str(staging / "tokenizer.json"))
        (staging / CONFIG_FILE).write_text(json.dumps(config, indent=2))
    return output


def zipf_token_table(teacher, batch_size: int = 1024) -> np.ndarray:
    """(vocab, dim): each token's vector from the teacher, weighted by the log of its vocabulary
    rank (a Zipf prior: later, rarer tokens count more). The table distill refines and reduces."""
    vectors = _token_vectors(teacher, batch_size)
    vectors *= np.log(np.arange(2, len(vectors) + 2, dtype=np.float32))[:, None]
    return vectors


def _token_vectors(teacher, batch_size: int) -> np.ndarray:
    """(vocab, dim): the teacher's pooled output for each token between the special tokens."""
    tokenizer = teacher.tokenizer
    vocab = teacher.windows.tokenizer.get_vocab_size(with_added_tokens=True)
    first = tokenizer.cls_token_id if tokenizer.cls_token_id is not None else tokenizer.bos_token_id
    last = tokenizer.sep_token_id if tokenizer.sep_token_id is not None else tokenizer.eos_token_id
    before, after = [first] if first is not None else [], [last] if last is not None else []
    out = np.empty((vocab, teacher.dim), dtype=np.float32)
    for start in range(0, vocab, batch_size):
        ids = [before + [token] + after for token in range(start, min(vocab, start + batch_size))]
        padded = teacher.windows.pad(ids, [[0] * len(i) for i in ids])
        out[start : start + len(ids)] = teacher.embed_windows(padded)
    return out


def corpus_token_ids(teacher, corpus: list[str]) -> list[list[int]]:
    """Each corpus text as the teacher's token ids, untruncated (distillation and bench/select_static)."""
    tokenizer = teacher.windows.tokenizer
    tokenizer.no_truncation()
    unknown = teacher.tokenizer.unk_token_id or 0
    return [
        e.ids or [unknown]
        for e in tokenizer.encode_batch([t.strip() for t in corpus], add_special_tokens=False)
    ]


def sif_weights(ids: list[list[int]], vocab: int, smoothing: float = SIF_SMOOTHING) -> np.ndarray:
    """Smooth inverse frequency (Arora et al. 2017): a token's weight in the mean is a / (a + p),
    p its frequency in the tokenised corpus `ids`. Frequent tokens ("the", "of") stop drowning long documents.
    The default a is chosen from 1e-4 ... 0.1 on dev splits by bench/select_static.py (the README
    shows its table)."""
    counts = np.bincount(np.concatenate(ids), minlength=vocab).astype(np.float64)
    return (smoothing / (smoothing + counts / counts.sum())).astype(np.float32)


def refine(
    table: np.ndarray,
    teacher,
    corpus: list[str],
    *,
    strength: float = REFINE_STRENGTH,
    start: str = REFINE_START,
    iterations: int = 60,
    ids: list[list[int]] | None = None,
    targets: np.ndarray | None = None,
) -> np.ndarray:
    """Fit the token table so that the mean of a sentence's token vectors matches the teacher's
    embedding of the sentence, over `corpus`, staying close to the start table for tokens the
    corpus rarely uses: minimise ||A E - Y||^2 + strength ||E - S||^2 (A: bag-of-tokens rows
    summing to 1, Y: teacher vectors, S: `table` scaled by the `start` rule), solved by conjugate
    gradient from S. start="sentence": a token's vector about as long as a sentence's; "bag": the
    corpus's bag means about as long as its sentences. The README's encoding section shows what
    refining gains. `ids`: the corpus already tokenised; `targets`: the teacher's vectors of
    `corpus`, already computed (both save time when refining several ways)."""
    from uniembed._extras import require

    require("eval")  # scipy, for the sparse bag-of-tokens matrix
    import scipy.sparse as sparse

    if start not in REFINE_STARTS:
        raise InputError(f"start must be one of {list(REFINE_STARTS)}, got {start!r}")
    if isinstance(strength, bool) or not isinstance(strength, (int, float)) or not strength > 0:
        raise InputError(f"strength must be a positive number, got {strength!r}")
    if targets is None:
        targets = teacher.encode(corpus, show_progress=len(corpus) > 10_000)
    targets = np.asarray(targets, dtype=np.float64)
    ids = ids if ids is not None else corpus_token_ids(teacher, corpus)
    counts = np.array([len(i) for i in ids])
    bag = sparse.csr_matrix(
        (
            np.repeat(1.0 / counts, counts),
            (np.repeat(np.arange(len(ids)), counts), np.concatenate(ids)),
        ),
        shape=(len(ids), len(table)),
    )
    scaled = (
        table if start == "sentence" else bag @ table
    )  # whose mean length is matched to the sentences'
    initial = table * (
        np.linalg.norm(targets, axis=1).mean() / np.linalg.norm(scaled, axis=1).mean()
    )
    return _conjugate_gradient(
        lambda x: bag.T @ (bag @ x) + strength * x,
        bag.T @ targets + strength * initial,
        initial,
        iterations,
    )


def _conjugate_gradient(apply, rhs: np.ndarray, x: np.ndarray, iterations: int) -> np.ndarray:
    """Solve apply(X) = rhs column by column (all columns at once) for a symmetric positive operator."""
    x = x.astype(np.float64).copy()
    residual = rhs - apply(x)
    direction = residual.copy()
    norm = (residual * residual).sum(0)
    for _ in range(iterations):
        step_image = apply(direction)
        alpha = norm / np.maximum((direction * step_image).sum(0), 1e-30)
        x += direction * alpha
        residual -= step_image * alpha
        new_norm = (residual * residual).sum(0)
        direction = residual + direction * (new_norm / np.maximum(norm, 1e-30))
        norm = new_norm
    return x.astype(np.float32)


def pca(vectors: np.ndarray, dim: int) -> np.ndarray:
    """`vectors` projected on their first `dim` principal components (centred first)."""
    centred = vectors - vectors.mean(axis=0)
    _, _, components = np.linalg.svd(centred, full_matrices=False)
    return (centred @ components[:dim].T).astype(np.float32)
