"""Every backend through the same contract on the tiny in-process BERT, plus the ONNX cache."""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pytest

import uniembed
from uniembed import TruncationWarning

LONG = " ".join(["the cat sat on the mat and the dog sat on the sun"] * 4)
BACKENDS = [
    ("torch", "fp32"),
    ("torch", "bf16"),
    ("onnx", "fp32"),
    ("onnx", "int8"),
    ("openvino", "fp32"),
    ("openvino", "bf16"),
    ("openvino", "int8"),
    ("static", "fp32"),
]


@pytest.fixture(scope="module")
def onnx_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("uniembed-cache")


@pytest.fixture(scope="module")
def encoders(tiny_dir, onnx_cache):
    mp = pytest.MonkeyPatch()
    mp.setenv("UNIEMBED_CACHE", str(onnx_cache))
    loaded = {
        key: uniembed.load(tiny_dir, backend=key[0], precision=key[1], device="cpu")
        for key in BACKENDS
        if key[0] != "static"
    }
    from uniembed.encoders.static import distill

    static_dir = distill(loaded[("torch", "fp32")], onnx_cache / "static-tiny", dim=16)
    loaded[("static", "fp32")] = uniembed.load(static_dir)
    yield loaded
    mp.undo()


@pytest.mark.parametrize("key", BACKENDS, ids=lambda k: f"{k[0]}-{k[1]}")
def test_contract_shape_dtype_order_norm_empty(encoders, key):
    encoder = encoders[key]
    texts = ["hello world", "", "a cat", "the dog sat on the mat"]
    vectors = encoder.encode(texts, batch_size=2)
    assert (
        vectors.shape == (4, encoder.dim)
        and vectors.dtype == np.float32
        and np.isfinite(vectors).all()
    )
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    one_by_one = np.concatenate([encoder.encode([t]) for t in texts])
    # bf16 rounds differently with padding; dynamic int8 scales activations per batch (documented)
    tolerance = {"bf16": 2e-2, "int8": 2e-3}.get(key[1], 1e-5)
    np.testing.assert_allclose(vectors, one_by_one, atol=tolerance)


@pytest.mark.parametrize("key", BACKENDS[:-1], ids=lambda k: f"{k[0]}-{k[1]}")
def test_contract_long_inputs(encoders, key):
    encoder = encoders[key]
    with pytest.warns(TruncationWarning):
        encoder.encode([LONG, "short"])
    assert encoder.last_report.n_truncated == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error", TruncationWarning)
        chunked = encoder.encode([LONG], long="chunk")
    assert encoder.last_report.n_chunks > 1 and chunked.shape == (1, 32)


@pytest.mark.parametrize(
    ("key", "tolerance"),
    [
        (("onnx", "fp32"), 1e-5),
        (("onnx", "int8"), 0.9),
        (("torch", "bf16"), 0.99),
        (("openvino", "fp32"), 1e-5),
        (("openvino", "bf16"), 0.99),
        (("openvino", "int8"), 0.9),
    ],
    ids=["onnx-fp32", "onnx-int8", "torch-bf16", "openvino-fp32", "openvino-bf16", "openvino-int8"],
)
def test_backends_agree_with_torch_fp32(encoders, key, tolerance):
    texts = ["hello world", "a cat sat on the mat", LONG]
    reference = encoders[("torch", "fp32")].encode(texts, long="chunk")
    got = encoders[key].encode(texts, long="chunk")
    if key[1] == "fp32":
        np.testing.assert_allclose(got, reference, atol=tolerance)
        assert encoders[key].fingerprint == encoders[("torch", "fp32")].fingerprint
    else:
        assert (got * reference).sum(
            1
        ).min() > tolerance  # random tiny weights: loose, real model in bench
        assert encoders[key].fingerprint != encoders[("torch", "fp32")].fingerprint


def test_second_load_uses_the_cache(tiny_dir, onnx_cache, encoders, monkeypatch):
    from uniembed.encoders import onnx_export

    monkeypatch.setenv("UNIEMBED_CACHE", str(onnx_cache))
    monkeypatch.setattr(onnx_export, "export_model", lambda *a: pytest.fail("exported again"))
    monkeypatch.setattr(onnx_export, "quantize_int8", lambda *a: pytest.fail("quantised again"))
    assert uniembed.load(tiny_dir, backend="onnx", precision="int8").encode(["a"]).shape == (1, 32)


def test_openvino_int8_is_quantised_once_and_again_when_its_recipe_or_files_change(
    tiny_dir, onnx_cache, encoders, monkeypatch
):
    import json

    import nncf

    from uniembed.encoders import openvino

    monkeypatch.setenv("UNIEMBED_CACHE", str(onnx_cache))
    info_file = next(onnx_cache.rglob("export.json"))
    info = json.loads(info_file.read_text())
    assert (
        info["openvino_int8_recipe"] == openvino.INT8_RECIPE and openvino.INT8_BIN in info["sha256"]
    )
    calls = []
    real_quantize = nncf.quantize
    monkeypatch.setattr(nncf, "quantize", lambda *a, **k: calls.append(1) or real_quantize(*a, **k))
    expected = encoders[("openvino", "int8")].encode(["a cat sat"])
    np.testing.assert_allclose(
        uniembed.load(tiny_dir, backend="openvino", precision="int8").encode(["a cat sat"]),
        expected,
        atol=1e-6,
    )
    assert calls == []  # the cached IR
    info_file.write_text(json.dumps({**info, "openvino_int8_recipe": "an-older-recipe"}))
    uniembed.load(tiny_dir, backend="openvino", precision="int8")
    assert (
        calls == [1]
        and json.loads(info_file.read_text())["openvino_int8_recipe"] == openvino.INT8_RECIPE
    )
    bin_file = next(onnx_cache.rglob(openvino.INT8_BIN))
    bin_file.write_bytes(bin_file.read_bytes()[:-16])  # a damaged weights file is never compiled
    uniembed.load(tiny_dir, backend="openvino", precision="int8")
    assert calls == [1, 1]


def test_openvino_fp32_and_bf16_run_an_ir_converted_once_from_the_pytorch_weights(
    tiny_dir, onnx_cache, encoders, monkeypatch
):
    """Converted by OpenVINO's PyTorch frontend (fused attention), cached beside the ONNX export,
    converted again when its recipe or files change; the vectors stay torch's."""
    import json

    import openvino as ov

    from uniembed.encoders import openvino
    from uniembed.encoders.load import cpu_has_bf16

    monkeypatch.setenv("UNIEMBED_CACHE", str(onnx_cache))
    assert encoders[("openvino", "fp32")].model_path.name == openvino.IR_XML
    # loaded again: an earlier test damaged a file of this cache, which rebuilt all of it
    ir = uniembed.load(tiny_dir, backend="openvino").model_path
    info_file = ir.parent / "export.json"
    info = json.loads(info_file.read_text())
    assert info["openvino_ir_recipe"] == openvino.IR_RECIPE and openvino.IR_BIN in info["sha256"]
    calls = []
    real_convert = ov.convert_model
    monkeypatch.setattr(
        ov, "convert_model", lambda *a, **k: calls.append(1) or real_convert(*a, **k)
    )
    texts = ["a cat sat", "the dog on the mat"]
    np.testing.assert_allclose(
        uniembed.load(tiny_dir, backend="openvino").encode(texts),
        encoders[("torch", "fp32")].encode(texts),
        atol=1e-5,
    )
    assert calls == []  # the cached IR
    info_file.write_text(json.dumps({**info, "openvino_ir_recipe": "an-older-recipe"}))
    uniembed.load(tiny_dir, backend="openvino")
    assert calls == [1]
    bin_file = ir.parent / openvino.IR_BIN
    bin_file.write_bytes(bin_file.read_bytes()[:-16])  # a damaged weights file is never compiled
    uniembed.load(
        tiny_dir,
        backend="openvino",
        precision="bf16" if cpu_has_bf16() else "fp32",
    )
    assert calls == [1, 1]


def test_openvino_runs_many_batches_side_by_side_with_the_bits_of_one_at_a_time(encoders):
    model = encoders[("openvino", "fp32")]
    texts = [("word " * n).strip() for n in range(1, 60)]  # many length buckets: many batches
    together = model.encode(texts, batch_size=4)
    alone = np.stack([model.encode([text])[0] for text in texts])
    assert model._throughput is not None  # the multi-batch path ran
    np.testing.assert_array_equal(together, alone)


def test_an_openvino_encoder_freed_after_a_multi_batch_encode_does_not_abort_the_process(
    tiny_dir, onnx_cache
):
    """Its callbacks once held the encoder: freeing it then joined an OpenVINO thread from itself
    and aborted the process (std::system_error, 'Resource deadlock avoided')."""
    script = (
        "import uniembed, gc\n"
        "def once():\n"
        f"    model = uniembed.load({str(tiny_dir)!r}, backend='openvino')\n"
        "    model.encode([('word ' * n).strip() for n in range(1, 60)], batch_size=4)\n"
        "for _ in range(2):\n"
        "    once(); gc.collect()\n"
        "print('freed')\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env={**__import__("os").environ, "UNIEMBED_CACHE": str(onnx_cache)},
    )
    assert proc.returncode == 0 and "freed" in proc.stdout, proc.stderr[-500:]


def test_openvino_rejects_what_it_cannot_do(tiny_dir):
    for options, message in (
        ({"precision": "fp16"}, "precision for the openvino backend must be one of"),
        ({"layers": 1}, "truncate openvino outputs"),
        ({"device": "cuda"}, "runs on the CPU"),
    ):
        with pytest.raises(uniembed.InputError, match=message):
            uniembed.load(tiny_dir, backend="openvino", **options)


def test_an_int8_model_from_an_older_recipe_is_quantised_again(tiny_dir, tmp_path, monkeypatch):
    import json

    from uniembed.encoders import onnx_export

    monkeypatch.setenv("UNIEMBED_CACHE", str(tmp_path))
    uniembed.load(tiny_dir, backend="onnx", precision="int8")
    info_file = next(tmp_path.rglob("export.json"))
    info = json.loads(info_file.read_text())
    assert info["int8_recipe"] == onnx_export.INT8_RECIPE
    info_file.write_text(json.dumps({**info, "int8_recipe": "dynamic-per-channel-v1"}))
    monkeypatch.setattr(
        onnx_export, "export_model", lambda *a: pytest.fail("fp32 is intact: no new export")
    )
    uniembed.load(tiny_dir, backend="onnx", precision="int8")
    assert json.loads(info_file.read_text())["int8_recipe"] == onnx_export.INT8_RECIPE


def test_int8_exclusions_keep_attention_products_and_the_chosen_down_projections_in_fp32(
    tiny_dir, onnx_cache, encoders
):
    import onnx

    from uniembed.encoders.onnx_export import DEFAULT_INT8_EXCLUSION, int8_excluded_nodes

    model = onnx.load(str(next(onnx_cache.rglob("model.onnx"))))
    weights = {init.name for init in model.graph.initializer}
    matmuls = {node.name: node for node in model.graph.node if node.op_type == "MatMul"}
    activation_products = [n for n, node in matmuls.items() if not set(node.input) & weights]
    assert len(activation_products) == 2 * 2  # two per layer, two layers
    extra = {
        exclusion: len(int8_excluded_nodes(model, exclusion)) - len(activation_products)
        for exclusion in ("none", "first-down-projection", "every-down-projection")
    }
    assert extra == {
        "none": 0,
        "first-down-projection": 1,
        "every-down-projection": 2,
    }  # one FFN down-projection per layer
    for exclusion in extra:
        assert set(activation_products) <= set(int8_excluded_nodes(model, exclusion))
    assert int8_excluded_nodes(model) == int8_excluded_nodes(model, DEFAULT_INT8_EXCLUSION)
    with pytest.raises(ValueError, match="exclusion must be one of"):
        int8_excluded_nodes(model, "most")


def test_a_corrupt_cache_is_rebuilt(tiny_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("UNIEMBED_CACHE", str(tmp_path))
    first = uniembed.load(tiny_dir, backend="onnx").encode(["a cat"])
    model_file = next(tmp_path.rglob("model.onnx"))
    model_file.write_bytes(model_file.read_bytes()[:1000])  # truncated, as after a crash
    again = uniembed.load(tiny_dir, backend="onnx").encode(["a cat"])
    np.testing.assert_allclose(again, first, atol=1e-6)
    assert model_file.stat().st_size > 1000


def test_onnx_inference_needs_no_torch(tiny_dir, onnx_cache, encoders):
    code = (
        "import sys; sys.modules['torch'] = None; sys.modules['transformers'] = None\n"
        "import uniembed\n"
        f"v = uniembed.load({str(tiny_dir)!r}, backend='onnx', precision='int8').encode(['a cat', ''])\n"
        "print(v.shape)"
    )
    env = {**__import__("os").environ, "UNIEMBED_CACHE": str(onnx_cache)}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "(2, 32)"


def test_bf16_on_cpu_and_fp16_needs_cuda(tiny_dir):
    with pytest.raises(uniembed.InputError, match="fp16 needs a CUDA device"):
        uniembed.load(tiny_dir, precision="fp16", device="cpu")


def test_static_model_has_no_length_limit_and_is_the_mean_of_its_tokens(encoders):
    static = encoders[("static", "fp32")]
    with warnings.catch_warnings():
        warnings.simplefilter("error", TruncationWarning)  # every token counts: nothing to truncate
        long_vector = static.encode([LONG], normalize=False)
    ids = static.tokenizer.encode("cat sat", add_special_tokens=False).ids
    np.testing.assert_allclose(
        static.encode(["cat sat"], normalize=False)[0], static.embeddings[ids].mean(0), atol=1e-6
    )
    assert np.isfinite(long_vector).all()


def test_distill_refuses_a_non_empty_output_and_a_bad_dim(encoders, tmp_path):
    from uniembed.encoders.static import distill

    (tmp_path / "x").write_text("x")
    with pytest.raises(uniembed.InputError, match="not empty"):
        distill(encoders[("torch", "fp32")], tmp_path, dim=8)
    with pytest.raises(uniembed.InputError, match=r"dim must be an integer in \[1, 32\]"):
        distill(encoders[("torch", "fp32")], tmp_path / "new", dim=64)


def test_a_corrupt_static_model_is_a_clear_error(encoders, tmp_path):
    import shutil

    from uniembed.encoders.static import distill

    folder = distill(encoders[("torch", "fp32")], tmp_path / "s", dim=8)
    (folder / "static.safetensors").write_bytes(b"garbage")
    with pytest.raises(uniembed.ModelLoadError, match="not a readable static model"):
        uniembed.load(folder)
    shutil.rmtree(folder)


def test_a_static_model_refuses_options_it_cannot_honour(encoders, tmp_path):
    """Issue 31: a backend or precision asked of a static model used to be ignored silently."""
    from uniembed.encoders.static import distill

    folder = distill(encoders[("torch", "fp32")], tmp_path / "s", dim=8)
    with pytest.raises(uniembed.InputError, match="backend: not options of static models"):
        uniembed.load(folder, backend="onnx")
    with pytest.raises(uniembed.InputError, match="pooling, max_tokens: not options of static"):
        uniembed.load(folder, pooling="cls", max_tokens=8)
    assert uniembed.load(folder, threads=1).dim == 8


def test_refining_on_a_corpus_brings_the_static_model_closer_to_its_teacher(encoders, tmp_path):
    from uniembed.encoders.static import distill

    teacher = encoders[("torch", "fp32")]
    corpus = [
        f"{a} {b} {c}"
        for a in ("the", "a", "cat", "dog")
        for b in ("sat", "ran", "is")
        for c in ("on the mat", "in the sun", "blue", "red")
    ]
    plain = uniembed.load(distill(teacher, tmp_path / "plain", dim=32))
    refined = uniembed.load(distill(teacher, tmp_path / "refined", dim=32, corpus=corpus))
    target = teacher.encode(corpus)

    def mean_cos(model):  # PCA to the full 32 dims is a rotation: compare similarity structure
        v = model.encode(corpus)
        return np.corrcoef((v @ v.T).ravel(), (target @ target.T).ravel())[0, 1]

    assert mean_cos(refined) > mean_cos(plain) + 0.05


def test_refine_fits_the_teacher_from_either_start_and_refuses_bad_settings(encoders):
    from uniembed.encoders.static import refine, zipf_token_table

    teacher = encoders[("torch", "fp32")]
    corpus = [
        "the cat sat on the mat",
        "a dog ran in the sun",
        "the red cat is blue",
        "a blue dog sat",
    ]
    table = zipf_token_table(teacher)
    targets = teacher.encode(corpus)
    ids = [teacher.windows.tokenizer.encode(t, add_special_tokens=False).ids for t in corpus]

    def misfit(
        candidate,
    ):  # the least-squares term refine minimises: sentence means against the teacher
        means = np.stack([candidate[i].mean(0) for i in ids])
        return float(((means - targets) ** 2).sum())

    for start in ("sentence", "bag"):
        refined = refine(table, teacher, corpus, start=start)
        assert refined.shape == table.shape and misfit(refined) < 0.01 * misfit(table)
        # targets and token ids given up front (the selection bench reuses them) change nothing
        np.testing.assert_allclose(
            refine(table, teacher, corpus, start=start, ids=ids, targets=targets),
            refined,
            atol=1e-5,
        )
    with pytest.raises(uniembed.InputError, match="start must be one of .* got 'middle'"):
        refine(table, teacher, corpus, start="middle")
    with pytest.raises(uniembed.InputError, match="strength must be a positive number, got -1"):
        refine(table, teacher, corpus, strength=-1)


def test_sif_weights_make_frequent_tokens_count_less(encoders, tmp_path):
    from uniembed.encoders.static import distill

    teacher = encoders[("torch", "fp32")]
    corpus = ["the cat sat on the mat", "the dog sat in the sun", "the red cat"]
    model = uniembed.load(distill(teacher, tmp_path / "s", dim=8, corpus=corpus, sif=0.01))
    ids = {w: model.tokenizer.token_to_id(w) for w in ("the", "red", "bank")}
    weights = {w: float(model.weights[i]) for w, i in ids.items()}
    assert (
        weights["the"] < weights["red"] < weights["bank"] == 1.0
    )  # unseen tokens keep full weight
    # a text is the SIF-weighted mean of its token vectors, computed here the plain way
    text_ids = model.tokenizer.encode("the red cat", add_special_tokens=False).ids
    w = model.weights[text_ids]
    expected = (model.embeddings[text_ids] * w[:, None]).sum(0) / w.sum()
    np.testing.assert_allclose(
        model.encode(["the red cat"], normalize=False)[0], expected, rtol=1e-5, atol=1e-6
    )
    with pytest.raises(uniembed.InputError, match="sif must be a positive number, got 0"):
        distill(teacher, tmp_path / "t", dim=8, corpus=corpus, sif=0)


def test_static_pooling_over_mixed_lengths_matches_one_text_at_a_time(
    encoders, tmp_path, monkeypatch
):
    from uniembed.encoders import static

    model = uniembed.load(static.distill(encoders[("torch", "fp32")], tmp_path / "s", dim=8))
    texts = [
        "a",
        "the cat",
        "the cat sat",
        "dog",
        "the cat sat on the mat " * 5,
        "",
        "sun dog",
        "mat",
    ] * 3
    monkeypatch.setattr(
        static, "GATHER_TOKENS", 7
    )  # several gather chunks, texts longer than the budget
    together = model.encode(texts, normalize=False)
    one_by_one = np.stack([model.encode([t], normalize=False)[0] for t in texts])
    np.testing.assert_allclose(together, one_by_one, rtol=1e-5, atol=1e-6)


def test_bf16_on_a_cpu_without_bf16_instructions_warns(tiny_dir, monkeypatch):
    import sys

    load_module = sys.modules["uniembed.encoders.load"]
    monkeypatch.setattr(load_module, "cpu_has_bf16", lambda: False)
    with pytest.warns(RuntimeWarning, match="no bfloat16 instructions"):
        uniembed.load(tiny_dir, precision="bf16", device="cpu")
    monkeypatch.setattr(load_module, "cpu_has_bf16", lambda: True)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        uniembed.load(tiny_dir, precision="bf16", device="cpu")
