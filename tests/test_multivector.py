"""Multi-vector pieces: token vectors, MaxSim with masking, and the FDE invariants of RESEARCH.md."""

from __future__ import annotations

import numpy as np
import pytest

import uniembed
from uniembed.multivector import FDE, FDEConfig, maxsim


def random_sets(n, dim=8, seed=0, low=2, high=9):
    rng = np.random.default_rng(seed)
    return [
        rng.standard_normal((int(rng.integers(low, high)), dim)).astype(np.float32)
        for _ in range(n)
    ]


def chamfer(query, doc):
    return float((query @ doc.T).max(axis=1).sum())


# -- MaxSim ----------------------------------------------------------------------------------


def test_maxsim_is_chamfer_and_padding_never_wins():
    docs = random_sets(7, seed=1)
    query = random_sets(1, seed=2)[0]
    np.testing.assert_allclose(
        maxsim(query, docs, block=3), [chamfer(query, d) for d in docs], rtol=1e-5
    )
    # all similarities negative: a zero padding vector (score 0) would win if padding were multiplied away
    negative_query = -np.abs(query)
    positive_doc = [
        np.abs(random_sets(1, seed=3, low=2, high=3)[0]),
        np.abs(random_sets(1, seed=4, low=9, high=10)[0]),
    ]
    np.testing.assert_allclose(
        maxsim(negative_query, positive_doc),
        [chamfer(negative_query, d) for d in positive_doc],
        rtol=1e-5,
    )
    assert (maxsim(negative_query, positive_doc) < 0).all()


def test_maxsim_rejects_bad_shapes_and_empty_sets():
    docs = random_sets(2)
    with pytest.raises(uniembed.InputError, match="dims"):
        maxsim(np.ones((2, 5), np.float32), docs)
    with pytest.raises(uniembed.InputError, match="empty"):
        maxsim(docs[0], [docs[1], np.zeros((0, 8), np.float32)])
    with pytest.raises(uniembed.InputError, match="non-empty"):
        maxsim(np.zeros((0, 8), np.float32), docs)


# -- FDE invariants --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "dim"),
    [
        (FDEConfig(repetitions=3, k_sim=2, d_proj=4), 3 * 4 * 4),
        (FDEConfig(repetitions=2, k_sim=3, d_proj=None), 2 * 8 * 8),
        (FDEConfig(repetitions=2, k_sim=1, d_proj=4, final_dim=10), 10),
    ],
)
def test_output_dim_formula(config, dim):
    fde = FDE(8, config)
    assert fde.output_dim == dim
    assert fde.queries(random_sets(3)).shape == (3, dim) == fde.documents(random_sets(3)).shape


def test_query_fde_is_additive_over_disjoint_token_sets():
    fde = FDE(8, FDEConfig(repetitions=4, k_sim=3, d_proj=4))
    a, b = random_sets(2, seed=5)
    together = fde.queries([np.concatenate([a, b])])[0]
    np.testing.assert_allclose(
        together, fde.queries([a])[0] + fde.queries([b])[0], rtol=1e-5, atol=1e-6
    )


def test_with_one_bucket_and_no_projection_the_score_is_the_mean_score():
    fde = FDE(8, FDEConfig(repetitions=1, k_sim=0, d_proj=None))
    query, doc = random_sets(2, seed=6)
    expected = sum(float(q @ doc.mean(axis=0)) for q in query)
    assert float(fde.queries([query])[0] @ fde.documents([doc])[0]) == pytest.approx(
        expected, rel=1e-5
    )


def test_empty_document_buckets_take_the_hamming_nearest_token():
    config = FDEConfig(repetitions=1, k_sim=3, d_proj=None)
    fde = FDE(8, config)
    doc = random_sets(1, seed=7, low=2, high=3)[0]  # 2 tokens, 8 buckets: most are empty
    encoded = fde.documents([doc])[0].reshape(8, 8)
    bucket = ((doc @ fde.hyperplanes[0]) > 0).astype(int) @ (1 << np.arange(3))
    for b in range(8):
        distances = [bin(b ^ int(t)).count("1") for t in bucket]
        if b in bucket:
            np.testing.assert_allclose(encoded[b], doc[bucket == b].mean(axis=0), rtol=1e-5)
        else:
            np.testing.assert_allclose(encoded[b], doc[int(np.argmin(distances))], rtol=1e-5)
    without = (
        FDE(8, FDEConfig(repetitions=1, k_sim=3, d_proj=None, fill_empty=False))
        .documents([doc])[0]
        .reshape(8, 8)
    )
    assert (np.abs(without).sum(axis=1) == 0).sum() >= 6  # empty stays empty without the fill
    query_blocks = fde.queries([doc])[0].reshape(8, 8)
    assert (np.abs(query_blocks).sum(axis=1) == 0).sum() >= 6  # queries are never filled


def test_deterministic_for_a_seed():
    docs = random_sets(4)
    a = FDE(8, FDEConfig(seed=3)).documents(docs)
    np.testing.assert_array_equal(a, FDE(8, FDEConfig(seed=3)).documents(docs))
    assert not np.allclose(a, FDE(8, FDEConfig(seed=4)).documents(docs))


def test_correlation_with_exact_chamfer_rises_with_repetitions():
    rng = np.random.default_rng(0)
    # clustered token sets, like real documents: each set draws around a few topic centres
    centres = rng.standard_normal((20, 16)).astype(np.float32)

    def token_set():
        picks = centres[rng.integers(0, 20, 3)]
        return np.concatenate([p + 0.3 * rng.standard_normal((4, 16)) for p in picks]).astype(
            np.float32
        )

    docs = [token_set() for _ in range(60)]
    queries = [token_set()[:5] for _ in range(20)]
    exact = np.array([[chamfer(q, d) for d in docs] for q in queries]).ravel()

    def correlation(repetitions):
        fde = FDE(16, FDEConfig(repetitions=repetitions, k_sim=3, d_proj=8, seed=1))
        approx = (fde.queries(queries) @ fde.documents(docs).T).ravel()
        return np.corrcoef(exact, approx)[0, 1]

    low, high = correlation(1), correlation(20)
    assert high > low and high > 0.8


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (FDEConfig(repetitions=0), "repetitions"),
        (FDEConfig(k_sim=13), "k_sim"),
        (FDEConfig(d_proj=0), "d_proj"),
    ],
)
def test_bad_configs_and_inputs(config, message):
    with pytest.raises(uniembed.InputError, match=message):
        FDE(8, config)
    fde = FDE(8, FDEConfig(repetitions=1, k_sim=1, d_proj=2))
    with pytest.raises(uniembed.InputError, match="empty"):
        fde.documents([np.zeros((0, 8), np.float32)])
    with pytest.raises(uniembed.InputError, match=r"expected \(n, 8\)"):
        fde.queries([np.zeros((3, 5), np.float32)])


# -- token vectors ---------------------------------------------------------------------------


def test_encode_tokens_gives_unpadded_normalised_token_vectors(tiny_model):
    texts = ["a cat", "the cat sat on the mat", ""]
    tokens = tiny_model.encode_tokens(texts)
    lengths = [len(ids) for ids in tiny_model.windows.windows(texts, chunk=False).ids]
    assert [t.shape for t in tokens] == [
        (n, 32) for n in lengths
    ]  # special tokens kept, padding gone
    np.testing.assert_allclose(np.linalg.norm(tokens[1], axis=1), 1.0, rtol=1e-5)
    raw = tiny_model.encode_tokens(texts, normalize=False)
    # mean pooling of the raw token vectors is the model's own embedding
    np.testing.assert_allclose(
        raw[1].mean(axis=0) / np.linalg.norm(raw[1].mean(axis=0)),
        tiny_model.encode(texts[1:2])[0],
        atol=1e-5,
    )
    projected = tiny_model.encode_tokens(
        texts, projection=np.eye(32, 4, dtype=np.float32), normalize=False
    )
    np.testing.assert_allclose(projected[1], raw[1][:, :4], atol=1e-6)
    alone = tiny_model.encode_tokens(["the cat sat on the mat"], normalize=False)[0]
    np.testing.assert_allclose(alone, raw[1], atol=1e-5)  # batching with others changes nothing


# -- ColBERT / PyLate model directories --------------------------------------------------------


def pylate_reference(
    directory, texts, *, query: bool, query_length=8, document_length=12, attend=False
):
    """PyLate 1.6's ColBERT.tokenize + encode, written out with transformers and torch: the prefix
    token after [CLS], [MASK] expansion of queries, skiplist removal in documents, head, L2 norm."""
    import torch
    from safetensors.torch import load_file
    from transformers import AutoTokenizer, BertModel

    tokenizer = AutoTokenizer.from_pretrained(directory)
    model = BertModel.from_pretrained(directory).eval()
    weight = load_file(str(directory / "1_Dense" / "model.safetensors"))["linear.weight"]
    prefix = tokenizer.convert_tokens_to_ids("[Q] " if query else "[D] ")
    skip = set(tokenizer.convert_tokens_to_ids([".", ",", "!", "?"]))
    out = []
    for text in texts:
        if query:
            tokenizer.pad_token = "[MASK]"
            encoded = tokenizer(
                text, truncation=True, max_length=query_length - 1, padding="max_length"
            )
        else:
            encoded = tokenizer(text, truncation=True, max_length=document_length - 1)
        ids = encoded["input_ids"][:1] + [prefix] + encoded["input_ids"][1:]
        mask = encoded["attention_mask"][:1] + [1] + encoded["attention_mask"][1:]
        if query and attend:
            mask = [1] * len(mask)
        with torch.no_grad():
            hidden = model(
                input_ids=torch.tensor([ids]), attention_mask=torch.tensor([mask])
            ).last_hidden_state[0]
        tokens = hidden @ weight.T
        if not query:
            tokens = tokens[torch.tensor([i not in skip for i in ids])]
        out.append(torch.nn.functional.normalize(tokens, dim=1).numpy())
    return out


@pytest.mark.parametrize("attend", [False, True])
def test_pylate_directory_token_vectors_follow_pylate(tmp_path, attend):
    from helpers import write_tiny_pylate

    directory = write_tiny_pylate(tmp_path / "colbert", attend_to_expansion=attend)
    model = uniembed.load(directory, device="cpu")
    assert model.token_dim == 6
    texts = [
        "the cat sat on the mat.",
        "hello, world! the sun is blue and the rain is red and the dog sat",
    ]
    queries = ["cat", "the sun, blue", *texts]  # short ones are expanded with [MASK], long ones cut
    for query in (True, False):
        got = model.encode_tokens(
            queries if query else texts, prompt="query" if query else "document"
        )
        want = pylate_reference(directory, queries if query else texts, query=query, attend=attend)
        for g, w in zip(got, want):
            assert g.shape == w.shape == ((8, 6) if query else g.shape)
            np.testing.assert_allclose(g, w, atol=1e-5)
    assert (
        got[1].shape[0] < 12
    )  # the long document was cut at document_length, then punctuation dropped
    with pytest.raises(uniembed.InputError, match="late-interaction"):
        model.encode(["a single vector"])
    with pytest.raises(uniembed.InputError, match="token head"):
        model.encode_tokens(["x"], projection=np.eye(32, 4, dtype=np.float32))


def test_pylate_directory_with_bad_head_is_refused(tmp_path):
    import json

    from helpers import write_tiny_pylate

    directory = write_tiny_pylate(tmp_path / "colbert")
    config = directory / "1_Dense" / "config.json"
    config.write_text(
        json.dumps(
            {
                "in_features": 32,
                "out_features": 6,
                "bias": False,
                "activation_function": "torch.nn.Tanh",
            }
        )
    )
    with pytest.raises(uniembed.ModelLoadError, match="Tanh"):
        uniembed.load(directory, device="cpu")
    config.write_text(json.dumps({"in_features": 32, "out_features": 7, "bias": False}))
    with pytest.raises(uniembed.ModelLoadError, match="shape"):
        uniembed.load(directory, device="cpu")
    (directory / "1_Dense" / "model.safetensors").rename(
        directory / "1_Dense" / "pytorch_model.bin"
    )
    with pytest.raises(uniembed.ModelLoadError, match="pickle"):
        uniembed.load(directory, device="cpu")


def test_dense_after_pooling_is_refused_not_skipped(tiny_copy):
    import json

    modules = json.loads((tiny_copy / "modules.json").read_text())
    modules.append(
        {"idx": 3, "name": "3", "path": "3_Dense", "type": "sentence_transformers.models.Dense"}
    )
    (tiny_copy / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(uniembed.ModelLoadError, match="Dense module after Pooling"):
        uniembed.load(tiny_copy, device="cpu")
