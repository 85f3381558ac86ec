"""Saving a trained model as a sentence-transformers directory that uniembed and
sentence-transformers both load: safetensors weights, configs, tokenizer, pooling, a model card."""

from __future__ import annotations

import json
from pathlib import Path

from uniembed._atomic import atomic_folder

POOLING_FLAGS = {
    "mean": "pooling_mode_mean_tokens",
    "cls": "pooling_mode_cls_token",
    "lasttoken": "pooling_mode_lasttoken",
    "max": "pooling_mode_max_tokens",
}


def save_model(encoder, output: str | Path, *, card: dict | None = None) -> Path:
    """Write `encoder` (a TransformerEncoder) to `output` atomically (replacing an older save)."""
    from transformers.utils import logging as hf_logging

    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    with atomic_folder(output, replace=True) as staging:
        hf_logging.disable_progress_bar()  # "Writing model shards" on every checkpoint is noise
        try:
            encoder.model.save_pretrained(str(staging), safe_serialization=True)
        finally:
            hf_logging.enable_progress_bar()
        encoder.tokenizer.save_pretrained(str(staging))
        modules = [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {
                "idx": 1,
                "name": "1",
                "path": "1_Pooling",
                "type": "sentence_transformers.models.Pooling",
            },
            {
                "idx": 2,
                "name": "2",
                "path": "2_Normalize",
                "type": "sentence_transformers.models.Normalize",
            },
        ]
        _write_json(staging / "modules.json", modules)
        (staging / "1_Pooling").mkdir()
        pooling = {
            "word_embedding_dimension": encoder.dim,
            **{flag: mode == encoder.pooling for mode, flag in POOLING_FLAGS.items()},
        }
        _write_json(staging / "1_Pooling" / "config.json", pooling)
        (staging / "2_Normalize").mkdir()
        _write_json(
            staging / "sentence_bert_config.json",
            {"max_seq_length": encoder.max_tokens, "do_lower_case": encoder.windows.lowercase},
        )
        _write_json(
            staging / "config_sentence_transformers.json",
            {
                "prompts": encoder.prompts,
                "default_prompt_name": encoder.default_prompt,
                "similarity_fn_name": "cosine",
            },
        )
        (staging / "README.md").write_text(model_card(encoder, card or {}), encoding="utf-8")
    return output


def _write_json(path: Path, data) -> None:
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")


def model_card(encoder, card: dict) -> str:
    lines = [
        "---",
        "library_name: sentence-transformers",
        "tags: [sentence-transformers, uniembed, feature-extraction]",
        "---",
        "",
        f"# {card.get('name', encoder.name)}",
        "",
        f"Fine-tuned from `{card.get('base', encoder.name)}` with uniembed "
        f"({encoder.dim} dimensions, {encoder.pooling} pooling, "
        f"max {encoder.max_tokens} tokens).",
        "",
        "```python",
        "import uniembed",
        f"model = uniembed.load({card.get('name', 'this-folder')!r})",
        'vectors = model.encode(["a sentence"])',
        "```",
        "",
    ]
    if card.get("training"):
        lines += (
            ["## Training", ""]
            + [f"- {key}: {value}" for key, value in card["training"].items()]
            + [""]
        )
    if card.get("evaluation"):
        lines += ["## Evaluation", "", "| step | task | score |", "|---|---|---|"]
        lines += [
            f"| {row['step']} | {row['task']} | {row['score']:.2f} |" for row in card["evaluation"]
        ] + [""]
    return "\n".join(lines)
