"""The encode contract on a tiny in-process BERT: pooling, prompts, normalisation, truncation,
chunking, order, and bad input."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import uniembed
from uniembed import InputError, TruncationWarning
from uniembed.compress import l2_normalize

LONG_TEXT = " ".join(["the cat sat on the mat and the dog sat on the sun"] * 4)  # ~50 tokens > 16


def reference_vectors(model, texts, mode="mean"):
    """Pool the model's hidden states by hand, one text at a time (no padding at all)."""
    out = []
    for text in texts:
        ids = model.tokenizer(
            text.strip(), truncation=True, max_length=model.max_tokens, return_tensors="pt"
        )
        with torch.no_grad():
            hidden = model.model(**ids).last_hidden_state[0]  # (tokens, dim)
        pooled = {
            "mean": hidden.mean(0),
            "cls": hidden[0],
            "lasttoken": hidden[-1],
            "max": hidden.max(0).values,
        }[mode]
        out.append(pooled.numpy())
    return np.stack(out)


def test_encode_returns_normalised_float32_rows(tiny_model):
    vectors = tiny_model.encode(["hello world", "a cat", ""])
    assert vectors.shape == (3, 32) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)


@pytest.mark.parametrize("mode", ["mean", "cls", "lasttoken", "max"])
def test_every_pooling_mode_matches_hand_pooling(tiny_dir, mode):
    model = uniembed.load(tiny_dir, pooling=mode, device="cpu")
    texts = [
        "hello world",
        "the cat sat on the mat",
        "a",
    ]  # different lengths: batch padding matters
    got = model.encode(texts, normalize=False)
    np.testing.assert_allclose(got, reference_vectors(model, texts, mode), atol=1e-5)


@pytest.mark.parametrize("mode", ["cls", "lasttoken", "mean"])
def test_left_padding_pools_the_same_tokens(tiny_dir, mode):
    # BERT has absolute positions, so compare pooling on identical hidden states padded both ways.
    from uniembed.encoders.pooling import pool

    hidden = torch.randn(2, 5, 4)
    lengths = [5, 3]
    right = torch.zeros(2, 5, 4)
    left = torch.zeros(2, 5, 4)
    mask_right = torch.zeros(2, 5, dtype=torch.long)
    mask_left = torch.zeros(2, 5, dtype=torch.long)
    for row, n in enumerate(lengths):
        right[row, :n] = hidden[row, :n]
        left[row, 5 - n :] = hidden[row, :n]
        mask_right[row, :n] = 1
        mask_left[row, 5 - n :] = 1
    a = pool(right, mask_right, mode, "right")
    b = pool(left, mask_left, mode, "left")
    torch.testing.assert_close(a, b)
    expected = {"cls": hidden[1, 0], "lasttoken": hidden[1, 2], "mean": hidden[1, :3].mean(0)}[mode]
    torch.testing.assert_close(a[1], expected)


def test_pooling_comes_from_the_sentence_transformers_config(tmp_path):
    from helpers import write_tiny_bert

    directory = write_tiny_bert(tmp_path / "cls-model", pooling="cls")
    assert uniembed.load(directory, device="cpu").pooling == "cls"


def test_rows_come_back_in_input_order(tiny_model):
    texts = ["a", "the cat sat on the mat", "hello", "dog and cat and sun"]
    batched = tiny_model.encode(texts, batch_size=2)
    one_by_one = np.concatenate([tiny_model.encode([t]) for t in texts])
    np.testing.assert_allclose(batched, one_by_one, atol=1e-5)


def test_configured_prompt_is_prepended(tiny_model):
    with_prompt = tiny_model.encode(["a cat"], prompt="query")
    by_hand = tiny_model.encode(["query: a cat"])
    np.testing.assert_allclose(with_prompt, by_hand, atol=1e-6)
    assert not np.allclose(with_prompt, tiny_model.encode(["a cat"]), atol=1e-4)


def test_document_prompt_uses_the_passage_prompt_of_e5_style_configs(tiny_model):
    np.testing.assert_allclose(
        tiny_model.encode(["a cat"], prompt="document"),
        tiny_model.encode(["passage: a cat"]),
        atol=1e-6,
    )


def test_standard_prompt_without_config_adds_nothing():
    from helpers import FakeEncoder

    fake = FakeEncoder()
    np.testing.assert_allclose(
        fake.encode(["a cat"], prompt="document"), fake.encode(["a cat"]), atol=1e-6
    )
    np.testing.assert_allclose(
        fake.encode(["a cat"], prompt="query"), fake.encode(["a cat"]), atol=1e-6
    )


def test_unknown_prompt_is_refused_with_the_known_ones(tiny_model):
    with pytest.raises(InputError, match=r"unknown prompt 'summarise'.*passage.*query"):
        tiny_model.encode(["a"], prompt="summarise")


def test_normalize_off_and_matryoshka_dim(tiny_model):
    raw = tiny_model.encode(["hello world", "a dog"], normalize=False)
    assert not np.allclose(np.linalg.norm(raw, axis=1), 1.0)
    cut = tiny_model.encode(["hello world", "a dog"], dim=8)
    assert cut.shape == (2, 8)
    np.testing.assert_allclose(cut, l2_normalize(raw[:, :8]), atol=1e-6)
    np.testing.assert_allclose(
        tiny_model.encode(["hello world"], dim=8, normalize=False), raw[:1, :8], atol=1e-6
    )


def test_long_input_is_truncated_and_reported(tiny_model):
    with pytest.warns(TruncationWarning, match=r"1 of 2 inputs were longer than 16 tokens"):
        vectors = tiny_model.encode([LONG_TEXT, "a cat"], normalize=False)
    assert tiny_model.last_report.n_truncated == 1
    np.testing.assert_allclose(
        vectors, reference_vectors(tiny_model, [LONG_TEXT, "a cat"]), atol=1e-5
    )


def test_chunking_embeds_the_whole_input(tiny_model):
    with warnings.catch_warnings():
        warnings.simplefilter("error", TruncationWarning)  # chunking must not warn
        chunked = tiny_model.encode([LONG_TEXT, "a cat"], long="chunk", normalize=False)
    assert tiny_model.last_report.n_chunks > 1 and tiny_model.last_report.n_truncated == 0
    # short inputs are one window: same vector as without chunking
    np.testing.assert_allclose(
        chunked[1], tiny_model.encode(["a cat"], normalize=False)[0], atol=1e-5
    )
    # the long one is the token-weighted mean of its windows, computed here independently
    tokenizer = tiny_model.tokenizer
    windows = tokenizer(
        LONG_TEXT,
        truncation=True,
        max_length=16,
        stride=tiny_model.chunk_overlap,
        return_overflowing_tokens=True,
    )["input_ids"]
    expected = np.zeros(32)
    for ids in windows:
        with torch.no_grad():
            hidden = tiny_model.model(input_ids=torch.tensor([ids])).last_hidden_state[0]
        expected += hidden.mean(0).numpy() * len(ids)
    expected /= sum(len(ids) for ids in windows)
    np.testing.assert_allclose(chunked[0], expected, atol=1e-5)


def test_empty_string_gives_a_finite_vector(tiny_model):
    vector = tiny_model.encode([""])
    assert np.isfinite(vector).all() and np.isclose(np.linalg.norm(vector), 1.0)


@pytest.mark.parametrize(
    ("texts", "message"),
    [
        ("just a string", "single str"),
        ([], "empty list"),
        (["ok", None], "item 1 is NoneType"),
        (["ok", "fine", 3], "item 2 is int"),
        (None, "got NoneType"),
    ],
)
def test_bad_texts_are_refused_naming_the_item(fake, texts, message):
    with pytest.raises(InputError, match=message):
        fake.encode(texts)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"long": "drop"}, "long must be one of"),
        ({"batch_size": 0}, "batch_size must be a positive integer"),
        ({"dim": 0}, "dim must be a positive integer"),
        ({"dim": 99}, r"dim must be an integer in \[1, 8\]"),
    ],
)
def test_bad_options_are_refused_naming_the_value(fake, options, message):
    with pytest.raises(InputError, match=message):
        fake.encode(["a"], **options)


def test_batches_are_length_sorted_and_sized(fake):
    fake.encode(["aa", "a", "aaaa", "aaa", "aaaaa"], batch_size=2)
    assert [len(batch) for batch in fake.calls] == [2, 2, 1]
    assert fake.calls[0] == ["aaaaa", "aaaa"]


def test_token_batches_respect_the_budget_and_hold_one_padded_length_each():
    from uniembed.encoders.batching import padded_length, token_batches

    rng = np.random.default_rng(3)
    lengths = rng.integers(1, 120, size=500)
    lengths[7] = 5000  # longer than the budget: a batch of its own
    batches = token_batches(lengths, 1024, max_batch=64)
    assert sorted(np.concatenate(batches).tolist()) == list(range(500))  # every input exactly once
    for batch in batches:
        buckets = {padded_length(n) for n in lengths[batch]}
        assert len(buckets) == 1  # one padded length per batch
        assert len(batch) == 1 or (len(batch) * buckets.pop() <= 1024 and len(batch) <= 64)
    assert [7] in [b.tolist() for b in batches]
    assert [padded_length(n) for n in (1, 2, 3, 31, 32, 33, 63, 64, 65, 255, 256, 257)] == [
        2,
        2,
        4,
        32,
        32,
        36,
        64,
        64,
        72,
        256,
        256,
        288,
    ]
    assert all(
        padded_length(n) - n < max(2, n / 8) for n in range(1, 5000)
    )  # at most 1/8 of an input
    assert padded_length(509, max_length=510) == 510 and padded_length(450, max_length=510) == 480
    mixed = np.array([60, 12, 59, 11])  # one small mixed set, as a server's micro-batch
    assert [
        sorted(lengths) for lengths in (mixed[b].tolist() for b in token_batches(mixed, 16384))
    ] == [[59, 60], [11, 12]]


def test_a_texts_vector_does_not_depend_on_what_it_is_batched_with(tiny_model):
    """Bit for bit: alone, in small batches, in one call with texts of every length, in another order."""
    rng = np.random.default_rng(0)
    words = "river stone light paper music garden window winter coffee bridge".split()
    texts = [" ".join(rng.choice(words, size=rng.integers(1, 60))) for _ in range(80)]
    together = tiny_model.encode(texts, batch_size=64, show_progress=False)
    small = tiny_model.encode(texts, batch_size=3, show_progress=False)
    order = rng.permutation(len(texts))
    shuffled = tiny_model.encode([texts[i] for i in order], batch_size=16, show_progress=False)
    alone = np.stack([tiny_model.encode([t], show_progress=False)[0] for t in texts[:20]])
    np.testing.assert_array_equal(small, together)
    np.testing.assert_array_equal(shuffled, together[order])
    np.testing.assert_array_equal(alone, together[:20])
