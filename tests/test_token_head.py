"""Training a late-interaction head over a frozen tiny model, saved in PyLate's layout."""

from __future__ import annotations

import json

import numpy as np
import pytest

import uniembed
from uniembed import InputError
from uniembed.multivector import maxsim
from uniembed.train import TokenHeadConfig, train_token_head

TOPICS = [
    ("cat", "dog"),
    ("bank", "money"),
    ("sun", "rain"),
    ("blue", "red"),
    ("card", "lost"),
    ("hello", "world"),
    ("query", "passage"),
    ("mat", "sat"),
    ("send", "charged"),
    ("twice", "cards"),
]


def write_pairs(path):
    rows = [
        {"anchor": f"{a} {b}", "positive": f"the {a} and the {b} {filler}"}
        for a, b in TOPICS
        for filler in ("is", "was")
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    return path, rows


def top1(model, rows):
    queries = model.encode_tokens([r["anchor"] for r in rows], prompt="query")
    docs = model.encode_tokens([r["positive"] for r in rows], prompt="document")
    return np.mean(
        [
            rows[int(np.argmax(maxsim(q, docs)))]["anchor"] == r["anchor"]
            for q, r in zip(queries, rows)
        ]
    )


def test_trained_head_is_saved_loaded_and_applied(tmp_path, tiny_dir):
    data, rows = write_pairs(tmp_path / "pairs.jsonl")
    config = TokenHeadConfig(
        data=str(data),
        output=str(tmp_path / "head"),
        base=str(tiny_dir),
        dim=8,
        epochs=6,
        batch_size=8,
        learning_rate=1e-2,
        hard_negatives=1,
        device="cpu",
    )
    seen = []
    result = train_token_head(
        config, show_progress=False, on_epoch=lambda epoch, weight: seen.append((epoch, weight))
    )
    assert result.losses[-1] < result.losses[0]  # the head learns
    late = uniembed.load(result.output, device="cpu")
    # the per-epoch hook (validation scoring in bench/select_head_epochs.py) sees every epoch's head, the last one saved
    assert [epoch for epoch, _ in seen] == list(range(1, 7)) and not np.allclose(
        seen[0][1], seen[-1][1]
    )
    np.testing.assert_allclose(seen[-1][1], late.token_head.weight, atol=1e-6)
    assert late.token_dim == 8
    base = uniembed.load(tiny_dir, device="cpu")
    weight = late.token_head.weight
    texts = ["the cat sat", "blue rain on a red mat"]
    for prompt in ("query", "document"):
        expected = [t @ weight.T for t in base.encode_tokens(texts, prompt=prompt)]
        expected = [t / np.linalg.norm(t, axis=1, keepdims=True) for t in expected]
        for got, want in zip(late.encode_tokens(texts, prompt=prompt), expected):
            np.testing.assert_allclose(got, want, atol=1e-5)  # what was trained is what runs
    assert top1(late, rows) >= top1(base, rows)
    col = uniembed.Collection.create(
        tmp_path / "col",
        model=late,
        multivector="muvera",
        fde={"repetitions": 2, "k_sim": 1, "d_proj": 4},
    )
    col.add([str(i) for i in range(len(rows))], [r["positive"] for r in rows])
    assert len(col.search("cat dog", k=3)) == 3


def test_bad_head_settings_are_refused_before_compute(tmp_path, tiny_dir):
    data, _ = write_pairs(tmp_path / "pairs.jsonl")
    base = {
        "data": str(data),
        "output": str(tmp_path / "out"),
        "base": str(tiny_dir),
        "device": "cpu",
    }
    with pytest.raises(InputError, match="dim must be at most the model's 32"):
        train_token_head(TokenHeadConfig(**base, dim=64))
    with pytest.raises(InputError, match="batch_size must be at least 2"):
        train_token_head(TokenHeadConfig(**base, batch_size=1))
    with pytest.raises(InputError, match="temperature"):
        train_token_head(TokenHeadConfig(**base, temperature=0))
    with pytest.raises(InputError, match="does not exist|no such|not found"):
        train_token_head(TokenHeadConfig(**{**base, "data": str(tmp_path / "missing.jsonl")}))
    assert not (tmp_path / "out").exists()
