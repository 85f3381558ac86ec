"""Choose the ONNX int8 recipe on dev text, never on test (issue 14), and try what the field uses
to make int8 faster:

    python -m bench.select_int8 --rounds 5     # (also bench/run.py --only select-int8)

Variants, all from the default model:
- uniembed's export (torch.onnx dynamo, the library's fp32 ONNX model), quantised dynamically per
  channel with three exclusions (see uniembed.encoders.onnx_export.int8_excluded_nodes);
- ONNX Runtime's transformer optimizer (onnxruntime.transformers.optimizer, model_type "bert"):
  its attention fusion only recognises the eager attention graph of the legacy TorchScript
  exporter, so this variant exports that way first (fused: Attention, EmbedLayerNormalization,
  SkipLayerNormalization, BiasGelu), in fp32 and quantised the same three ways;
- OpenVINO's CPU runtime on uniembed's export (the `openvino` backend): f32, bf16, and int8 by
  NNCF's static quantisation calibrated on shipped Banking77 *train* texts.

Measured on STSb *dev* sentences: each variant's vectors against the fp32 model's (mean and worst
cosine), STSb dev Spearman, and texts/s in rounds interleaved across variants (one process, a
fresh ONNX Runtime session per variant, the same tokenised batches through uniembed's ONNX
encoder). Rule: the fastest variant with mean cosine >= 0.99 and STSb dev Spearman within 0.5 of
fp32's. Two choices are made by that rule: among the ONNX Runtime int8 variants of uniembed's
export (the onnx backend's int8: its default exclusion must be the one chosen, the table says when
it is not), and among every variant (what the README recommends for int8).
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def legacy_fused_export(target: Path) -> dict:
    """fp32 ONNX via the TorchScript exporter with eager attention, then ORT's BERT fusions."""
    import torch
    from onnxruntime.transformers.optimizer import optimize_model
    from transformers import AutoModel, AutoTokenizer

    from uniembed.encoders import registry

    weights = str(registry.package_dir(registry.CATALOGUE[registry.DEFAULT_MODEL]))
    tokenizer = AutoTokenizer.from_pretrained(weights, local_files_only=True)
    body = AutoModel.from_pretrained(
        weights, local_files_only=True, use_safetensors=True, attn_implementation="eager"
    ).eval()
    names = ["input_ids", "attention_mask", "token_type_ids"]
    sample = tokenizer(
        ["a short one", "a somewhat longer example sentence"], padding=True, return_tensors="pt"
    )

    class Hidden(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.body = body

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.body(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state

    raw = target.with_name("legacy.onnx")
    torch.onnx.export(
        Hidden(),
        tuple(sample[n] for n in names),
        str(raw),
        input_names=names,
        output_names=["hidden"],
        dynamic_axes={n: {0: "batch", 1: "tokens"} for n in names},
        opset_version=17,
        dynamo=False,
    )
    optimized = optimize_model(
        str(raw),
        model_type="bert",
        num_heads=body.config.num_attention_heads,
        hidden_size=body.config.hidden_size,
    )
    optimized.save_model_to_file(str(target))
    return {k: v for k, v in optimized.get_fused_operator_statistics().items() if v}


def build_variants(folder: Path, tmp: Path) -> tuple[dict[str, Path], dict]:
    from uniembed.encoders.onnx_export import INT8_EXCLUSIONS, PRECISION_FILES, quantize_int8

    variants = {"uniembed export, fp32": folder / PRECISION_FILES["fp32"]}
    for exclusion in INT8_EXCLUSIONS:
        target = tmp / f"int8-{exclusion}.onnx"
        quantize_int8(
            folder, exclusion=exclusion, source=folder / PRECISION_FILES["fp32"], target=target
        )
        variants[f"uniembed export, int8, excluded: {exclusion}"] = target
    fused = tmp / "fused.onnx"
    fusions = legacy_fused_export(fused)
    variants["ORT-optimized (fused), fp32"] = fused
    for exclusion in INT8_EXCLUSIONS:
        target = tmp / f"fused-int8-{exclusion}.onnx"
        quantize_int8(
            folder,
            exclusion=exclusion,
            source=fused,
            target=target,
            op_types=("MatMul", "Attention"),
        )
        variants[f"ORT-optimized (fused), int8, excluded: {exclusion}"] = target
    return variants, fusions


def fp32_export_folder() -> Path:
    """The ONNX cache folder of the default model (exported by the uniembed.load above)."""
    from uniembed.encoders import registry
    from uniembed.encoders.onnx import onnx_cache_folder
    from uniembed.encoders.registry import weights_digest

    return onnx_cache_folder(
        weights_digest(registry.package_dir(registry.CATALOGUE[registry.DEFAULT_MODEL]))
    )


class OpenVinoSession:
    """An OpenVINO compiled model behind ONNX Runtime's session.run(None, feeds) call."""

    def __init__(self, source: Path, precision_hint: str | None):
        import openvino as ov

        config = {
            "PERFORMANCE_HINT": "LATENCY",
            **({"INFERENCE_PRECISION_HINT": precision_hint} if precision_hint else {}),
        }
        self.compiled = ov.Core().compile_model(str(source), "CPU", config)

    def run(self, _outputs, feeds):
        request = self.compiled.create_infer_request()
        request.infer(feeds)
        return [request.get_output_tensor(0).data.copy()]


def run(rounds: int = 5) -> dict[str, list[dict]]:
    import onnxruntime as ort

    import uniembed
    from bench import splits
    from uniembed.encoders.onnx_export import DEFAULT_INT8_EXCLUSION
    from uniembed.eval.loaders import load_sts
    from uniembed.eval.metrics import spearman

    texts = splits.stsb_sentences("sts-dev.csv")
    sts = load_sts(DATA / "stsb" / "sts-dev.csv")
    position = {t: i for i, t in enumerate(texts)}
    encoder = uniembed.load(device="cpu", backend="onnx", precision="fp32")
    folder = fp32_export_folder()
    with tempfile.TemporaryDirectory() as tmp:
        variants, fusions = build_variants(folder, Path(tmp))
        sessions = {
            name: ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            for name, path in variants.items()
        }
        from uniembed.encoders.openvino import ensure_int8

        int8_ir = ensure_int8(folder, encoder.windows, encoder.input_names)
        sessions["OpenVINO, f32"] = OpenVinoSession(folder / "model.onnx", "f32")
        sessions["OpenVINO, bf16"] = OpenVinoSession(folder / "model.onnx", "bf16")
        sessions["OpenVINO, int8 (NNCF, calibrated on Banking77 train)"] = OpenVinoSession(
            int8_ir, None
        )
        seconds = {name: [] for name in sessions}
        vectors = {}
        for round_ in range(rounds + 1):  # round 0 warms every session up and keeps the vectors
            for name, session in sessions.items():
                encoder.session = session
                started = time.perf_counter()
                out = encoder.encode(texts, batch_size=32, show_progress=False)
                if round_:
                    seconds[name].append(time.perf_counter() - started)
                else:
                    vectors[name] = out
            print(f"select-int8: round {round_}/{rounds}", file=sys.stderr, flush=True)
    reference = vectors["uniembed export, fp32"]
    base = seconds["uniembed export, fp32"]
    rows = []
    for name, v in vectors.items():
        cosines = (v * reference).sum(1)
        first = v[[position[t] for t in sts.first]]
        second = v[[position[t] for t in sts.second]]
        rows.append(
            {
                "variant": name,
                "x ONNX fp32": statistics.median(b / s for b, s in zip(base, seconds[name])),
                "spread": (
                    min(b / s for b, s in zip(base, seconds[name])),
                    max(b / s for b, s in zip(base, seconds[name])),
                ),
                "mean cos": float(cosines.mean()),
                "worst cos": float(cosines.min()),
                "STSb dev Spearman": 100
                * spearman((first * second).sum(1).tolist(), list(sts.scores)),
            }
        )
    fp32_dev = rows[0]["STSb dev Spearman"]

    def choose(candidates: list[dict]) -> str | None:
        eligible = [
            r
            for r in candidates
            if "int8" in r["variant"]
            and r["mean cos"] >= 0.99
            and r["STSb dev Spearman"] >= fp32_dev - 0.5
        ]
        return max(eligible, key=lambda r: r["x ONNX fp32"])["variant"] if eligible else None

    onnx_choice = choose([r for r in rows if r["variant"].startswith("uniembed export")])
    overall = choose(rows)
    table = [
        {
            "variant": r["variant"],
            "x ONNX fp32": f"{r['x ONNX fp32']:.2f} ({r['spread'][0]:.2f}-{r['spread'][1]:.2f})",
            "mean cos": round(r["mean cos"], 4),
            "worst cos": round(r["worst cos"], 4),
            "STSb dev Spearman": round(r["STSb dev Spearman"], 2),
            "chosen": ", ".join(
                label
                for label, pick in (("onnx backend's int8", onnx_choice), ("overall", overall))
                if r["variant"] == pick
            ),
        }
        for r in rows
    ]
    library = f"uniembed export, int8, excluded: {DEFAULT_INT8_EXCLUSION}"
    table.append(
        {
            "variant": f"(the onnx backend's int8: {library})",
            "x ONNX fp32": "-",
            "mean cos": "-",
            "worst cos": "-",
            "STSb dev Spearman": "-",
            "chosen": "matches"
            if library == onnx_choice
            else f"DIFFERS from the choice: {onnx_choice}",
        }
    )
    return {
        f"ONNX int8 variants on STSb dev sentences ({len(texts)} texts, {rounds} interleaved rounds)": table,
        "ORT transformer optimizer: fused operators": [
            {"operator": k, "count": v} for k, v in fusions.items()
        ],
    }


def main() -> int:
    import argparse

    from bench.run import (
        print_tables,
    )

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    print_tables(run(parser.parse_args().rounds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
