"""What one binding batch is made of beyond its rows: which examples the loss treats as the same
thing (the positives mask), and the light augmentation images get (a random shift)."""

from __future__ import annotations


def positive_mask(groups, drawn):
    """(n, n) float: 1 where two examples of a batch are the same thing to the loss (the same
    positive group, or the very same caption drawn for both), else 0. Rows sum to >= 1 (the diagonal)."""
    return ((groups[:, None] == groups[None, :]) | (drawn[:, None] == drawn[None, :])).float()


def random_shift(pixels, generator):
    """Each image moved by up to 1/8 of its side in x and y (the border filled with the image's
    edge values), the usual light augmentation for small images."""
    import torch
    import torch.nn.functional as F

    n, _, height, width = pixels.shape
    pad = max(1, height // 8)
    padded = F.pad(pixels, (pad, pad, pad, pad), mode="replicate")
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator, device=pixels.device)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator, device=pixels.device)
    rows = dy[:, None] + torch.arange(height, device=pixels.device)[None, :]  # (n, H)
    cols = dx[:, None] + torch.arange(width, device=pixels.device)[None, :]  # (n, W)
    index = torch.arange(n, device=pixels.device)[:, None, None]
    return padded.permute(0, 2, 3, 1)[index, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)
