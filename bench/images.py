"""Image encoding speed and memory: uniembed's `encode_images` against transformers' own pipeline.

Model: a CLIP whose vision tower has ViT-B/32's shape (224 px, 32 px patches, 12 layers, 768
wide; random weights: the compute is the same as the real one's), text tower tiny (unused here).
Images: Open Clip Art's test PNGs (96 x 96, decoded from bytes by every contender). Rounds
interleaved, the order rotating each round (so no contender always follows the slow one), same
images, same vectors (checked; the bf16 row reports its cosine to fp32 instead). Per-stage time of
uniembed's path (decode, preprocess, forward) on the
same images. Memory: peak RSS of encode_images over 1,000 and over 10,000 Fashion-MNIST images in
fresh processes, on a narrow ViT of the same input size (what memory could grow with is the
decoded and preprocessed pixels, not the model).

    python -m bench.images             # ~6 minutes on 2 cores; bench/run.py --only images
"""

from __future__ import annotations

import io
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
N_IMAGES = 256
ROUNDS = 3
BATCH = 32
VIT_B32 = dict(
    image_size=224,
    patch_size=32,
    hidden_size=768,
    intermediate_size=3072,
    num_hidden_layers=12,
    num_attention_heads=12,
)
NARROW_VIT = dict(
    image_size=224,
    patch_size=32,
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
)


def clip_dir(folder: Path, vision: dict) -> Path:
    """A CLIP directory: the given vision tower, a tiny text tower, the default model's tokenizer,
    OpenAI CLIP's preprocessing (shortest edge 224, centre crop 224, bicubic)."""
    import shutil

    import torch
    from transformers import CLIPConfig, CLIPModel

    from uniembed.encoders.registry import resolve
    from uniembed.images.preprocess import ImagePreprocessing

    folder.mkdir(parents=True, exist_ok=True)
    tokenizer_dir = resolve(None)[1]
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        if (tokenizer_dir / name).is_file():
            shutil.copy(tokenizer_dir / name, folder / name)
    text = dict(
        vocab_size=30522,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=77,
        pad_token_id=0,
        bos_token_id=101,
        eos_token_id=102,
    )
    torch.manual_seed(0)
    CLIPModel(
        CLIPConfig(text_config=text, vision_config=vision, projection_dim=512)
    ).save_pretrained(folder)
    config = {**ImagePreprocessing().to_config(), "image_processor_type": "CLIPImageProcessor"}
    (folder / "preprocessor_config.json").write_text(json.dumps(config))
    return folder


def clipart_pngs(n: int) -> list[bytes]:
    import pyarrow.parquet as pq

    table = pq.read_table(DATA / "openclipart" / "clipart.parquet", columns=["png", "split"])
    rows = [
        png
        for png, split in zip(table.column("png").to_pylist(), table.column("split").to_pylist())
        if split == "test"
    ]
    return rows[:n]


def transformers_pipeline(folder: Path):
    """What a transformers user writes: the model's own processor and get_image_features."""
    from transformers import AutoModel, CLIPImageProcessor

    try:
        processor = CLIPImageProcessor.from_pretrained(folder)
    except Exception:  # transformers 5 without torchvision: the PIL backend is the one that runs
        from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

        processor = CLIPImageProcessorPil.from_pretrained(folder)
    return AutoModel.from_pretrained(folder).eval(), processor


def run_transformers(model, processor, pngs: list[bytes], batch: int) -> np.ndarray:
    import torch
    from PIL import Image

    out = []
    for start in range(0, len(pngs), batch):
        images = [
            Image.open(io.BytesIO(data)).convert("RGB") for data in pngs[start : start + batch]
        ]
        pixels = processor(images=images, return_tensors="pt")["pixel_values"]
        with torch.no_grad():
            features = model.get_image_features(pixel_values=pixels)
        features = features if isinstance(features, torch.Tensor) else features.pooler_output
        out.append(torch.nn.functional.normalize(features, dim=-1).numpy())
    return np.concatenate(out)


def stages(model, pngs: list[bytes]) -> dict[str, float]:
    """Seconds per image of each stage of encode_images, on the same images."""
    from uniembed.images.decode import to_rgb

    spent = {"decode": 0.0, "preprocess": 0.0, "forward": 0.0}
    for start in range(0, len(pngs), BATCH):
        t0 = time.perf_counter()
        images = [to_rgb(data, "x") for data in pngs[start : start + BATCH]]
        t1 = time.perf_counter()
        pixels = model.preprocessing.batch(images)
        t2 = time.perf_counter()
        model.encode_image_batch(pixels)
        t3 = time.perf_counter()
        spent["decode"] += t1 - t0
        spent["preprocess"] += t2 - t1
        spent["forward"] += t3 - t2
    return {stage: seconds / len(pngs) for stage, seconds in spent.items()}


def speed_rows(folder: Path) -> tuple[list[dict], list[dict]]:
    import uniembed

    pngs = clipart_pngs(N_IMAGES)
    ours = uniembed.load(folder, device="cpu")
    ours_bf16 = uniembed.load(folder, device="cpu", precision="bf16")
    model, processor = transformers_pipeline(folder)
    contenders = {
        "uniembed encode_images (batch 32)": lambda: ours.encode_images(
            pngs, batch_size=BATCH, show_progress=False
        ),
        "uniembed encode_images, precision bf16": lambda: ours_bf16.encode_images(
            pngs, batch_size=BATCH, show_progress=False
        ),
        "transformers processor + get_image_features, batches of 32": lambda: run_transformers(
            model, processor, pngs, BATCH
        ),
        "transformers, one image per call": lambda: run_transformers(model, processor, pngs, 1),
    }
    reference, cosine = None, {}
    for (
        name,
        call,
    ) in contenders.items():  # warm-up, and the same-vectors check (bf16: its cosine is reported)
        vectors = call()
        reference = vectors if reference is None else reference
        cosine[name] = float((vectors * reference).sum(1).mean())
        gap = float(np.abs(vectors - reference).max())
        if gap > 1e-4 and "bf16" not in name:
            raise AssertionError(f"{name} gives other vectors than uniembed (max gap {gap:.2e})")
    names = list(contenders)
    seconds = {name: [] for name in contenders}
    for round_ in range(ROUNDS):
        for name in (
            names[round_ % len(names) :] + names[: round_ % len(names)]
        ):  # interleaved, the order rotating
            started = time.perf_counter()
            contenders[name]()
            seconds[name].append(time.perf_counter() - started)
    rows = []
    baselines = {
        "x transformers batched": "transformers processor + get_image_features, batches of 32",
        "x transformers one per call": "transformers, one image per call",
    }
    for name, times in seconds.items():
        row = {
            "pipeline": name,
            "images/s (median)": round(N_IMAGES / statistics.median(times), 1),
            "spread (min-max images/s)": f"{N_IMAGES / max(times):.1f}-{N_IMAGES / min(times):.1f}",
        }
        for column, baseline in baselines.items():  # per round, median (min-max)
            speedups = [other / mine for other, mine in zip(seconds[baseline], times)]
            row[column] = (
                "-"
                if name == baseline
                else f"{statistics.median(speedups):.2f} ({min(speedups):.2f}-{max(speedups):.2f})"
            )
        rows.append({**row, "mean cos to fp32": round(cosine[name], 5)})
    per_image = stages(ours, pngs)
    total = sum(per_image.values())
    stage_rows = [
        {
            "stage": stage,
            "ms per image": round(1000 * value, 2),
            "share": f"{100 * value / total:.0f}%",
        }
        for stage, value in per_image.items()
    ]
    return rows, stage_rows


def memory_worker(folder: str, n: int) -> None:
    import uniembed
    from uniembed.eval.image_data import load_labelled_images

    images = load_labelled_images(DATA / "fashion-mnist", "test").images[:n]
    model = uniembed.load(folder, device="cpu")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    model.encode_images(images, batch_size=BATCH, show_progress=False)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"before": before, "after": after}))


def memory_rows(folder: Path) -> list[dict]:
    rows = []
    for n in (1_000, 10_000):
        proc = subprocess.run(
            [sys.executable, "-m", __spec__.name, "--memory-worker", str(folder), str(n)],
            capture_output=True,
            text=True,
            check=True,
        )
        peak = json.loads(proc.stdout.strip().splitlines()[-1])
        rows.append(
            {
                "images": n,
                "peak RSS before encoding (MB)": round(peak["before"]),
                "peak RSS after (MB)": round(peak["after"]),
                "growth (MB)": round(peak["after"] - peak["before"]),
            }
        )
    all_at_once = 10_000 * 3 * 224 * 224 * 4 / 1e6
    rows.append(
        {
            "images": "(10,000 preprocessed at once would hold)",
            "peak RSS before encoding (MB)": "-",
            "peak RSS after (MB)": "-",
            "growth (MB)": round(all_at_once),
        }
    )
    return rows


def run() -> dict[str, list[dict]]:
    with tempfile.TemporaryDirectory() as tmp:
        speed, stage_rows = speed_rows(clip_dir(Path(tmp) / "vit-b32", VIT_B32))
        memory = memory_rows(clip_dir(Path(tmp) / "narrow", NARROW_VIT))
    return {
        f"Image encoding, CLIP ViT-B/32 shape, {N_IMAGES} Open Clip Art PNGs ({ROUNDS} interleaved rounds)": speed,
        "Where uniembed's time goes (per image)": stage_rows,
        "Peak memory of encode_images over many images (Fashion-MNIST, batch 32)": memory,
    }


def main() -> int:
    if len(sys.argv) == 4 and sys.argv[1] == "--memory-worker":
        memory_worker(sys.argv[2], int(sys.argv[3]))
        return 0
    from bench.run import print_tables

    print_tables(run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
