"""Contrastive losses on embeddings (torch tensors): each takes the batch's vectors, returns a scalar.

All of them compare L2-normalised vectors (cosine similarity) and are written for the small
batches a CPU can hold; `CachedStep` (gradient caching) gives any of the in-batch losses a large
effective batch in small memory with the same gradients.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F


def _normalise(x: torch.Tensor) -> torch.Tensor:
    return F.normalize(x, p=2, dim=-1)


def mnrl(
    anchors: torch.Tensor,
    positives: torch.Tensor,
    negatives: torch.Tensor | None = None,
    *,
    scale: float = 20.0,
    symmetric: bool = False,
) -> torch.Tensor:
    """Multiple-negatives ranking loss (InfoNCE): anchor i must score positive i above every other
    positive in the batch and every explicit hard negative. `negatives`: (n, k, dim) or (n, dim);
    scale 20 = temperature 0.05. symmetric: also each positive against all anchors."""
    a, p = _normalise(anchors), _normalise(positives)
    candidates = (
        p if negatives is None else torch.cat([p, _normalise(negatives.reshape(-1, a.shape[-1]))])
    )
    logits = scale * a @ candidates.T
    target = torch.arange(len(a), device=a.device)
    loss = F.cross_entropy(logits, target)
    if symmetric:
        loss = (loss + F.cross_entropy(scale * p @ a.T, target)) / 2
    return loss


def gist(
    anchors: torch.Tensor,
    positives: torch.Tensor,
    negatives: torch.Tensor | None,
    *,
    guide_anchors: torch.Tensor,
    guide_positives: torch.Tensor,
    guide_negatives: torch.Tensor | None = None,
    temperature: float = 0.01,
) -> torch.Tensor:
    """GISTEmbed: in-batch InfoNCE where a guide model masks false negatives: any candidate the
    guide rates more similar to the anchor than the anchor's own positive is left out."""
    a, p = _normalise(anchors), _normalise(positives)
    ga, gp = _normalise(guide_anchors), _normalise(guide_positives)
    candidates, guide_candidates = p, gp
    if negatives is not None:
        candidates = torch.cat([p, _normalise(negatives.reshape(-1, a.shape[-1]))])
        guide_candidates = torch.cat([gp, _normalise(guide_negatives.reshape(-1, ga.shape[-1]))])
    with torch.no_grad():
        guide_scores = ga @ guide_candidates.T
        own = guide_scores[torch.arange(len(a)), torch.arange(len(a))].unsqueeze(1)
        false_negative = guide_scores > own
        false_negative[torch.arange(len(a)), torch.arange(len(a))] = (
            False  # never mask the positive
        )
    logits = (a @ candidates.T / temperature).masked_fill(false_negative, float("-inf"))
    return F.cross_entropy(logits, torch.arange(len(a), device=a.device))


def triplet_semi_hard(
    embeddings: torch.Tensor, labels: torch.Tensor, *, margin: float = 0.2
) -> torch.Tensor:
    """Triplet loss with online semi-hard mining (FaceNet): for each anchor-positive pair of the same
    label, the closest negative that is still farther than the positive (within `margin`); the
    farthest negative when none is. Cosine distance."""
    x = _normalise(embeddings)
    distance = 1 - x @ x.T
    same = labels.unsqueeze(0) == labels.unsqueeze(1)
    eye = torch.eye(len(x), dtype=torch.bool, device=x.device)
    positive_pairs = same & ~eye
    if not positive_pairs.any():
        raise ValueError("triplet loss needs at least two texts of one label in the batch")
    anchor, positive = positive_pairs.nonzero(as_tuple=True)
    d_ap = distance[anchor, positive]
    d_an = distance[anchor]  # (pairs, batch)
    negative = ~same[anchor]
    semi_hard = negative & (d_an > d_ap.unsqueeze(1))
    inf = torch.finfo(d_an.dtype).max
    closest_semi_hard = torch.where(semi_hard, d_an, torch.full_like(d_an, inf)).min(1).values
    farthest = torch.where(negative, d_an, torch.full_like(d_an, -inf)).max(1).values
    chosen = torch.where(semi_hard.any(1), closest_semi_hard, farthest)
    has_negative = negative.any(1)
    return F.relu(d_ap - chosen + margin)[has_negative].mean()


def cosent(
    first: torch.Tensor, second: torch.Tensor, scores: torch.Tensor, *, scale: float = 20.0
) -> torch.Tensor:
    """CoSENT for scored pairs: every pair with a higher gold score must have a higher cosine than
    every pair with a lower one: log(1 + sum exp(scale * (cos_j - cos_i))) over s_i > s_j."""
    cosines = (_normalise(first) * _normalise(second)).sum(-1) * scale
    differences = cosines.unsqueeze(0) - cosines.unsqueeze(1)  # [i, j] = cos_j - cos_i
    wrong_order = scores.unsqueeze(1) > scores.unsqueeze(0)  # s_i > s_j
    differences = differences.masked_fill(~wrong_order, float("-inf"))
    zero = torch.zeros(1, device=differences.device, dtype=differences.dtype)
    return torch.logsumexp(torch.cat([zero, differences.flatten()]), dim=0)


def matryoshka(
    loss: Callable[..., torch.Tensor],
    dims: Sequence[int],
    *embeddings: torch.Tensor | None,
    weights: Sequence[float] | None = None,
    **kwargs,
) -> torch.Tensor:
    """`loss` summed over truncated prefixes of every embedding (each renormalised by the loss):
    the first d coordinates must work on their own, for every d in `dims`."""
    weights = weights or [1.0] * len(dims)
    total = 0
    for dim, weight in zip(dims, weights):
        total = total + weight * loss(
            *[None if e is None else e[..., :dim] for e in embeddings], **kwargs
        )
    return total


def kl_to_full(
    sub_scores: torch.Tensor, full_scores: torch.Tensor, *, temperature: float = 1.0
) -> torch.Tensor:
    """Starbucks' KL term: the sub-model's in-batch similarity distribution should match the full
    model's (the full one is the teacher, so it gets no gradient from this term)."""
    return F.kl_div(
        F.log_softmax(sub_scores / temperature, -1),
        F.softmax(full_scores.detach() / temperature, -1),
        reduction="batchmean",
    )
