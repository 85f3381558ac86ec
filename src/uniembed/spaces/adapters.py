"""Adapters new -> old: a map that takes a new model's vectors into an old model's space, so a
collection of old vectors can be searched with the new model at once (queries only; the stored
vectors stay as they are until a backfill replaces them).

Fitted on paired vectors of the same texts (the collection's own texts, or texts given):

- procrustes: centred orthogonal Procrustes: the orthogonal (semi-orthogonal when the dims differ)
  W minimising ||(X - mean X) W - (Y - mean Y)||, from one SVD, then the old mean added back. Keeps
  angles between centred vectors, so it cannot overfit much, but needs at least as many pairs as
  the larger dimension to be determined. Centring matters when the two clouds sit around different
  common directions (a static model's vectors share a large one): on SciFact's train queries it
  lifted a static -> default upgrade's nDCG@10 from 56.7 to 59.6 (bench/upgrade.py's validation).
- ridge: least squares with an L2 penalty and a bias, closed form; the penalty is chosen on
  held-out pairs. Works with fewer pairs than dimensions.
- mlp: ridge plus a small residual MLP (one hidden layer), trained on cosine loss with early
  stopping on held-out pairs; needs at least as many pairs as the larger dimension.
- contrastive: starts as the Procrustes map and is trained for the job a query adapter does: rank
  each item's own stored vector first among the other items', for the item's text and for
  pseudo-queries cut from it (its sentences: `pseudo.py`), with an InfoNCE loss; the epoch with
  the best held-out ranking (MRR of held-out items' queries) is kept, so on those items it never
  ends below Procrustes (other held-out items then measure it). The other kinds fit vectors of
  whole items, which sit apart from short queries (a static model's query vectors most of all);
  this one sees query-like texts.
  Needs as many pairs as Procrustes. Only the new model encodes the pseudo-queries: their targets
  are the stored vectors.
- auto: fits every kind the pairs allow and keeps the one whose held-out items' queries (their own
  new vectors and, when given, their pseudo-queries) rank the item's stored vector best (MRR among
  all the pairs' stored vectors). Needs no labelled queries: what a user can run on a collection.

Every kind records that held-out MRR on its card (settings["held_out_mrr"]), measured with the map
fitted without the held-out pairs and on held-out pairs that chose none of its settings (the held-out
tenth is split in two: one half tunes, the other measures), so cards of different kinds compare.

Every adapter outputs L2-normalised vectors of the old dimension. Saved as safetensors (weights)
+ JSON (kind, dims, both fingerprints, pairs, held-out cosine), never pickle.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from uniembed.errors import InputError

KINDS = ("procrustes", "ridge", "mlp", "contrastive")
AUTO = "auto"
CHOICES = (*KINDS, AUTO)  # what fit_adapter accepts; an adapter's card always names one of KINDS
RIDGE_PENALTIES = (1e-3, 1e-2, 1e-1, 1.0, 10.0)
HOLDOUT_SHARE = 0.1
MLP_HIDDEN = 512
MLP_EPOCHS = 200
MLP_PATIENCE = 10
# Chosen on SciFact's train claims (validation) for the static -> default and default -> fine-tuned
# upgrades, in a side experiment on bench/upgrade.py's vectors (not a committed bench): at 0.05 the
# held-out ranking fell below Procrustes from the first epoch; 0.01 and 0.02 both lifted it, 0.02
# on both upgrades.
CONTRASTIVE_TEMPERATURE = 0.02
CONTRASTIVE_LEARNING_RATE = 1e-4
CONTRASTIVE_EPOCHS = 25
CONTRASTIVE_BATCH = 512


@dataclass
class AdapterCard:
    kind: str
    new_dim: int
    old_dim: int
    new_fingerprint: str | None = None
    old_fingerprint: str | None = None
    pairs: int = 0
    holdout_cosine: float | None = (
        None  # mean cosine(adapted new, old) on held-out pairs that chose nothing
    )
    settings: dict = field(default_factory=dict)  # e.g. the ridge penalty chosen


class Adapter:
    """`adapter(new_vectors) -> old-space vectors` (float32, L2-normalised)."""

    def __init__(self, card: AdapterCard, weights: dict[str, np.ndarray]):
        self.card = card
        self.weights = {
            name: np.ascontiguousarray(value, dtype=np.float32) for name, value in weights.items()
        }

    def __call__(self, vectors) -> np.ndarray:
        x = np.asarray(vectors, dtype=np.float32)
        single = x.ndim == 1
        x = np.atleast_2d(x)
        if x.ndim != 2 or x.shape[1] != self.card.new_dim:
            raise InputError(
                f"this adapter maps {self.card.new_dim}-dim vectors, got shape {np.asarray(vectors).shape}"
            )
        x = unit_rows(x)  # every kind was fitted on unit vectors, and the bias makes scale matter
        w = self.weights
        y = x @ w["linear"] + w["bias"]
        if self.card.kind == "mlp":  # every other kind is affine
            hidden = np.maximum(x @ w["hidden"] + w["hidden_bias"], 0.0)
            y = y + hidden @ w["out"]
        y = y / np.maximum(np.linalg.norm(y, axis=1, keepdims=True), 1e-12)
        return y[0] if single else y

    def save(self, folder: str | Path, stem: str = "adapter") -> Path:
        """`folder/stem.safetensors` + `folder/stem.json`, each written whole (temp file, rename)."""
        from safetensors.numpy import save_file

        from uniembed._atomic import replace_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        weights, card = folder / f"{stem}.safetensors", folder / f"{stem}.json"
        save_file(self.weights, str(folder / f".{stem}.safetensors.tmp"))
        replace_file(folder / f".{stem}.safetensors.tmp", weights)
        (folder / f".{stem}.json.tmp").write_text(json.dumps(asdict(self.card), indent=2))
        replace_file(folder / f".{stem}.json.tmp", card)
        return card

    @classmethod
    def load(cls, folder: str | Path, stem: str = "adapter") -> Adapter:
        from safetensors.numpy import load_file

        folder = Path(folder)
        try:
            card = AdapterCard(**json.loads((folder / f"{stem}.json").read_text()))
            weights = load_file(str(folder / f"{stem}.safetensors"))
        except (OSError, ValueError, TypeError) as exc:
            raise InputError(
                f"{folder / stem}: not a readable adapter ({type(exc).__name__}: {exc})"
            ) from None
        needed = {"linear", "bias"} | (
            {"hidden", "hidden_bias", "out"} if card.kind == "mlp" else set()
        )
        if (
            card.kind not in KINDS
            or not needed <= set(weights)
            or weights["linear"].shape != (card.new_dim, card.old_dim)
        ):
            raise InputError(
                f"{folder / stem}: adapter files do not match their card ({card.kind}, "
                f"{card.new_dim} -> {card.old_dim})"
            )
        return cls(card, weights)


def fit_adapter(
    new: np.ndarray,
    old: np.ndarray,
    kind: str = "procrustes",
    *,
    queries: np.ndarray | None = None,
    owners=None,
    new_fingerprint: str | None = None,
    old_fingerprint: str | None = None,
    seed: int = 0,
    show_progress: bool = False,
) -> Adapter:
    """An adapter taking `new` (n, d_new) to `old` (n, d_old): row i of each is the same text.

    kind: one of KINDS, or "auto" (fit every kind the pairs allow, keep the best held-out MRR).
    queries, owners: the new model's vectors of pseudo-queries (m, d_new) and, for each, the row of
    `new`/`old` whose text it was cut from. The contrastive kind trains on them; every kind ranks the
    held-out items' ones to measure its held-out MRR (optional: without them, the items' own vectors).
    show_progress: a bar over the training epochs of the kinds that train (mlp, contrastive)."""
    if kind not in CHOICES:
        raise InputError(f"adapter must be one of {list(CHOICES)}, got {kind!r}")
    new, old = _checked_pairs(new, old)
    queries, owners = _checked_queries(queries, owners, new.shape)
    if new_fingerprint is not None and new_fingerprint == old_fingerprint:
        raise InputError(
            "the new model has the same fingerprint as the old one: its vectors are the old ones, "
            "there is nothing to adapt"
        )
    fingerprints = {"new_fingerprint": new_fingerprint, "old_fingerprint": old_fingerprint}
    if kind == AUTO:
        fitted = {
            candidate: _fit_kind(
                candidate, new, old, queries, owners, seed, show_progress, **fingerprints
            )
            for candidate in KINDS
            if _enough_pairs(candidate, new.shape, old.shape)
        }
        return fitted[choose_by_held_out(fitted)]
    if not _enough_pairs(kind, new.shape, old.shape):
        raise InputError(
            f"{kind} needs at least as many pairs as dimensions ({max(new.shape[1], old.shape[1])}), "
            f"got {len(new)}: use more pairs, or the ridge adapter, which is fine with fewer"
        )
    return _fit_kind(kind, new, old, queries, owners, seed, show_progress, **fingerprints)


def choose_by_held_out(fitted: dict[str, Adapter]) -> str:
    """The kind, among `fitted` ({kind: adapter fitted on the same pairs and seed}), whose card
    has the best held-out MRR; the simpler kind (earlier in KINDS) on equal scores. Without a
    held-out share (fewer than 10 pairs) Procrustes when fitted, else ridge. The chosen card
    records every candidate's score under settings["auto"]."""
    if not fitted:
        raise InputError("no adapter kind to choose from")
    scores = {kind: adapter.card.settings.get("held_out_mrr") for kind, adapter in fitted.items()}
    measured = [kind for kind in KINDS if scores.get(kind) is not None]
    if measured:
        chosen = max(measured, key=lambda kind: (scores[kind], -KINDS.index(kind)))
    else:
        chosen = "procrustes" if "procrustes" in fitted else next(iter(fitted))
    fitted[chosen].card.settings["auto"] = scores if measured else "too few pairs to hold any out"
    return chosen


def _enough_pairs(kind: str, new_shape, old_shape) -> bool:
    """Procrustes, the MLP and the contrastive map (which starts as Procrustes) are only determined
    with at least as many pairs as the larger dimension; ridge is fine with fewer."""
    return kind == "ridge" or new_shape[0] >= max(new_shape[1], old_shape[1])


def _fit_kind(
    kind, new, old, queries, owners, seed: int, show_progress: bool, **fingerprints
) -> Adapter:
    n, d_new = new.shape
    d_old = old.shape[1]
    choose, report, kept = held_out_split(n, seed)
    settings: dict = {}
    if kind == "procrustes":
        on_kept, final = _procrustes(new[kept], old[kept]), _procrustes(new, old)
    elif kind == "ridge":
        settings["penalty"] = penalty = _chosen_penalty(new, old, kept, choose)
        on_kept, final = _ridge(new[kept], old[kept], penalty), _ridge(new, old, penalty)
    elif (
        kind == "mlp"
    ):  # the MLP's epoch is chosen on held-out pairs, so it is not refitted on them
        final, settings = _mlp(new, old, kept, choose, seed, show_progress)
        on_kept = final
    else:  # so is the contrastive map's
        final, settings = _contrastive(new, old, queries, owners, kept, choose, seed, show_progress)
        on_kept = final
    card = AdapterCard(
        kind=kind, new_dim=d_new, old_dim=d_old, pairs=n, settings=settings, **fingerprints
    )
    if len(report):  # measured with the map fitted without them, on rows that chose nothing
        measured = Adapter(card, on_kept)
        card.holdout_cosine = round(
            float(np.mean(np.sum(measured(new[report]) * old[report], axis=1))), 4
        )
        held_queries, held_owners = with_own(new, queries, owners, report)
        card.settings["held_out_mrr"] = round(
            mean_reciprocal_rank(measured(held_queries), held_owners, old), 4
        )
    return Adapter(card, final)


def held_out_split(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(choose, report, kept) rows of n pairs: a seeded tenth held out (none below 10 pairs), in two
    halves. `choose` picks what a kind tunes (ridge's penalty, the MLP's and contrastive map's
    epoch); `report` only measures (the card's held-out cosine and MRR), so a kind tuned on its
    own measure does not look better than it is, and auto's choice among kinds is fair. Every kind
    fitted with the same seed holds out the same rows."""
    order = np.random.default_rng(seed).permutation(n)
    held = max(2, int(round(n * HOLDOUT_SHARE))) if n >= 10 else 0
    return order[: held // 2], order[held // 2 : held], order[held:]


def with_own(
    new: np.ndarray, queries: np.ndarray, owners: np.ndarray, rows: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The query vectors of `rows` (their own new vectors, then their pseudo-queries) and each one's owner row."""
    cut = np.isin(owners, rows)
    return np.vstack([new[rows], queries[cut]]), np.concatenate([rows, owners[cut]])


def mean_reciprocal_rank(
    mapped: np.ndarray, owners: np.ndarray, stored: np.ndarray, block: int = 1024
) -> float:
    """MRR of each mapped query's owner among all stored vectors (unit rows); scored in blocks so
    that many queries x many items never sit in memory at once. Ties count in the owner's favour."""
    reciprocal = []
    for start in range(0, len(mapped), block):
        scores = mapped[start : start + block] @ stored.T
        own = scores[np.arange(len(scores)), owners[start : start + block]]
        reciprocal.append(1.0 / (1 + (scores > own[:, None]).sum(axis=1)))
    return float(np.mean(np.concatenate(reciprocal)))


def _checked_pairs(new, old) -> tuple[np.ndarray, np.ndarray]:
    new, old = np.asarray(new, dtype=np.float64), np.asarray(old, dtype=np.float64)
    if new.ndim != 2 or old.ndim != 2:
        raise InputError(f"pairs must be two 2-D arrays, got shapes {new.shape} and {old.shape}")
    if len(new) != len(old):
        raise InputError(
            f"pairs must have as many new vectors as old ones, got {len(new)} and {len(old)}"
        )
    if len(new) < 2:
        raise InputError(f"an adapter needs at least 2 pairs, got {len(new)}")
    if not (np.isfinite(new).all() and np.isfinite(old).all()):
        raise InputError("pairs hold NaN or infinite values")
    return unit_rows(new), unit_rows(old)


def _checked_queries(queries, owners, pairs_shape) -> tuple[np.ndarray, np.ndarray]:
    """Pseudo-queries as (m, d_new) unit float64 vectors and their owners as row numbers (m = 0 when none)."""
    if queries is None and owners is None:
        return np.zeros((0, pairs_shape[1])), np.zeros(0, dtype=np.int64)
    if queries is None or owners is None:
        raise InputError(
            "pseudo-queries need both queries= and owners= (the pair each query was cut from)"
        )
    queries, owners = np.asarray(queries, dtype=np.float64), np.asarray(owners)
    if queries.ndim != 2 or queries.shape[1] != pairs_shape[1] or owners.shape != (len(queries),):
        raise InputError(
            f"pseudo-queries must be ({len(owners)}, {pairs_shape[1]}) vectors with one owner each, "
            f"got shapes {queries.shape} and {owners.shape}"
        )
    if not np.issubdtype(owners.dtype, np.integer) and len(owners):
        raise InputError(f"owners must be integer row numbers, got dtype {owners.dtype}")
    if len(owners) and (owners.min() < 0 or owners.max() >= pairs_shape[0]):
        bad = owners[(owners < 0) | (owners >= pairs_shape[0])][0]
        raise InputError(f"owner {int(bad)} is not a row of the {pairs_shape[0]} pairs")
    if not np.isfinite(queries).all():
        raise InputError("pseudo-queries hold NaN or infinite values")
    return unit_rows(queries), owners.astype(np.int64)


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length, in the caller's precision (adapters fit in float64)."""
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _procrustes(x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    mean_x, mean_y = x.mean(axis=0), y.mean(axis=0)
    u, _, vt = np.linalg.svd(
        (x - mean_x).T @ (y - mean_y), full_matrices=False
    )  # (d_new, r) (r, d_old)
    w = u @ vt
    return {"linear": w, "bias": mean_y - mean_x @ w}


def _ridge(x: np.ndarray, y: np.ndarray, penalty: float) -> dict[str, np.ndarray]:
    mean_x, mean_y = x.mean(axis=0), y.mean(axis=0)
    xc, yc = x - mean_x, y - mean_y
    d = x.shape[1]
    if len(x) < d:  # the dual form: an n x n system instead of d x d
        w = xc.T @ np.linalg.solve(xc @ xc.T + penalty * np.eye(len(x)), yc)
    else:
        w = np.linalg.solve(xc.T @ xc + penalty * np.eye(d), xc.T @ yc)
    return {"linear": w, "bias": mean_y - mean_x @ w}


def _chosen_penalty(x, y, kept, choose) -> float:
    """The ridge penalty with the best cosine on the `choose` rows (1.0 when there are none)."""
    if len(choose) == 0:
        return 1.0
    return max(
        RIDGE_PENALTIES,
        key=lambda p: _mean_cosine(_ridge(x[kept], y[kept], p), x[choose], y[choose]),
    )


def _mean_cosine(weights: dict, x: np.ndarray, y: np.ndarray) -> float:
    mapped = unit_rows(x @ weights["linear"] + weights["bias"])
    return float(np.mean(np.sum(mapped * y, axis=1)))


def _epochs(count: int, show_progress: bool, what: str):
    """1..count, behind a progress bar when asked (an MLP may stop early: the bar then stops short)."""
    if not show_progress:
        return range(1, count + 1)
    from tqdm.auto import tqdm

    return tqdm(range(1, count + 1), desc=what, unit="epoch", leave=False)


def _mlp(x, y, kept, choose, seed: int, show_progress: bool = False) -> tuple[dict, dict]:
    """Ridge (penalty chosen on the `choose` pairs) plus a residual ReLU layer trained on 1 - cosine
    with AdamW; the epoch with the best cosine on the `choose` pairs is kept."""
    import torch

    penalty = _chosen_penalty(x, y, kept, choose)
    base = _ridge(x[kept], y[kept], penalty)
    generator = torch.Generator().manual_seed(seed)
    torch_x = torch.tensor(x, dtype=torch.float32)
    torch_y = torch.tensor(y, dtype=torch.float32)
    linear = torch.tensor(base["linear"], dtype=torch.float32, requires_grad=True)
    bias = torch.tensor(base["bias"], dtype=torch.float32, requires_grad=True)
    hidden = torch.nn.Linear(x.shape[1], MLP_HIDDEN)
    out = torch.nn.Linear(MLP_HIDDEN, y.shape[1], bias=False)
    with torch.no_grad():
        for layer in (hidden, out):
            layer.weight.normal_(0, 0.02, generator=generator)
        hidden.bias.zero_()
        out.weight.zero_()  # starts as the ridge map exactly
    parameters = [linear, bias, *hidden.parameters(), *out.parameters()]
    optimizer = torch.optim.AdamW(parameters, lr=1e-3, weight_decay=1e-4)

    def forward(rows):
        return (torch_x[rows] @ linear + bias) + out(torch.relu(hidden(torch_x[rows])))

    def choosing_cosine() -> float:
        with torch.no_grad():
            return float(
                torch.nn.functional.cosine_similarity(forward(choose), torch_y[choose]).mean()
            )

    kept_t, choose = torch.as_tensor(kept), torch.as_tensor(choose)
    best, best_state, waited, epochs = -2.0, None, 0, 0
    # epochs outlives the loop: the card records how many ran
    for epochs in _epochs(MLP_EPOCHS, show_progress, "fitting the mlp adapter"):  # noqa: B007
        for batch in kept_t[torch.randperm(len(kept_t), generator=generator)].split(256):
            loss = 1 - torch.nn.functional.cosine_similarity(forward(batch), torch_y[batch]).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        score = choosing_cosine() if len(choose) else -float(loss.detach())
        if score > best + 1e-5:
            best, waited = score, 0
            best_state = [p.detach().clone() for p in parameters]
        else:
            waited += 1
            if waited >= MLP_PATIENCE:
                break
    linear_w, bias_w, hidden_w, hidden_b, out_w = (p.numpy() for p in best_state)
    weights = {
        "linear": linear_w,
        "bias": bias_w,
        "hidden": hidden_w.T,
        "hidden_bias": hidden_b,
        "out": out_w.T,
    }
    return weights, {"penalty": penalty, "hidden": MLP_HIDDEN, "epochs": epochs}


def _contrastive(
    x, y, queries, owners, kept, choose, seed: int, show_progress: bool = False
) -> tuple[dict, dict]:
    """Procrustes (on the kept pairs), then trained with InfoNCE: each kept item's own vector and
    its pseudo-queries, mapped, must score the item's stored vector above every other kept item's.
    Held-out items are never negatives in training (the map would learn to avoid them); the
    queries of the `choose` ones, ranked among all items, pick the epoch (epoch 0 = Procrustes)."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    start = _procrustes(x[kept], y[kept])
    targets = torch.tensor(y, dtype=torch.float32)

    def queries_of(
        rows,
    ):  # (query vectors, owner rows): the items' own vectors, then their pseudo-queries
        vectors, owner_rows = with_own(x, queries, owners, rows)
        return torch.tensor(vectors, dtype=torch.float32), torch.as_tensor(owner_rows)

    train_x, train_owner = queries_of(kept)
    position = torch.full((len(x),), -1, dtype=torch.long)
    position[torch.as_tensor(kept)] = torch.arange(len(kept))
    train_target, negatives = position[train_owner], targets[torch.as_tensor(kept)]
    choose_x, choose_owner = queries_of(choose) if len(choose) else (None, None)
    linear = torch.tensor(start["linear"], dtype=torch.float32, requires_grad=True)
    bias = torch.tensor(start["bias"], dtype=torch.float32, requires_grad=True)
    optimizer = torch.optim.Adam([linear, bias], lr=CONTRASTIVE_LEARNING_RATE)

    def mapped(rows_x):
        return torch.nn.functional.normalize(rows_x @ linear + bias, dim=1)

    def choosing_mrr() -> float:
        with torch.no_grad():
            return mean_reciprocal_rank(
                mapped(choose_x).numpy(), choose_owner.numpy(), targets.numpy()
            )

    best = choosing_mrr() if len(choose) else float("-inf")
    best_state, best_epoch, first = (linear.detach().clone(), bias.detach().clone()), 0, best
    for epoch in _epochs(CONTRASTIVE_EPOCHS, show_progress, "fitting the contrastive adapter"):
        for batch in torch.randperm(len(train_x), generator=generator).split(CONTRASTIVE_BATCH):
            logits = mapped(train_x[batch]) @ negatives.T / CONTRASTIVE_TEMPERATURE
            loss = torch.nn.functional.cross_entropy(logits, train_target[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        score = choosing_mrr() if len(choose) else -float(loss.detach())
        if score > best:
            best, best_epoch = score, epoch
            best_state = (linear.detach().clone(), bias.detach().clone())
    settings = {
        "temperature": CONTRASTIVE_TEMPERATURE,
        "epoch": best_epoch,
        "pseudo_queries": int(len(queries)),
    }
    if len(choose):  # on the rows that chose the epoch; the card's held_out_mrr is on other rows
        settings.update(
            {"choosing_mrr_procrustes": round(first, 4), "choosing_mrr": round(best, 4)}
        )
    return {
        "linear": best_state[0].numpy().astype(np.float64),
        "bias": best_state[1].numpy().astype(np.float64),
    }, settings
