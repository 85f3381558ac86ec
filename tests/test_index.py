"""Contract tests: every registered index kind (and its variants) through the same checks,
against the exact oracle."""

from __future__ import annotations

import numpy as np
import pytest

from uniembed import InputError
from uniembed.compress import Int8Quantizer, binarize, hamming_distances, l2_normalize
from uniembed.index import INDEX_KINDS, create_index, exact_search

VARIANTS = [(kind, {}) for kind in sorted(INDEX_KINDS)] + [
    ("hnsw", {"quantize": "int8"}),
    ("binary", {"graph": "hnsw"}),
    ("binary", {"rescore_multiplier": 10}),
]
IDS = [
    f"{kind}-{'-'.join(f'{k}={v}' for k, v in params.items()) or 'default'}"
    for kind, params in VARIANTS
]


@pytest.fixture(scope="module")
def clustered():
    """Unit vectors around 50 centres in 32 dims, and queries near some of them."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(50, 32))
    vectors = l2_normalize(
        (centres[rng.integers(0, 50, 3000)] + 0.35 * rng.normal(size=(3000, 32))).astype(np.float32)
    )
    queries = l2_normalize((vectors[:25] + 0.05 * rng.normal(size=(25, 32))).astype(np.float32))
    return vectors, queries


@pytest.mark.parametrize(("kind", "params"), VARIANTS, ids=IDS)
def test_recall_against_the_exact_oracle(clustered, kind, params):
    vectors, queries = clustered
    index = create_index(kind, vectors, params)
    scores, rows = index.search(queries, 10, vectors)
    _, truth = exact_search(queries, vectors, 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(rows, truth)])
    assert recall >= (1.0 if kind == "exact" else 0.8)
    assert (np.diff(scores, axis=1) <= 1e-6).all()  # best first
    np.testing.assert_allclose(scores, np.einsum("qd,qkd->qk", queries, vectors[rows]), atol=1e-2)


@pytest.mark.parametrize(("kind", "params"), VARIANTS, ids=IDS)
def test_allowed_mask_is_applied_inside_the_search(clustered, kind, params):
    vectors, queries = clustered
    index = create_index(kind, vectors, params)
    allowed = np.zeros(len(vectors), dtype=bool)
    allowed[::3] = True
    _, rows = index.search(queries, 10, vectors, allowed)
    assert (rows >= 0).all() and allowed[rows].all()  # k results came back, all allowed


@pytest.mark.parametrize(("kind", "params"), VARIANTS, ids=IDS)
def test_added_vectors_are_found(clustered, kind, params):
    vectors, _ = clustered
    if kind == "ivfpq":  # coarse 4-byte codes at this size: look deeper before rescoring
        params = {**params, "rescore": 25}
    index = create_index(kind, vectors[:2000], params)
    index.add(vectors[2000:])
    _, rows = index.search(vectors[2500:2505], 10, vectors)
    assert all(target in found for target, found in zip(range(2500, 2505), rows))


def test_fewer_rows_than_k_pad_with_minus_one():
    vectors = l2_normalize(np.random.default_rng(1).normal(size=(3, 8)).astype(np.float32))
    scores, rows = create_index("exact", vectors).search(vectors[:1], 5, vectors)
    assert list(rows[0, 3:]) == [-1, -1] and np.isinf(scores[0, 3:]).all()


def test_bytes_per_vector_shows_the_compression():
    vectors = l2_normalize(np.random.default_rng(2).normal(size=(500, 384)).astype(np.float32))
    sizes = {
        kind: create_index(kind, vectors).bytes_per_vector for kind in ("exact", "int8", "binary")
    }
    assert sizes == {"exact": 1536.0, "int8": 384.0, "binary": 48.0}


def test_unknown_kind_and_parameter_are_refused():
    with pytest.raises(InputError, match="unknown index kind 'annoy'"):
        create_index("annoy", np.zeros((1, 4), np.float32))
    with pytest.raises(InputError, match=r"has no parameter\(s\) \['efs'\]"):
        create_index("hnsw", np.zeros((1, 4), np.float32), {"efs": 3})


def test_int8_calibration_clips_out_of_range_values():
    calibration = np.array([[0.0, -1.0], [1.0, 1.0]], dtype=np.float32)
    quantizer = Int8Quantizer.calibrate(calibration)
    codes = quantizer.encode(np.array([[0.25, 0.5], [2.0, -5.0]], dtype=np.float32))
    assert codes.tolist() == [
        [64, 191],
        [255, 0],
    ]  # 0.25*255 = 63.75; (0.5+1)/2*255 = 191.25; clipped ends
    decoded = quantizer.decode(quantizer.encode(calibration))
    np.testing.assert_allclose(decoded, calibration, atol=quantizer.scale.max() / 2 + 1e-6)
    query = np.array([[0.3, -0.7]], dtype=np.float32)
    np.testing.assert_allclose(
        quantizer.scores(query, codes), query @ quantizer.decode(codes).T, rtol=1e-5
    )


def test_binary_codes_and_hamming_by_hand():
    codes = binarize(np.array([[1.0, -1.0, 0.5, -0.1, 0, 0, 0, 0, 2.0]], dtype=np.float32))
    assert codes.tolist() == [[0b10100000, 0b10000000]]  # bits: + - + - 0 0 0 0 | +
    other = binarize(np.array([[-1.0, -1.0, 0.5, 0.1, 0, 0, 0, 0, -2.0]], dtype=np.float32))
    assert hamming_distances(codes, other).tolist() == [[3]]
