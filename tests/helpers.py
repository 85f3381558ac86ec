"""Test doubles: a deterministic fake encoder and a tiny BERT model directory built in-process."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from uniembed.encoders.base import Encoder

WORDS = (
    "a an the is are was of to in on and or not card cards lost money send bank charged twice "
    "query passage document hello world cat dog sat mat sun rain blue red"
).split()


class FakeEncoder(Encoder):
    """Deterministic: each text maps to a fixed pseudo-random vector seeded by its SHA-256.

    Equal texts give equal vectors; `calls` records every batch, to check batching and order.
    """

    def __init__(self, dim: int = 8, prompts: dict[str, str] | None = None):
        super().__init__("fake", dim, prompts=prompts)
        self.calls: list[list[str]] = []

    def encode_batch(self, texts, *, long="truncate"):
        self.calls.append(list(texts))
        return np.stack([self.vector(t) for t in texts]).astype(np.float32)

    def vector(self, text: str) -> np.ndarray:
        seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
        return np.random.default_rng(seed).normal(size=self.dim).astype(np.float32)


class KeywordEncoder(Encoder):
    """One dimension per keyword: texts sharing keywords are similar. For eval tests whose right
    answers are known by construction."""

    def __init__(self, keywords: list[str]):
        super().__init__("keywords", len(keywords) + 1)
        self.keywords = keywords

    def encode_batch(self, texts, *, long="truncate"):
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            words = text.lower().split()
            for col, keyword in enumerate(self.keywords):
                out[row, col] = words.count(keyword)
            out[row, -1] = 0.01  # keeps every vector non-zero
        return out


def write_tiny_bert(
    directory: Path,
    *,
    sentence_transformers: bool = True,
    pooling: str = "mean",
    max_seq_length: int = 16,
    prompts: dict | None = None,
    seed: int = 0,
) -> Path:
    """A 2-layer, 32-dim BERT with random weights, saved as safetensors with a WordPiece tokenizer."""
    import torch
    from transformers import BertConfig, BertModel

    directory.mkdir(parents=True, exist_ok=True)
    letters = list("abcdefghijklmnopqrstuvwxyz0123456789.,!?:'")
    vocab = [
        "[PAD]",
        "[UNK]",
        "[CLS]",
        "[SEP]",
        "[MASK]",
        *WORDS,
        *letters,
        *("##" + c for c in letters),
    ]
    tokenizer = _wordpiece_tokenizer(vocab)
    tokenizer.save_pretrained(directory)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    torch.manual_seed(seed)
    BertModel(config).save_pretrained(directory, safe_serialization=True)
    if sentence_transformers:
        _write_st_files(directory, pooling, max_seq_length, prompts or {})
    return directory


def _wordpiece_tokenizer(vocab: list[str]):
    """A BERT-style fast tokenizer over `vocab`, built with the tokenizers library (offline)."""
    from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordPiece
    from transformers import PreTrainedTokenizerFast

    ids = {token: i for i, token in enumerate(vocab)}
    backend = Tokenizer(WordPiece(ids, unk_token="[UNK]"))
    backend.normalizer = normalizers.BertNormalizer(lowercase=True)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", ids["[CLS]"]), ("[SEP]", ids["[SEP]"])],
    )
    backend.decoder = decoders.WordPiece()
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_input_names=["input_ids", "token_type_ids", "attention_mask"],
    )


def _write_st_files(directory: Path, pooling: str, max_seq_length: int, prompts: dict) -> None:
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
    (directory / "modules.json").write_text(json.dumps(modules))
    flags = {
        "mean": "pooling_mode_mean_tokens",
        "cls": "pooling_mode_cls_token",
        "lasttoken": "pooling_mode_lasttoken",
        "max": "pooling_mode_max_tokens",
    }
    (directory / "1_Pooling").mkdir(exist_ok=True)
    pooling_config = {
        "word_embedding_dimension": 32,
        **{flag: name == pooling for name, flag in flags.items()},
    }
    (directory / "1_Pooling" / "config.json").write_text(json.dumps(pooling_config))
    (directory / "sentence_bert_config.json").write_text(
        json.dumps({"max_seq_length": max_seq_length, "do_lower_case": False})
    )
    (directory / "config_sentence_transformers.json").write_text(
        json.dumps({"prompts": prompts, "default_prompt_name": None})
    )


def write_tiny_pylate(
    directory: Path,
    *,
    query_length: int = 8,
    document_length: int = 12,
    expansion: bool = True,
    attend_to_expansion: bool = False,
    out_features: int = 6,
    seed: int = 0,
) -> Path:
    """A tiny ColBERT in PyLate's layout: [Transformer, pylate Dense], "[Q] " / "[D] " prefix tokens
    added to the tokenizer, query and document lengths in config_sentence_transformers.json."""
    import torch
    from safetensors.torch import save_file
    from transformers import AutoTokenizer, BertModel

    write_tiny_bert(directory, sentence_transformers=False, seed=seed)
    tokenizer = AutoTokenizer.from_pretrained(directory)
    tokenizer.add_tokens(["[Q] ", "[D] "])
    tokenizer.save_pretrained(directory)
    model = BertModel.from_pretrained(directory)
    model.resize_token_embeddings(len(tokenizer))
    model.save_pretrained(directory, safe_serialization=True)
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Dense", "type": "pylate.models.Dense.Dense"},
    ]
    (directory / "modules.json").write_text(json.dumps(modules))
    (directory / "sentence_bert_config.json").write_text(
        json.dumps({"max_seq_length": document_length - 1})
    )
    (directory / "config_sentence_transformers.json").write_text(
        json.dumps(
            {
                "query_prefix": "[Q] ",
                "document_prefix": "[D] ",
                "query_length": query_length,
                "document_length": document_length,
                "do_query_expansion": expansion,
                "attend_to_expansion_tokens": attend_to_expansion,
                "skiplist_words": [".", ",", "!", "?"],
                "prompts": {},
                "default_prompt_name": None,
                "similarity_fn_name": "MaxSim",
            }
        )
    )
    (directory / "1_Dense").mkdir()
    (directory / "1_Dense" / "config.json").write_text(
        json.dumps(
            {
                "in_features": 32,
                "out_features": out_features,
                "bias": False,
                "activation_function": "torch.nn.modules.linear.Identity",
            }
        )
    )
    generator = torch.Generator().manual_seed(seed + 1)
    save_file(
        {"linear.weight": torch.randn(out_features, 32, generator=generator)},
        str(directory / "1_Dense" / "model.safetensors"),
    )
    return directory


def write_tiny_dual(
    directory: Path, kind: str = "clip", *, seed: int = 0, image_size: int = 32
) -> Path:
    """A tiny CLIP or SigLIP (2 layers per tower, random weights) in transformers' layout: config,
    safetensors, the tiny WordPiece tokenizer and the processor's preprocessor_config.json."""
    import torch
    from transformers import CLIPConfig, CLIPModel, SiglipConfig, SiglipModel

    directory.mkdir(parents=True, exist_ok=True)
    letters = list("abcdefghijklmnopqrstuvwxyz0123456789.,!?:'")
    vocab = [
        "[PAD]",
        "[UNK]",
        "[CLS]",
        "[SEP]",
        "[MASK]",
        *WORDS,
        *letters,
        *("##" + c for c in letters),
    ]
    tokenizer = _wordpiece_tokenizer(vocab)
    tokenizer.model_max_length = 24
    tokenizer.save_pretrained(directory)
    text = dict(
        vocab_size=len(vocab),
        hidden_size=32,
        intermediate_size=37,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=24,
        pad_token_id=0,
    )
    vision = dict(
        image_size=image_size,
        patch_size=8,
        hidden_size=32,
        intermediate_size=37,
        num_hidden_layers=2,
        num_attention_heads=4,
    )
    torch.manual_seed(seed)
    if kind == "clip":
        config = CLIPConfig(
            text_config=dict(text, bos_token_id=2, eos_token_id=3),
            vision_config=vision,
            projection_dim=24,
        )
        model = CLIPModel(config)
        processor = {
            "size": {"shortest_edge": image_size},
            "crop_size": {"height": image_size, "width": image_size},
            "do_center_crop": True,
            "image_mean": [0.48145466, 0.4578275, 0.40821073],
            "image_std": [0.26862954, 0.26130258, 0.27577711],
            "image_processor_type": "CLIPImageProcessor",
        }
    else:
        model = SiglipModel(SiglipConfig(text_config=text, vision_config=vision))
        processor = {
            "size": {"height": image_size, "width": image_size},
            "do_center_crop": False,
            "image_mean": [0.5, 0.5, 0.5],
            "image_std": [0.5, 0.5, 0.5],
            "image_processor_type": "SiglipImageProcessor",
        }
    model.save_pretrained(directory, safe_serialization=True)
    processor.update(
        do_resize=True,
        resample=3,
        do_rescale=True,
        rescale_factor=1 / 255,
        do_normalize=True,
        do_convert_rgb=True,
    )
    (directory / "preprocessor_config.json").write_text(json.dumps(processor))
    return directory


COLOURS = {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255)}


class ColourEncoder(Encoder):
    """A dual encoder whose right answers are known by construction: an image's vector is its mean
    RGB, a text's vector counts the colour words it holds (red, green, blue), so "a red thing"
    is nearest to red images. `constant=True`: every input gets the same vector (a collapsed model)."""

    modalities = ("text", "image")

    def __init__(self, constant: bool = False):
        from uniembed.images.decode import DEFAULT_LIMITS
        from uniembed.images.preprocess import ImagePreprocessing

        super().__init__("colours", 4)
        self.constant = constant
        self.limits = DEFAULT_LIMITS
        self.preprocessing = ImagePreprocessing(
            shortest_edge=None,
            resize=(4, 4),
            crop=None,
            rescale_factor=1 / 255,
            mean=None,
            std=None,
        )

    def encode_batch(self, texts, *, long="truncate"):
        out = np.full((len(texts), 4), 0.01, dtype=np.float32)
        for row, text in enumerate(texts):
            for col, word in enumerate(COLOURS):
                out[row, col] += text.lower().split().count(word)
        return np.ones_like(out) if self.constant else out

    def encode_images(self, images, **options):
        from uniembed.encoders.multimodal import ImageTower

        return ImageTower.encode_images(self, images, **options)

    def encode_image_batch(self, pixel_values):
        means = pixel_values.mean(axis=(2, 3))
        out = np.concatenate([means, np.full((len(means), 1), 0.01)], axis=1).astype(np.float32)
        return np.ones_like(out) if self.constant else out


def colour_image(name: str, size: int = 8):
    from PIL import Image

    return Image.new("RGB", (size, size), COLOURS[name])


def write_tiny_vlm(directory: Path, *, seed: int = 0, image_size: int = 32) -> Path:
    """A tiny LLaVA (CLIP vision tower, 2-layer Llama text model, random weights) with the tiny
    WordPiece tokenizer plus an <image> token, and CLIP preprocessing."""
    import torch
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaModel

    directory.mkdir(parents=True, exist_ok=True)
    letters = list("abcdefghijklmnopqrstuvwxyz0123456789.,!?:'")
    vocab = [
        "[PAD]",
        "[UNK]",
        "[CLS]",
        "[SEP]",
        "[MASK]",
        "<image>",
        *WORDS,
        *letters,
        *("##" + c for c in letters),
    ]
    tokenizer = _wordpiece_tokenizer(vocab)
    tokenizer.save_pretrained(directory)
    vision = CLIPVisionConfig(
        image_size=image_size,
        patch_size=8,
        hidden_size=32,
        intermediate_size=37,
        num_hidden_layers=2,
        num_attention_heads=4,
    )
    text = LlamaConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        pad_token_id=0,
    )
    torch.manual_seed(seed)
    config = LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_id=vocab.index("<image>"),
        vision_feature_select_strategy="default",
        vision_feature_layer=-1,
    )
    LlavaModel(config).save_pretrained(directory, safe_serialization=True)
    processor = {
        "size": {"shortest_edge": image_size},
        "crop_size": {"height": image_size, "width": image_size},
        "do_center_crop": True,
        "do_resize": True,
        "resample": 3,
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "do_normalize": True,
        "image_mean": [0.48145466, 0.4578275, 0.40821073],
        "image_std": [0.26862954, 0.26130258, 0.27577711],
        "image_processor_type": "CLIPImageProcessor",
    }
    (directory / "preprocessor_config.json").write_text(json.dumps(processor))
    return directory


def unit_vectors(n: int, dim: int = 8, seed: int = 0) -> np.ndarray:
    """n random unit vectors (float32), the same for the same seed."""
    from uniembed.compress import l2_normalize

    return l2_normalize(np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32))
