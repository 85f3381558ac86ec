"""backend="auto" / precision="auto": measured once per model and machine, cached, chosen by the
floor; bad floors, foreign records and backends that cannot load behave as the rules say."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

import uniembed
from uniembed.encoders import auto
from uniembed.encoders.auto import Measurement
from uniembed.errors import InputError


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("UNIEMBED_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def fake_calibration(monkeypatch, measurements: list[Measurement]) -> list:
    """calibrate() replaced by fixed measurements; returns the list of candidate sets it was asked."""
    asked = []

    def calibrate(candidates, load_candidate):
        asked.append(list(candidates))
        by_key = {(m.backend, m.precision): m for m in measurements}
        return [by_key.get(c, Measurement(*c, skipped="not in this fake")) for c in candidates]

    monkeypatch.setattr(auto, "calibrate", calibrate)
    return asked


MEASURED = [
    Measurement("torch", "fp32", 100.0, 1.0),
    Measurement("onnx", "fp32", 150.0, 1.0),
    Measurement("openvino", "fp32", 180.0, 1.0),
    Measurement("torch", "bf16", 160.0, 0.9995),
    Measurement("openvino", "bf16", 300.0, 0.9999),
    Measurement("onnx", "int8", 250.0, 0.98),
    Measurement("openvino", "int8", 320.0, 0.985),
]


def test_auto_measures_once_then_reads_the_cache_and_loads_a_real_encoder(
    tiny_dir, cache, monkeypatch
):
    monkeypatch.setattr(auto, "PASSES", 1)  # each candidate in a process of its own: 3 processes
    exact = uniembed.load(tiny_dir, device="cpu")
    first = uniembed.load(tiny_dir, backend="auto")
    choice = first.auto_choice
    assert not choice.from_cache
    assert (choice.backend, choice.precision) in {
        ("torch", "fp32"),
        ("onnx", "fp32"),
        ("openvino", "fp32"),
    }
    measured = {m.label: m for m in choice.measurements}
    assert set(measured) == {"torch fp32", "onnx fp32", "openvino fp32"}
    assert all(m.texts_per_s > 0 and m.worst_cosine > 0.9999 for m in measured.values())
    texts = ["a cat on a mat", "the dog sat on the sun"]
    # fp32 on any backend: the exact vectors, and the same fingerprint as torch's
    np.testing.assert_allclose(first.encode(texts), exact.encode(texts), atol=1e-5)
    assert first.fingerprint == exact.fingerprint
    assert "auto chose" in choice.reason and choice.machine["cpu"] in choice.reason

    monkeypatch.setattr(auto, "calibrate", lambda *a: pytest.fail("measured again"))
    again = uniembed.load(tiny_dir, backend="auto")
    assert again.auto_choice.from_cache
    assert (again.auto_choice.backend, again.auto_choice.precision) == (
        choice.backend,
        choice.precision,
    )


def test_the_floor_decides_and_another_floor_needs_no_new_measurement(tiny_dir, cache, monkeypatch):
    asked = fake_calibration(monkeypatch, MEASURED)
    choice = auto.choose(tiny_dir, "w1", list(auto.CANDIDATES), 0.999, None, lambda b, p: None)
    assert (choice.backend, choice.precision) == (
        "openvino",
        "bf16",
    )  # int8 is faster, below the floor
    lowered = auto.choose(tiny_dir, "w1", list(auto.CANDIDATES), 0.98, None, lambda b, p: None)
    assert (lowered.backend, lowered.precision) == ("openvino", "int8")
    assert lowered.from_cache and len(asked) == 1
    exact_only = auto.choose(
        tiny_dir, "w1", [c for c in auto.CANDIDATES if c[1] == "fp32"], 0.999, None, None
    )
    assert (exact_only.backend, exact_only.precision) == ("openvino", "fp32")


def test_a_record_from_another_machine_or_model_version_is_measured_again_with_a_log_line(
    tiny_dir, cache, monkeypatch, caplog
):
    asked = fake_calibration(monkeypatch, MEASURED)
    auto.choose(tiny_dir, "weights-1", list(auto.CANDIDATES), 0.999, None, None)
    path = auto.record_path(tiny_dir)
    record = json.loads(path.read_text())
    record["machine"]["cpu"] = "Another CPU"
    path.write_text(json.dumps(record))
    with caplog.at_level(logging.WARNING, logger="uniembed.encoders.auto"):
        auto.choose(tiny_dir, "weights-1", list(auto.CANDIDATES), 0.999, None, None)
    assert len(asked) == 2 and "another machine" in caplog.text and "Another CPU" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="uniembed.encoders.auto"):
        auto.choose(tiny_dir, "weights-2", list(auto.CANDIDATES), 0.999, None, None)
    assert len(asked) == 3 and "another model version" in caplog.text
    path.write_text("{ not json")
    auto.choose(tiny_dir, "weights-2", list(auto.CANDIDATES), 0.999, None, None)
    assert len(asked) == 4


def test_a_backend_that_cannot_load_is_skipped_with_its_reason(tiny_dir, cache, monkeypatch):
    """Through the real child process: a candidate whose load fails there is skipped, with the
    child's one-line reason; the others are measured."""
    from uniembed.encoders.kinds import LoadOptions

    monkeypatch.setattr(auto, "PASSES", 1)
    measure = auto.measure_in_a_process(tiny_dir, LoadOptions(device="cpu", max_tokens=10_000))
    with pytest.raises(auto.Unavailable, match="^InputError: max_tokens=10000 exceeds"):
        measure("onnx", "fp32", cache)  # the child's own one-line reason
    measure = auto.measure_in_a_process(tiny_dir, LoadOptions(device="cpu"))

    def torch_only(backend, precision, texts):
        if backend != "torch":
            raise auto.Unavailable("ImportError: No module named 'openvino'")
        return measure(backend, precision, texts)

    by_label = {
        m.label: m for m in auto.calibrate([("torch", "fp32"), ("openvino", "fp32")], torch_only)
    }
    assert by_label["openvino fp32"].skipped == "ImportError: No module named 'openvino'"
    assert by_label["torch fp32"].texts_per_s > 0 and by_label["torch fp32"].worst_cosine == 1.0


def test_without_torch_fp32_there_is_nothing_to_measure_fidelity_against(tiny_dir, cache):
    def nothing_runs(backend, precision, texts):
        raise auto.Unavailable("ImportError: no runtime")

    with pytest.raises(InputError, match="against torch fp32, which cannot run here"):
        auto.calibrate([("torch", "fp32")], nothing_runs)


def test_nothing_meeting_the_floor_is_a_clear_error(tiny_dir, cache, monkeypatch):
    fake_calibration(monkeypatch, [Measurement("torch", "fp32", 10.0, 0.99)])
    with pytest.raises(InputError, match="min_cosine=0.999"):
        auto.choose(tiny_dir, "w", [("torch", "fp32")], 0.999, None, None)


@pytest.mark.parametrize("floor", [0, -0.5, 1.5, float("nan"), "high", True])
def test_a_floor_outside_0_1_is_refused(tiny_dir, cache, floor):
    with pytest.raises(InputError, match=r"min_cosine must be a number in \(0, 1\]"):
        uniembed.load(tiny_dir, backend="auto", min_cosine=floor)


def test_a_floor_without_auto_is_refused(tiny_dir):
    with pytest.raises(InputError, match="applies to backend='auto'"):
        uniembed.load(tiny_dir, min_cosine=0.99)


def test_auto_refuses_gpus_other_model_kinds_and_bad_names(tiny_dir, cache, tmp_path):
    with pytest.raises(InputError, match="choose for the CPU"):
        uniembed.load(tiny_dir, backend="auto", device="cuda")
    with pytest.raises(InputError, match="backend must be one of"):
        uniembed.load(tiny_dir, backend="fastest")
    with pytest.raises(InputError, match="precision for the onnx backend must be one of"):
        uniembed.load(tiny_dir, backend="onnx", precision="bf16")
    from uniembed.encoders.static import distill

    static = distill(uniembed.load(tiny_dir, device="cpu"), tmp_path / "static", dim=8)
    with pytest.raises(InputError, match="static model"):
        uniembed.load(static, backend="auto")


def test_precision_auto_on_one_backend_chooses_among_its_precisions_only():
    from uniembed.encoders.load import PRECISIONS

    assert auto.candidates_for("onnx", "auto", PRECISIONS) == [("onnx", "fp32"), ("onnx", "int8")]
    assert auto.candidates_for("auto", "fp32", PRECISIONS) == [
        ("torch", "fp32"),
        ("onnx", "fp32"),
        ("openvino", "fp32"),
    ]
    assert auto.candidates_for("auto", "auto", PRECISIONS) == list(auto.CANDIDATES)


def test_the_cli_says_what_auto_chose_and_refuses_a_bad_floor_in_one_line(
    tiny_dir, cache, monkeypatch, capsys, tmp_path
):
    from uniembed.cli.main import main

    # a choice that loads on any CPU (bfloat16 needs AVX512-BF16 or AMX)
    fake_calibration(
        monkeypatch,
        [
            Measurement("torch", "fp32", 100.0, 1.0),
            Measurement("onnx", "fp32", 300.0, 1.0),
            Measurement("openvino", "int8", 400.0, 0.985),
        ],
    )
    code = main(["models", "--auto", "--model", str(tiny_dir)])
    out = capsys.readouterr().out
    assert code == 0 and "auto chose onnx fp32" in out
    assert "openvino int8" in out and "0.98500" in out and "<- chosen" in out
    assert "openvino bf16" in out and "skipped: not in this fake" in out
    code = main(["models", "--auto", "--model", str(tiny_dir), "--json"])
    record = json.loads(capsys.readouterr().out)
    assert (record["backend"], record["precision"]) == ("onnx", "fp32")

    (tmp_path / "t.txt").write_text("a cat\n")
    out_file = tmp_path / "v.npy"
    code = main(
        ["embed", str(tmp_path / "t.txt"), "-o", str(out_file), "--model", str(tiny_dir)]
        + ["--backend", "auto", "--min-cosine", "1.5"]
    )
    err = capsys.readouterr().err
    assert code == 2 and "min_cosine must be a number in (0, 1], got 1.5" in err
    assert not out_file.exists()
    code = main(["models", "--min-cosine", "0.99"])
    assert code == 2 and "go with --auto" in capsys.readouterr().err


def test_serve_refuses_a_bad_floor_at_start():
    from uniembed.serve.settings import ServeSettings

    with pytest.raises(InputError, match="min_cosine must be a number"):
        ServeSettings(backend="auto", min_cosine=0.0)
    with pytest.raises(InputError, match="applies to backend='auto'"):
        ServeSettings(min_cosine=0.99)
