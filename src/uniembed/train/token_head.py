"""Training a late-interaction head: a linear map of a frozen model's token vectors (hidden -> dim)
trained so that MaxSim ranks each query's relevant document first, saved as a ColBERT model in
PyLate's layout (Transformer + Dense), which `uniembed.load` and multi-vector collections use.

Only the head learns, so the model's token vectors are computed once (L2-normalised: with no bias,
normalise(W x) = normalise(W x/|x|), so the head sees exactly what it will see at inference) and an
epoch over SciFact's 919 pairs takes under a minute on 2 CPU cores.

Loss: InfoNCE over MaxSim scores (mean over query tokens, / temperature) against the batch's other
positives and `hard_negatives` mined per query with the model's single vectors. The head starts as
the top `dim` principal directions of the documents' token vectors.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from uniembed._atomic import atomic_folder
from uniembed.errors import InputError
from uniembed.train.data import PairSet, load_training_data


@dataclass(frozen=True)
class TokenHeadConfig:
    data: str  # a BEIR folder or a pairs file, as `uniembed train` takes
    output: str
    base: str = "default"
    dim: int = 128
    # chosen on SciFact validation claims by bench/select_head_epochs.py (best of 1..12: 10)
    epochs: int = 10
    batch_size: int = 32
    learning_rate: float = 3e-3
    temperature: float = 0.1
    hard_negatives: int = 3
    seed: int = 42
    split: str = "train"
    device: str | None = None

    def check(self) -> None:
        for name in ("dim", "epochs", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError(f"{name} must be a positive integer, got {value!r}")
        if self.batch_size < 2:
            raise InputError(
                f"batch_size must be at least 2 (in-batch negatives), got {self.batch_size}"
            )
        if (
            isinstance(self.hard_negatives, bool)
            or not isinstance(self.hard_negatives, int)
            or self.hard_negatives < 0
        ):
            raise InputError(f"hard_negatives must be an integer >= 0, got {self.hard_negatives!r}")
        for name in ("learning_rate", "temperature"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise InputError(f"{name} must be a positive number, got {value!r}")


@dataclass
class TokenHeadResult:
    output: Path
    steps: int
    seconds: float
    losses: list[float] = field(default_factory=list)  # mean loss per epoch


def train_token_head(
    config: TokenHeadConfig, *, show_progress: bool | None = None, on_epoch=None
) -> TokenHeadResult:
    """Train a token head on `config.data` over the frozen `config.base`; save a PyLate-layout model.
    `on_epoch(epoch, weight)`, if given, sees the head's (dim, hidden) weight after every epoch
    (1-based), e.g. to score a validation split (bench/select_head_epochs.py)."""
    import torch

    from uniembed import load
    from uniembed.train.mining import fill_to, mine_hard_negatives, mining_corpus

    config.check()
    data = load_training_data(config.data, "mnrl", split=config.split)  # every error before compute
    model = load(None if config.base == "default" else config.base, device=config.device)
    if not hasattr(model, "model") or not model.gives_token_vectors:
        raise InputError(
            f"{config.base}: a token head needs a transformer model on the torch backend"
        )
    if model.token_head is not None:
        raise InputError(f"{config.base} already has a token head; start from its base transformer")
    if config.dim > model.hidden_size:
        raise InputError(f"dim must be at most the model's {model.hidden_size}, got {config.dim}")
    started = time.perf_counter()
    if config.hard_negatives:
        corpus = mining_corpus(config.data, config.split, data)
        mined = mine_hard_negatives(
            model, data.anchors, data.positives, corpus, config.hard_negatives
        )
        data.negatives = [
            old + new
            for old, new in zip(
                data.negatives, fill_to(mined, config.hard_negatives, corpus, config.seed)
            )
        ]
    queries, documents, batches = _token_vectors(model, data, show_progress)

    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    weight = torch.nn.Parameter(_principal_directions(documents, config.dim, rng))
    optimizer = torch.optim.AdamW([weight], lr=config.learning_rate, weight_decay=0.0)
    losses, steps = [], 0
    shown = _progress(range(config.epochs), show_progress)
    for epoch in shown:
        order = rng.permutation(len(batches.anchor))
        total = 0.0
        for start in range(0, len(order) - 1, config.batch_size):
            rows = order[start : start + config.batch_size]
            if len(rows) < 2:
                continue
            loss = _batch_loss(weight, rows, queries, documents, batches, config, rng)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item()
            steps += 1
        losses.append(total / max(1, -(-len(order) // config.batch_size)))
        if on_epoch is not None:
            on_epoch(epoch + 1, weight.detach().numpy().copy())
    output = save_token_head_model(
        model, weight.detach().numpy(), config.output, card={"base": config.base, **asdict(config)}
    )
    return TokenHeadResult(Path(output), steps, time.perf_counter() - started, losses)


@dataclass
class _Examples:
    """Indices into the query and document token-vector lists."""

    anchor: np.ndarray  # example -> query
    positive: np.ndarray  # example -> document
    negatives: list[list[int]]  # example -> documents
    positives_of: dict[int, set[int]]  # query -> every document labelled relevant to it


def _token_vectors(model, data: PairSet, show_progress):
    query_texts = list(dict.fromkeys(data.anchors))
    doc_texts = list(dict.fromkeys([*data.positives, *(n for ns in data.negatives for n in ns)]))
    query_index = {t: i for i, t in enumerate(query_texts)}
    doc_index = {t: i for i, t in enumerate(doc_texts)}
    queries = model.encode_tokens(query_texts, prompt="query", show_progress=show_progress)
    documents = [
        t.astype(np.float16)
        for t in model.encode_tokens(doc_texts, prompt="document", show_progress=show_progress)
    ]
    anchor = np.array([query_index[a] for a in data.anchors])
    positive = np.array([doc_index[p] for p in data.positives])
    positives_of: dict[int, set[int]] = {}
    for a, p in zip(anchor.tolist(), positive.tolist()):
        positives_of.setdefault(a, set()).add(p)
    negatives = [[doc_index[n] for n in ns] for ns in data.negatives]
    return queries, documents, _Examples(anchor, positive, negatives, positives_of)


def _principal_directions(documents: list[np.ndarray], dim: int, rng, sample: int = 200_000):
    import torch

    flat = np.concatenate(documents)
    if len(flat) < dim:
        raise InputError(
            f"the training documents hold {len(flat)} token vectors, fewer than dim={dim}"
        )
    picked = flat[rng.choice(len(flat), min(sample, len(flat)), replace=False)].astype(np.float32)
    _, _, directions = np.linalg.svd(picked, full_matrices=False)
    return torch.from_numpy(np.ascontiguousarray(directions[:dim]))


def _padded(sets: list[np.ndarray]):
    import torch

    longest = max(len(s) for s in sets)
    values = torch.zeros(len(sets), longest, sets[0].shape[1])
    mask = torch.zeros(len(sets), longest, dtype=torch.bool)
    for row, tokens in enumerate(sets):
        values[row, : len(tokens)] = torch.from_numpy(np.asarray(tokens, dtype=np.float32))
        mask[row, : len(tokens)] = True
    return values, mask


def _batch_loss(
    weight, rows, queries, documents, examples: _Examples, config: TokenHeadConfig, rng
):
    import torch

    anchors = examples.anchor[rows]
    candidates = examples.positive[rows].tolist()
    for row in rows:
        given = examples.negatives[row]
        if given:
            candidates += [
                given[i]
                for i in rng.choice(
                    len(given), min(len(given), config.hard_negatives or len(given)), replace=False
                )
            ]
    q, q_mask = _padded([queries[a] for a in anchors])
    d, d_mask = _padded([documents[c] for c in candidates])
    q = torch.nn.functional.normalize(q @ weight.T, dim=-1)
    d = torch.nn.functional.normalize(d @ weight.T, dim=-1)
    similarity = torch.einsum("aqh,cdh->acqd", q, d).masked_fill(
        ~d_mask[None, :, None, :], -torch.inf
    )
    best = similarity.max(dim=3).values.masked_fill(~q_mask[:, None, :], 0.0)
    scores = best.sum(dim=2) / q_mask.sum(dim=1, keepdim=True) / config.temperature
    # another copy of a query's own relevant document is not a negative
    same = torch.tensor([[c in examples.positives_of[int(a)] for c in candidates] for a in anchors])
    same[torch.arange(len(rows)), torch.arange(len(rows))] = False
    scores = scores.masked_fill(same, -torch.inf)
    return torch.nn.functional.cross_entropy(scores, torch.arange(len(rows)))


def _progress(items, show: bool | None):
    """`items` behind a progress bar unless show is False."""
    if show is False:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc="training head", unit="epoch", leave=False)


def save_token_head_model(
    model, weight: np.ndarray, output: str | Path, *, card: dict | None = None
) -> Path:
    """`model`'s transformer plus a Dense head `weight` (dim, hidden), in PyLate's layout, atomically:
    no prefix tokens, no query expansion, no skiplist (what the head was trained with)."""
    from safetensors.numpy import save_file
    from transformers.utils import logging as hf_logging

    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    dim, hidden = weight.shape
    with atomic_folder(output, replace=True) as staging:
        hf_logging.disable_progress_bar()
        try:
            model.model.save_pretrained(str(staging), safe_serialization=True)
        finally:
            hf_logging.enable_progress_bar()
        model.tokenizer.save_pretrained(str(staging))
        modules = [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Dense", "type": "pylate.models.Dense.Dense"},
        ]
        _write_json(staging / "modules.json", modules)
        (staging / "1_Dense").mkdir()
        _write_json(
            staging / "1_Dense" / "config.json",
            {
                "in_features": hidden,
                "out_features": dim,
                "bias": False,
                "activation_function": "torch.nn.modules.linear.Identity",
            },
        )
        save_file(
            {"linear.weight": np.ascontiguousarray(weight, dtype=np.float32)},
            str(staging / "1_Dense" / "model.safetensors"),
        )
        _write_json(
            staging / "sentence_bert_config.json",
            {"max_seq_length": model.max_tokens, "do_lower_case": model.windows.lowercase},
        )
        _write_json(
            staging / "config_sentence_transformers.json",
            {
                "query_prefix": "",
                "document_prefix": "",
                "query_length": model.max_tokens,
                "document_length": model.max_tokens,
                "do_query_expansion": False,
                "attend_to_expansion_tokens": False,
                "skiplist_words": [],
                "prompts": model.prompts,
                "default_prompt_name": None,
                "similarity_fn_name": "MaxSim",
            },
        )
        lines = [
            "---",
            "library_name: PyLate",
            "tags: [ColBERT, PyLate, uniembed]",
            "---",
            "",
            f"# Late-interaction head over {card.get('base', model.name) if card else model.name}",
            "",
            f"A linear head ({hidden} -> {dim}) on the frozen model's token vectors, trained by uniembed for MaxSim.",
            "",
        ]
        lines += [f"- {key}: {value}" for key, value in (card or {}).items()]
        (staging / "README.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return output


def _write_json(path: Path, data) -> None:
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")
