"""Static models (the model2vec idea): one vector per token, taken from a transformer once; a text
is the mean of its tokens' vectors. Encoding needs numpy and the Rust tokenizer only.

    uniembed distill default -o static-mini       # or distill(model, "static-mini")
    uniembed.load("static-mini")
"""
from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path

import numpy as np

from uniembed.encoders.base import Encoder, LongPolicy, _digest
from uniembed.errors import InputError, ModelLoadError

CONFIG_FILE = "uniembed_static.json"
WEIGHTS_FILE = "static.safetensors"


class StaticEncoder(Encoder):
    def __init__(self, name: str, embeddings: np.ndarray, tokenizer, *, unknown_id: int, teacher: str, fingerprint: str):
        super().__init__(name, embeddings.shape[1], max_tokens=None)
        self.embeddings = embeddings  # (vocab, dim) float32
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
        encodings = self.tokenizer.encode_batch([t.strip() for t in texts], add_special_tokens=False)
        ids = [e.ids or [self.unknown_id] for e in encodings]  # an empty text gets the unknown token
        counts = np.fromiter((len(i) for i in ids), dtype=np.int64, count=len(ids))
        flat = np.fromiter((t for i in ids for t in i), dtype=np.int64, count=int(counts.sum()))
        starts = np.r_[0, np.cumsum(counts)[:-1]]
        sums = np.add.reduceat(self.embeddings[flat], starts, axis=0)
        return (sums / counts[:, None]).astype(np.float32)

    @classmethod
    def load(cls, directory: Path, *, name: str | None = None) -> "StaticEncoder":
        from uniembed._extras import require

        require("static")  # tokenizers and safetensors: no torch
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        directory = Path(directory)
        try:
            config = json.loads((directory / CONFIG_FILE).read_text())
            embeddings = load_file(str(directory / WEIGHTS_FILE))["embeddings"]
            tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
        except Exception as exc:  # missing or corrupt files: one clear error
            raise ModelLoadError(f"{directory} is not a readable static model: {type(exc).__name__}: {exc}") from exc
        return cls(name or directory.name, embeddings.astype(np.float32), tokenizer, unknown_id=config["unknown_id"],
                   teacher=config["teacher"], fingerprint=config["fingerprint"])


def distill(teacher, output: str | Path, *, dim: int | None = 256, batch_size: int = 1024) -> Path:
    """Make a static model from a transformer encoder (a TransformerEncoder from uniembed.load):
    embed every vocabulary token alone, reduce to `dim` with PCA, weight by log vocabulary rank
    (a Zipf prior: later, rarer tokens count more), save as safetensors + tokenizer.json."""
    import torch
    from safetensors.numpy import save_file

    output = Path(output)
    if output.exists() and any(output.iterdir()):
        raise InputError(f"{output} already exists and is not empty")
    if dim is not None and (isinstance(dim, bool) or not isinstance(dim, int) or not 1 <= dim <= teacher.dim):
        raise InputError(f"dim must be an integer in [1, {teacher.dim}], got {dim!r}")
    vectors = _token_vectors(teacher, batch_size, torch)
    reduced = _pca(vectors, dim or teacher.dim)
    reduced *= np.log(np.arange(2, len(reduced) + 2, dtype=np.float32))[:, None]
    staging = output.with_name(f".{output.name}.{uuid.uuid4().hex[:8]}")
    staging.mkdir(parents=True)
    try:
        save_file({"embeddings": reduced.astype(np.float32)}, str(staging / WEIGHTS_FILE))
        teacher.windows.tokenizer.save(str(staging / "tokenizer.json"))
        unknown = teacher.tokenizer.unk_token_id if teacher.tokenizer.unk_token_id is not None else 0
        config = {"teacher": teacher.name, "teacher_fingerprint": teacher.fingerprint, "dim": reduced.shape[1],
                  "unknown_id": int(unknown), "fingerprint": _digest("static", teacher.fingerprint, reduced.shape[1])}
        (staging / CONFIG_FILE).write_text(json.dumps(config, indent=2))
        if output.exists():
            output.rmdir()
        os.rename(staging, output)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return output


def _token_vectors(teacher, batch_size: int, torch) -> np.ndarray:
    """(vocab, dim): the teacher's pooled output for each token between the special tokens."""
    tokenizer = teacher.tokenizer
    vocab = len(tokenizer)
    first = tokenizer.cls_token_id if tokenizer.cls_token_id is not None else tokenizer.bos_token_id
    last = tokenizer.sep_token_id if tokenizer.sep_token_id is not None else tokenizer.eos_token_id
    before, after = [first] if first is not None else [], [last] if last is not None else []
    out = np.empty((vocab, teacher.dim), dtype=np.float32)
    for start in range(0, vocab, batch_size):
        ids = [before + [token] + after for token in range(start, min(vocab, start + batch_size))]
        padded = teacher.windows.pad(ids, [[0] * len(i) for i in ids])
        out[start : start + len(ids)] = teacher.embed_windows(padded)
    return out


def _pca(vectors: np.ndarray, dim: int) -> np.ndarray:
    centred = vectors - vectors.mean(axis=0)
    _, _, components = np.linalg.svd(centred, full_matrices=False)
    return (centred @ components[:dim].T).astype(np.float32)
