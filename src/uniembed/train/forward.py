"""Embedding with gradients: the same tokenisation, pooling and prompts as `encode`, through the
TransformerEncoder's own torch body, so a trained model embeds exactly as it will after saving.
Gradient caching (GradCache) lives here too: big effective batches in small memory."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from uniembed.encoders.pooling import pool


def embed(encoder, texts: Sequence[str], *, prompt: str | None = None) -> torch.Tensor:
    """(n, dim) pooled, unnormalised vectors with gradients."""
    return embed_layers(encoder, texts, prompt=prompt)[None]


def embed_layers(
    encoder, texts: Sequence[str], *, prompt: str | None = None, layers: Sequence[int] = ()
) -> dict[int | None, torch.Tensor]:
    """Pooled vectors of the last layer (key None) and of each of `layers` (1-based: the output
    of that transformer layer, as the model cut to that many layers makes it), from one forward."""
    prefix = encoder.prompt_prefix(prompt)
    windows = encoder.windows.windows([prefix + t for t in texts], chunk=False)
    padded = encoder.windows.pad(windows.ids, windows.type_ids)
    inputs = {
        name: torch.from_numpy(padded[name]).to(encoder.device) for name in encoder._input_names
    }
    output = encoder.model(**inputs, output_hidden_states=bool(layers))
    mask = torch.from_numpy(padded["attention_mask"]).to(encoder.device)
    pooled = {None: pool(output.last_hidden_state, mask, encoder.pooling, encoder.padding_side)}
    for layer in layers:
        pooled[layer] = pool(
            output.hidden_states[layer], mask, encoder.pooling, encoder.padding_side
        )
    return pooled


class _RandomState:
    """Torch's RNG state at one moment, to replay dropout exactly in the second pass."""

    def __init__(self):
        self.cpu = torch.get_rng_state()
        self.cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None

    def restore(self) -> None:
        torch.set_rng_state(self.cpu)
        if self.cuda is not None:
            torch.cuda.set_rng_state_all(self.cuda)


def cached_backward(
    groups: Sequence[tuple[Callable[[list], torch.Tensor], Sequence[str]]],
    loss_of: Callable[..., torch.Tensor],
    mini_batch: int,
) -> float:
    """GradCache (Gao et al. 2021): the loss of a large batch with the memory of a small one.
    `groups`: (embed function, texts) for each input of `loss_of` (anchors, positives, ...).

    1. embed every group in mini-batches without a graph, noting the RNG state before each;
    2. compute the loss on those vectors as leaf tensors and backpropagate to them only;
    3. embed each mini-batch again with a graph (same RNG state, so the same dropout) and
       backpropagate its slice of the cached gradient into the model.
    The model's gradients equal those of the uncached loss. Returns the loss value."""
    states, vectors = [], []
    with torch.no_grad():
        for embed_chunk, texts in groups:
            chunks, chunk_states = [], []
            for start in range(0, len(texts), mini_batch):
                chunk_states.append(_RandomState())
                chunks.append(embed_chunk(list(texts[start : start + mini_batch])))
            states.append(chunk_states)
            vectors.append(torch.cat(chunks).requires_grad_(True))
    loss = loss_of(*vectors)
    loss.backward()
    resume = _RandomState()
    for (embed_chunk, texts), group_states, leaf in zip(groups, states, vectors):
        for index, start in enumerate(range(0, len(texts), mini_batch)):
            group_states[index].restore()
            chunk = embed_chunk(list(texts[start : start + mini_batch]))
            chunk.backward(leaf.grad[start : start + mini_batch])
    resume.restore()  # the RNG goes on as if each text had been embedded once
    return float(loss.detach())
