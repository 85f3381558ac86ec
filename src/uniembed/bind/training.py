"""Binding: train a small image encoder (or a projector over another encoder's vectors) into a
frozen anchor's text space (LiT / OneEncoder style: the anchor never changes, so everything it
already embedded stays valid and becomes searchable by the new modality).

    from uniembed.bind import BindConfig, bind
    bind(BindConfig(output="fashion-bind", images=["../shared/data/fashion-mnist"],
                    captions=["a photo of a {label}"], epochs=10))

Steps: the anchor embeds every distinct caption once (cached on disk beside the output, keyed by
the anchor's fingerprint, so a rerun or a resumed run does not embed again); a validation part is
carved from the training pairs (seeded); the tower trains with AdamW and a cosine schedule on a
symmetric InfoNCE loss with a learnable temperature (CLIP's), where pairs of the same positive
group (uniembed.bind.pairs) are positives for each other: each row's target is spread evenly over
its group's members in the batch (and over any other example that drew the very same caption
text), instead of a single diagonal entry. Every `eval_every` steps
(and at the end), validation accuracy is measured (each validation input against every
validation group's mean caption vector, top-1): the best tower is kept.

Resuming: the state (tower, optimizer, temperature, RNG, position) goes to `<output>.bind-state/`
every `checkpoint_every` steps and on Ctrl-C, as safetensors + JSON; the same command continues
from there and ends at the same weights as an uninterrupted run.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from uniembed.bind.batches import positive_mask, random_shift
from uniembed.bind.config import BindConfig, BindResult
from uniembed.errors import InputError


def bind(config: BindConfig, *, show_progress: bool | None = None) -> BindResult:
    """Train the tower; the best one (by validation accuracy) is saved at `config.output` as a
    model directory that `uniembed.load` opens as an encoder in the anchor's space."""
    from uniembed._extras import require

    require("torch")
    config.check()
    output = Path(config.output)
    if output.exists():
        raise InputError(
            f"{output} already exists: choose a new output folder (nothing was written)"
        )
    anchor = _load_anchor(config)
    pairs = _load_pairs(config)
    from uniembed.encoders.towers import check_tower_config

    tower_config = check_tower_config(_tower_spec(config, anchor.dim, pairs))
    texts = _caption_vectors(anchor, pairs.texts, output, show_progress)
    train_rows, validation_rows = _split(len(pairs), config.validation, config.seed)
    loop = _Loop(config, tower_config, pairs, texts, train_rows, validation_rows, show_progress)
    loop.resume_if_possible()
    loop.run(show_progress)
    return loop.finish(anchor)


def _load_anchor(config: BindConfig):
    from uniembed import load

    anchor = load(None if config.anchor == "default" else config.anchor, device="cpu")
    kind = (
        "an image model"
        if "image" in anchor.modalities
        else "a bound model"
        if getattr(anchor, "bound", False)
        else "a late-interaction (token vector) model"
        if anchor.token_head is not None
        else None
    )
    if kind is not None:
        raise InputError(
            f"the anchor must be a text model (one vector per text); {config.anchor} is {kind}"
        )
    return anchor


def _load_pairs(config: BindConfig):
    from uniembed.bind.pairs import image_pairs, vector_pairs

    if config.images:
        return image_pairs(config.images, config.captions, config.split)
    return vector_pairs(config.vectors, config.texts, text_column=config.text_column)


def _tower_spec(config: BindConfig, dim: int, pairs) -> dict:
    if config.encoder == "cnn":
        return {
            "kind": "cnn",
            "channels": list(config.channels),
            "image_size": config.image_size,
            "dim": dim,
        }
    in_dim = int(pairs.inputs.shape[1])
    if config.encoder == "linear":
        return {"kind": "linear", "in_dim": in_dim, "dim": dim}
    return {
        "kind": "mlp",
        "in_dim": in_dim,
        "hidden": config.hidden or 4 * dim,
        "layers": 2,
        "dim": dim,
    }


def _caption_vectors(anchor, texts: list[str], output: Path, show_progress) -> np.ndarray:
    """The anchor's unit vectors of every caption, computed once: cached in `<output>.bind-cache/`
    under a key of the anchor's fingerprint and the caption list."""
    import hashlib

    from uniembed._atomic import replace_file

    key = hashlib.sha256(json.dumps([anchor.fingerprint, texts]).encode()).hexdigest()[:24]
    cached = Path(f"{output}.bind-cache") / f"captions-{key}.npy"
    if cached.is_file():
        vectors = np.load(cached, allow_pickle=False)
        if vectors.shape == (len(texts), anchor.dim):
            return vectors
    vectors = anchor.encode(
        texts, show_progress=show_progress if show_progress is not None else len(texts) > 1000
    )
    cached.parent.mkdir(parents=True, exist_ok=True)
    partial = cached.with_suffix(".partial.npy")
    np.save(partial, vectors, allow_pickle=False)
    replace_file(partial, cached)  # a killed run leaves no half-written cache
    return vectors


def _split(n: int, share: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train rows, validation rows): a seeded random `share` held out (none when share is 0)."""
    order = np.random.default_rng(seed).permutation(n)
    held = max(1, int(round(share * n))) if share > 0 and n >= 4 else 0
    if n - held < 2:
        raise InputError(
            f"{n} pairs are too few to train on (at least 2 after holding out a validation part)"
        )
    return np.sort(order[held:]), np.sort(order[:held])


class _Loop:
    def __init__(
        self,
        config: BindConfig,
        tower_config: dict,
        pairs,
        texts: np.ndarray,
        train_rows,
        validation_rows,
        show_progress: bool | None = None,
    ):
        import torch

        from uniembed.encoders.towers import build_tower

        self.config, self.tower_config, self.pairs, self.texts = config, tower_config, pairs, texts
        self.train_rows, self.validation_rows = train_rows, validation_rows
        self.images = tower_config["kind"] == "cnn"
        self.device = torch.device(
            config.device or ("cuda" if torch.cuda.is_available() else "cpu")
        )
        torch.manual_seed(config.seed)
        self.tower = build_tower(tower_config).to(self.device)
        # channels-last convolutions: 1.5-3x faster on this 2-core CPU (oneDNN; a one-off timing,
        # not a bench)
        if self.images:
            self.tower = self.tower.to(memory_format=torch.channels_last)
        # CLIP's learnable temperature, as a log scale, clamped at 100 (temperature 0.01)
        self.log_scale = torch.nn.Parameter(
            torch.tensor(math.log(1 / config.temperature), device=self.device)
        )
        decay = [p for p in self.tower.parameters() if p.ndim > 1]
        no_decay = [p for p in self.tower.parameters() if p.ndim <= 1] + [self.log_scale]
        self.optimizer = torch.optim.AdamW(
            [
                {"params": decay, "weight_decay": config.weight_decay},
                {"params": no_decay, "weight_decay": 0.0},
            ],
            lr=config.learning_rate,
        )
        self.inputs = self._prepared_inputs(show_progress)
        self.text_tensor = torch.from_numpy(texts).to(self.device)
        self.batches_per_epoch = max(1, len(train_rows) // config.batch_size)
        total = self.batches_per_epoch * config.epochs
        self.total_steps = min(total, config.max_steps) if config.max_steps else total
        self.step, self.history, self.best, self.best_state, self.seconds = 0, [], None, None, 0.0
        self.smoothed: float | None = (
            None  # the loss, smoothed over steps (shown, and recorded at each validation)
        )
        self.state_dir = Path(f"{config.output}.bind-state")

    # -- data ------------------------------------------------------------------------------------
    def _prepared_inputs(self, show_progress: bool | None):
        """Images: every one decoded and preprocessed once, kept as uint8 (n, 3, S, S) (4x less
        memory than float); vectors: the float array."""
        import torch

        if not self.images:
            return torch.from_numpy(np.asarray(self.pairs.inputs, dtype=np.float32))
        from tqdm.auto import tqdm

        from uniembed.encoders.towers import tower_preprocessing
        from uniembed.images.decode import to_rgb

        preprocessing = tower_preprocessing(self.tower_config)
        size = self.tower_config["image_size"]
        out = np.empty((len(self.pairs), 3, size, size), dtype=np.uint8)
        for index in tqdm(
            range(len(self.pairs)),
            desc="preparing images",
            unit="img",
            disable=not (show_progress if show_progress is not None else len(self.pairs) >= 5000),
            mininterval=1.0,
        ):
            pixels = preprocessing.pixels(
                to_rgb(self.pairs.inputs[index], f"image {index}"), f"image {index}"
            )
            out[index] = pixels.transpose(2, 0, 1)
        return torch.from_numpy(out)

    def batch(self, rows: np.ndarray, step: int | None = None):
        """The model's input for `rows`: pixels in [-1, 1] (the tower's preprocessing) or vectors;
        training batches (a `step`) of images are shifted at random, seeded by the step (so a
        resumed run draws the same shifts)."""
        import torch

        selected = self.inputs[torch.from_numpy(rows)]
        if not self.images:
            return selected.to(self.device)
        pixels = selected.to(self.device, torch.float32) / 127.5 - 1.0
        if step is not None and self.config.augment:
            generator = torch.Generator(device=self.device).manual_seed(
                self.config.seed + 3000 + step
            )
            pixels = random_shift(pixels, generator)
        return pixels.contiguous(memory_format=torch.channels_last)

    def batch_rows(self, step: int) -> np.ndarray:
        epoch, position = divmod(step, self.batches_per_epoch)
        order = np.random.default_rng(self.config.seed + 1000 + epoch).permutation(self.train_rows)
        return order[position * self.config.batch_size : (position + 1) * self.config.batch_size]

    def caption_choice(self, rows: np.ndarray, step: int) -> np.ndarray:
        """One caption per example, drawn among its captions (seeded by step)."""
        rng = np.random.default_rng(self.config.seed + 2000 + step)
        return np.asarray(
            [self.pairs.captions[r][rng.integers(len(self.pairs.captions[r]))] for r in rows]
        )

    # -- training --------------------------------------------------------------------------------
    def learning_rate(self, step: int) -> float:
        warm = max(1, int(self.config.warmup * self.total_steps))
        if step < warm:
            return self.config.learning_rate * (step + 1) / warm
        progress = (step - warm) / max(1, self.total_steps - warm)
        return self.config.learning_rate * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    def loss(self, rows: np.ndarray, step: int):
        import torch
        import torch.nn.functional as F

        captions = self.caption_choice(rows, step)
        outputs = F.normalize(self.tower(self.batch(rows, step)), dim=-1)
        targets = self.text_tensor[torch.from_numpy(captions).to(self.device)]
        scale = self.log_scale.clamp(max=math.log(100.0)).exp()
        logits = scale * outputs @ targets.T
        positives = positive_mask(
            torch.from_numpy(self.pairs.groups[rows]), torch.from_numpy(captions)
        ).to(self.device)
        target = positives / positives.sum(1, keepdim=True)
        return 0.5 * (
            torch.sum(-target * F.log_softmax(logits, 1), 1).mean()
            + torch.sum(-target * F.log_softmax(logits.T, 1), 1).mean()
        )

    def run(self, show_progress: bool | None) -> None:
        import torch
        from tqdm.auto import tqdm

        config = self.config
        bar = tqdm(
            total=self.total_steps,
            initial=self.step,
            desc="binding",
            unit="step",
            disable=not (show_progress if show_progress is not None else True),
        )
        while self.step < self.total_steps:
            started = time.perf_counter()
            self.tower.train()
            for group in self.optimizer.param_groups:
                group["lr"] = self.learning_rate(self.step)
            self.optimizer.zero_grad(set_to_none=True)
            try:
                loss = self.loss(self.batch_rows(self.step), self.step)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(
                    list(self.tower.parameters()) + [self.log_scale], 1.0
                )
                self.optimizer.step()
            except KeyboardInterrupt:
                if self.step:
                    self.save_state()
                raise
            value = float(loss.detach())
            if not math.isfinite(value):
                raise InputError(
                    f"the loss became {value} at step {self.step}: lower the learning rate"
                )
            self.step += 1
            self.seconds += time.perf_counter() - started
            self.smoothed = value if self.smoothed is None else 0.95 * self.smoothed + 0.05 * value
            bar.update(1)
            bar.set_postfix(
                loss=f"{self.smoothed:.3f}", temp=f"{1 / float(self.log_scale.detach().exp()):.3f}"
            )
            every = config.eval_every or self.batches_per_epoch
            if self.step % every == 0 or self.step == self.total_steps:
                self.evaluate(self.smoothed)
            if self.step % config.checkpoint_every == 0 and self.step < self.total_steps:
                self.save_state()
        bar.close()

    # -- validation ------------------------------------------------------------------------------
    def embed(self, rows: np.ndarray) -> np.ndarray:
        import torch

        self.tower.eval()
        out = []
        with torch.inference_mode():
            for start in range(0, len(rows), 1024):
                chunk = rows[start : start + 1024]
                out.append(
                    torch.nn.functional.normalize(self.tower(self.batch(chunk)), dim=-1)
                    .cpu()
                    .numpy()
                )
        return np.concatenate(out) if out else np.zeros((0, self.texts.shape[1]), np.float32)

    def validation_accuracy(self) -> float | None:
        """Top-1 of each validation input against the mean caption vector of every group in the
        validation part (x100); None without a validation part."""
        rows = self.validation_rows
        if not len(rows):
            return None
        groups = self.pairs.groups[rows]
        names, inverse = np.unique(groups, return_inverse=True)
        prototypes = np.zeros((len(names), self.texts.shape[1]), np.float32)
        for index, row in enumerate(rows):
            prototypes[inverse[index]] += self.texts[self.pairs.captions[row]].mean(0)
        prototypes /= np.maximum(np.linalg.norm(prototypes, axis=1, keepdims=True), 1e-12)
        scores = self.embed(rows) @ prototypes.T
        return round(100 * float(np.mean(scores.argmax(1) == inverse)), 2)

    def evaluate(self, loss: float | None) -> None:
        score = self.validation_accuracy()
        self.history.append(
            {
                "step": self.step,
                "validation top-1": score,
                "loss": round(loss, 4) if loss is not None else None,
            }
        )
        if score is None or self.best is None or score > self.best:
            self.best = score
            self.best_state = {k: v.detach().clone() for k, v in self.tower.state_dict().items()}
            self.best_state["logit_scale"] = self.log_scale.detach().clone().reshape(1)

    # -- saving and resuming ---------------------------------------------------------------------
    def _identity(self) -> dict:
        data = asdict(self.config)
        for volatile in ("eval_every", "checkpoint_every", "device"):
            data.pop(volatile)
        return json.loads(json.dumps(data))

    def save_state(self) -> None:
        import torch
        from safetensors.torch import save_file

        from uniembed._atomic import atomic_folder
        from uniembed.train.checkpoint import optimizer_tensors

        tensors = {
            f"tower.{k}": v.detach().cpu().contiguous() for k, v in self.tower.state_dict().items()
        }
        tensors["log_scale"] = self.log_scale.detach().cpu().reshape(1)
        if self.best_state is not None:
            tensors.update(
                {f"best.{k}": v.detach().cpu().contiguous() for k, v in self.best_state.items()}
            )
        moments, groups = optimizer_tensors(self.optimizer)
        tensors.update({f"optimizer.{key}": value.detach().cpu() for key, value in moments.items()})
        tensors["rng"] = torch.get_rng_state()
        with atomic_folder(self.state_dir, replace=True) as staging:
            save_file(tensors, str(staging / "state.safetensors"))
            (staging / "state.json").write_text(
                json.dumps(
                    {
                        "config": self._identity(),
                        "step": self.step,
                        "history": self.history,
                        "best": self.best,
                        "seconds": self.seconds,
                        "smoothed": self.smoothed,
                        "param_groups": groups,
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
        if state["config"] != self._identity():
            raise InputError(
                f"{self.state_dir} holds an interrupted run with other settings; delete it to start over"
            )
        tensors = load_file(str(self.state_dir / "state.safetensors"))
        self.tower.load_state_dict(
            {k[len("tower.") :]: v for k, v in tensors.items() if k.startswith("tower.")}
        )
        with torch.no_grad():
            self.log_scale.copy_(tensors["log_scale"].reshape(()))
        best = {k[len("best.") :]: v for k, v in tensors.items() if k.startswith("best.")}
        self.best_state = best or None
        from uniembed.train.checkpoint import load_optimizer

        moments = {
            k[len("optimizer.") :]: v for k, v in tensors.items() if k.startswith("optimizer.")
        }
        load_optimizer(self.optimizer, moments, state["param_groups"])
        torch.set_rng_state(tensors["rng"])
        self.step, self.history, self.best, self.seconds = (
            state["step"],
            state["history"],
            state["best"],
            state["seconds"],
        )
        self.smoothed = state["smoothed"]

    def finish(self, anchor) -> BindResult:
        from uniembed.encoders.bound import save_bound

        weights = self.best_state or {
            **self.tower.state_dict(),
            "logit_scale": self.log_scale.detach().reshape(1),
        }
        card = {
            "data": self.pairs.sources,
            "pairs": len(self.pairs),
            "validation pairs": int(len(self.validation_rows)),
            "captions": self.config.captions or None,
            "epochs": self.config.epochs,
            "steps": self.step,
            "batch size": self.config.batch_size,
            "learning rate": self.config.learning_rate,
            "seed": self.config.seed,
            "training seconds": round(self.seconds, 1),
            "history": self.history,
            "best validation top-1": self.best,
        }
        save_bound(
            Path(self.config.output), anchor, self.config.anchor, self.tower_config, weights, card
        )
        shutil.rmtree(self.state_dir, ignore_errors=True)
        shutil.rmtree(f"{self.config.output}.bind-cache", ignore_errors=True)
        return BindResult(
            Path(self.config.output), self.step, self.seconds, self.history, self.best
        )
