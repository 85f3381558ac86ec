"""The training loop: data and settings checked first, then AdamW with linear warm-up and decay,
a progress bar with loss and throughput, periodic evaluation, the best model kept, resumable.

    from uniembed.train import TrainConfig, train
    train(TrainConfig(base="default", data="pairs.jsonl", loss="mnrl", output="my-model"))

Resuming: the state (weights, optimizer moments, RNG, position) is saved beside the output every
`checkpoint_every` steps and on Ctrl-C, in `<output>.train-state/`; running the same command again continues from
there and reaches the same weights as an uninterrupted run. The state is removed when training ends.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import asdict
from pathlib import Path

from uniembed.errors import InputError
from uniembed.train.checkpoint import load_optimizer, optimizer_tensors
from uniembed.train.config import TrainConfig, TrainResult
from uniembed.train.data import LabelledSet, PairSet, load_training_data


def train(config: TrainConfig, *, show_progress: bool | None = None) -> TrainResult:
    """Fine-tune `config.base` on `config.data`; the best (or last) model is saved at `config.output`."""
    import torch

    config.check()
    data = load_training_data(
        config.data, config.loss, split=config.split
    )  # all errors before compute
    from uniembed import load

    model = load(None if config.base == "default" else config.base, device=config.device)
    if not hasattr(model, "model"):
        raise InputError(
            f"{config.base} cannot be trained: only transformer models (torch backend) can be fine-tuned"
        )
    if config.matryoshka and config.matryoshka[0] > model.dim:
        raise InputError(
            f"matryoshka dims must be at most the model's {model.dim}, got {config.matryoshka[0]}"
        )
    depth = int(model.model.config.num_hidden_layers)
    if any(layers > depth or dim > model.dim for layers, dim in config.starbucks):
        raise InputError(
            f"starbucks pairs must fit the model ({depth} layers, {model.dim} dims), got {config.starbucks}"
        )
    guide = load(config.guide, device=config.device) if config.guide else None

    if config.hard_negatives and isinstance(data, PairSet):
        from uniembed.train.mining import fill_to, mine_hard_negatives, mining_corpus

        corpus = mining_corpus(config.data, config.split, data)
        mined = mine_hard_negatives(
            model, data.anchors, data.positives, corpus, config.hard_negatives, guide=guide
        )
        data.negatives = [
            old + new
            for old, new in zip(
                data.negatives, fill_to(mined, config.hard_negatives, corpus, config.seed)
            )
        ]

    state_dir = Path(f"{config.output}.train-state")
    torch.manual_seed(config.seed)
    optimizer = torch.optim.AdamW(
        model.model.parameters(), lr=config.learning_rate, weight_decay=0.01
    )
    loop = _Loop(config, model, guide, data, optimizer, state_dir)
    loop.resume_if_possible()
    loop.run(show_progress)
    return loop.finish()


class _Loop:
    def __init__(self, config: TrainConfig, model, guide, data, optimizer, state_dir: Path):
        self.config, self.model, self.guide, self.data = config, model, guide, data
        self.optimizer, self.state_dir = optimizer, state_dir
        self.batches_per_epoch = max(1, len(data) // config.batch_size)
        total = self.batches_per_epoch * config.epochs
        self.total_steps = min(total, config.max_steps) if config.max_steps else total
        self.step = 0
        self.history: list[dict] = []
        self.best: float | None = None
        self.step_seconds: list[float] = []
        self._epoch_order: tuple[int, list[int]] | None = (
            None  # (epoch, its shuffled order), made once per epoch
        )
        if isinstance(data, LabelledSet):  # rows per label and an integer id per example, made once
            names = {label: n for n, label in enumerate(sorted(set(data.labels)))}
            self._label_ids = [names[label] for label in data.labels]
            self._rows_by_label: dict[str, list[int]] = {}
            for index, label in enumerate(data.labels):
                self._rows_by_label.setdefault(label, []).append(index)

    # -- schedule and batches --------------------------------------------------------------------
    def learning_rate(self, step: int) -> float:
        warm = max(1, int(self.config.warmup * self.total_steps))
        if step < warm:
            return self.config.learning_rate * (step + 1) / warm
        remaining = max(1, self.total_steps - warm)
        return self.config.learning_rate * max(0.0, 1 - (step - warm) / remaining)

    def batch_indices(self, step: int) -> list[int]:
        """The examples of global step `step`: a seeded shuffle per epoch, so resuming recomputes it."""
        import torch

        if isinstance(self.data, LabelledSet):
            return _label_batch(
                self._rows_by_label, self.config.batch_size, self.config.seed + step
            )
        epoch, position = divmod(step, self.batches_per_epoch)
        if self._epoch_order is None or self._epoch_order[0] != epoch:
            generator = torch.Generator().manual_seed(self.config.seed + epoch)
            self._epoch_order = (
                epoch,
                torch.randperm(len(self.data), generator=generator).tolist(),
            )
        order = self._epoch_order[1]
        if isinstance(self.data, PairSet):
            return _without_duplicates(order, position, self.config.batch_size, self.data)
        return order[position * self.config.batch_size : (position + 1) * self.config.batch_size]

    # -- one step ------------------------------------------------------------------------------
    def loss_and_backward(self, indices: list[int]) -> float:
        import torch

        from uniembed.train import losses
        from uniembed.train.forward import cached_backward, embed

        config, model = self.config, self.model
        query = lambda texts: embed(model, texts, prompt="query")  # noqa: E731
        document = lambda texts: embed(model, texts, prompt="document")  # noqa: E731
        dims = config.matryoshka

        def wrap(loss, *embeddings, **kwargs):
            if dims:
                return losses.matryoshka(
                    loss, dims, *embeddings, weights=config.matryoshka_weights or None, **kwargs
                )
            return loss(*embeddings, **kwargs)

        if config.starbucks:
            loss = self.starbucks_loss(indices)
            loss.backward()
            return float(loss.detach())
        if isinstance(self.data, PairSet):
            anchors = [self.data.anchors[i] for i in indices]
            positives = [self.data.positives[i] for i in indices]
            negatives = [n for i in indices for n in self.data.negatives[i]]
            k = len(self.data.negatives[indices[0]])

            def pair_loss(a, p, n=None):
                n = None if n is None or not k else n.reshape(len(a), k, -1)
                if config.loss == "gist":
                    guides = self._guide_vectors(anchors, positives, negatives, k)
                    return wrap(losses.gist, a, p, n, temperature=config.temperature, **guides)
                return wrap(losses.mnrl, a, p, n, scale=config.scale, symmetric=config.symmetric)

            if config.loss == "cached-mnrl":
                groups = [(query, anchors), (document, positives)] + (
                    [(document, negatives)] if k else []
                )
                return cached_backward(groups, pair_loss, config.mini_batch)
            loss = pair_loss(
                query(anchors), document(positives), document(negatives) if k else None
            )
        elif isinstance(self.data, LabelledSet):
            texts = [self.data.texts[i] for i in indices]
            label_ids = torch.tensor([self._label_ids[i] for i in indices], device=model.device)
            loss = wrap(
                losses.triplet_semi_hard,
                embed(model, texts),
                labels=label_ids,
                margin=config.margin,
            )
        else:
            first = embed(model, [self.data.first[i] for i in indices])
            second = embed(model, [self.data.second[i] for i in indices])
            scores = torch.tensor([self.data.scores[i] for i in indices], device=model.device)
            loss = wrap(losses.cosent, first, second, scores=scores, scale=config.scale)
        loss.backward()
        return float(loss.detach())

    def starbucks_loss(self, indices: list[int]):
        """Starbucks (2D Matryoshka): the loss of the full model plus, for every (layers, dim) pair,
        the loss of the model cut to that many layers and dims and a KL term pulling its in-batch
        similarity distribution to the full model's; all pairs every step, not sampled."""
        import torch

        from uniembed.train import losses
        from uniembed.train.forward import embed_layers

        config, model = self.config, self.model
        layers = sorted({layer for layer, _ in config.starbucks})
        if isinstance(self.data, PairSet):
            left = embed_layers(
                model, [self.data.anchors[i] for i in indices], prompt="query", layers=layers
            )
            right = embed_layers(
                model, [self.data.positives[i] for i in indices], prompt="document", layers=layers
            )
            loss_of = lambda a, b: losses.mnrl(a, b, scale=config.scale)  # noqa: E731
        else:
            left = embed_layers(model, [self.data.first[i] for i in indices], layers=layers)
            right = embed_layers(model, [self.data.second[i] for i in indices], layers=layers)
            scores = torch.tensor([self.data.scores[i] for i in indices], device=model.device)
            loss_of = lambda a, b: losses.cosent(a, b, scores, scale=config.scale)  # noqa: E731

        def similarities(a, b):
            return (
                config.scale
                * torch.nn.functional.normalize(a, dim=-1)
                @ torch.nn.functional.normalize(b, dim=-1).T
            )

        full = similarities(left[None], right[None])
        total = loss_of(left[None], right[None])
        for layer, dim in config.starbucks:
            a, b = left[layer][:, :dim], right[layer][:, :dim]
            total = (
                total
                + loss_of(a, b)
                + config.kl_weight * losses.kl_to_full(similarities(a, b), full)
            )
        return total

    def _guide_vectors(self, anchors, positives, negatives, k) -> dict:
        import torch

        def vectors(texts, prompt):
            return torch.from_numpy(
                self.guide.encode(texts, prompt=prompt, show_progress=False)
            ).to(self.model.device)

        return {
            "guide_anchors": vectors(anchors, "query"),
            "guide_positives": vectors(positives, "document"),
            "guide_negatives": vectors(negatives, "document").reshape(len(anchors), k, -1)
            if k
            else None,
        }

    # -- the loop --------------------------------------------------------------------------------
    def run(self, show_progress: bool | None) -> None:
        import torch
        from tqdm.auto import tqdm

        config = self.config
        bar = tqdm(
            total=self.total_steps,
            initial=self.step,
            desc="training",
            unit="step",
            disable=not (show_progress if show_progress is not None else True),
        )
        smoothed = None
        self.model.model.train()
        while self.step < self.total_steps:
            started = time.perf_counter()
            indices = self.batch_indices(self.step)
            for group in self.optimizer.param_groups:
                group["lr"] = self.learning_rate(self.step)
            self.optimizer.zero_grad(set_to_none=True)
            try:
                with self.autocast():
                    value = self.loss_and_backward(indices)
            except KeyboardInterrupt:  # Ctrl-C: keep every finished step, then stop
                if self.step:
                    self.save_state()
                raise
            if not math.isfinite(value):
                raise InputError(
                    f"the loss became {value} at step {self.step}: lower the learning rate"
                )
            torch.nn.utils.clip_grad_norm_(self.model.model.parameters(), 1.0)
            self.optimizer.step()
            self.step += 1
            self.step_seconds.append(time.perf_counter() - started)
            smoothed = value if smoothed is None else 0.9 * smoothed + 0.1 * value
            bar.update(1)
            bar.set_postfix(
                loss=f"{smoothed:.4f}", ex_per_s=f"{len(indices) / self.step_seconds[-1]:.1f}"
            )
            end_of_epoch = self.step % self.batches_per_epoch == 0
            if config.eval and (
                (config.eval_every and self.step % config.eval_every == 0)
                or (not config.eval_every and end_of_epoch)
                or self.step == self.total_steps
            ):
                self.evaluate()
            if self.step % config.checkpoint_every == 0 and self.step < self.total_steps:
                self.save_state()
        bar.close()

    def autocast(self):
        """bf16 autocast on CUDA (fp32 master weights and optimizer); plain fp32 on the CPU, where
        bf16 training would be slower on most machines and less exact."""
        import contextlib

        import torch

        if self.model.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def evaluate(self) -> None:
        from uniembed.eval import evaluate

        if any(row["step"] == self.step for row in self.history):
            return
        self.model.model.eval()
        scores = []
        for spec in self.config.eval:
            task, _, path = spec.partition(":")
            score = 100 * evaluate(self.model, task, path, show_progress=False).main_score
            self.history.append({"step": self.step, "task": spec, "score": round(score, 2)})
            scores.append(score)
        self.model.model.train()
        if self.best is None or scores[0] > self.best:
            self.best = scores[0]
            self.save_model()

    def card(self) -> dict:
        config = self.config
        training = {
            "base": config.base,
            "data": f"{self.data.source} ({len(self.data)} examples)",
            "loss": config.loss,
            "epochs": config.epochs,
            "steps": self.step,
            "batch size": config.batch_size,
            "learning rate": config.learning_rate,
            "seed": config.seed,
        }
        if config.matryoshka:
            training["matryoshka dims"] = config.matryoshka
        if config.starbucks:
            training["starbucks (layers, dim) pairs"] = [list(pair) for pair in config.starbucks]
        if config.hard_negatives:
            training["mined hard negatives per anchor"] = config.hard_negatives
        return {
            "name": Path(config.output).name,
            "base": config.base,
            "training": training,
            "evaluation": self.history,
        }

    def save_model(self) -> None:
        from uniembed.train.save import save_model

        save_model(self.model, self.config.output, card=self.card())

    # -- resuming --------------------------------------------------------------------------------
    def save_state(self) -> None:
        """Weights, optimizer moments and RNG as safetensors, the rest as JSON (no pickle)."""
        import torch
        from safetensors.torch import save_file

        from uniembed._atomic import atomic_folder
        from uniembed.train.save import save_model

        with atomic_folder(self.state_dir, replace=True) as staging:
            save_model(self.model, staging / "model")
            tensors, groups = optimizer_tensors(self.optimizer)
            tensors["rng"] = torch.get_rng_state()
            save_file(tensors, str(staging / "optimizer.safetensors"))
            (staging / "state.json").write_text(
                json.dumps(
                    {
                        "config": _identity(self.config),
                        "step": self.step,
                        "history": self.history,
                        "best": self.best,
                        "param_groups": groups,
                        "step_seconds": self.step_seconds,
                    }
                )
            )

    def resume_if_possible(self) -> None:
        import torch
        from safetensors.torch import load_file

        state_file = self.state_dir / "state.json"
        if not state_file.is_file():
            return
        state = json.loads(state_file.read_text())
        if state["config"] != _identity(self.config):
            raise InputError(
                f"{self.state_dir} holds an interrupted run with other settings; delete it to start over"
            )
        from uniembed import load

        saved = load(self.state_dir / "model", device=self.config.device)
        self.model.model.load_state_dict(saved.model.state_dict())
        tensors = load_file(str(self.state_dir / "optimizer.safetensors"))
        torch.set_rng_state(tensors.pop("rng"))
        load_optimizer(self.optimizer, tensors, state["param_groups"])
        self.step, self.history, self.best = state["step"], state["history"], state["best"]
        self.step_seconds = state["step_seconds"]

    def finish(self) -> TrainResult:
        if not self.config.eval or self.best is None:
            self.save_model()
        shutil.rmtree(self.state_dir, ignore_errors=True)
        seconds = sum(self.step_seconds) / max(1, len(self.step_seconds))
        return TrainResult(Path(self.config.output), self.step, seconds, self.history, self.best)


def _identity(config: TrainConfig) -> dict:
    """The settings that make a run what it is (a resumed run must match them)."""
    data = asdict(config)
    for volatile in ("eval_every", "checkpoint_every", "device"):
        data.pop(volatile)
    return json.loads(json.dumps(data))  # as it reads back from state.json (tuples become lists)


def _without_duplicates(order: list[int], position: int, size: int, data: PairSet) -> list[int]:
    """Batch `position` of `order`, skipping examples whose anchor or positive text is already in
    the batch (a duplicate positive would be a false in-batch negative)."""
    start = position * size
    batch, seen = [], set()
    for index in order[start:] + order[:start]:
        key_a, key_p = data.anchors[index], data.positives[index]
        if key_a in seen or key_p in seen:
            continue
        batch.append(index)
        seen.update((key_a, key_p))
        if len(batch) == size:
            break
    return batch


def _label_batch(rows_by_label: dict[str, list[int]], size: int, seed: int) -> list[int]:
    """A batch of labels with at least two texts each (triplets need positives in the batch)."""
    import random

    rng = random.Random(seed)
    shared = [label for label, rows in rows_by_label.items() if len(rows) >= 2]
    rng.shuffle(shared)
    batch: list[int] = []
    for label in shared:
        take = rng.sample(
            rows_by_label[label], min(len(rows_by_label[label]), 4, size - len(batch))
        )
        if len(take) >= 2:
            batch += take
        if len(batch) >= size - 1:
            break
    return batch
