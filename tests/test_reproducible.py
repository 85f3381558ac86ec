"""A text's vector is the same bits whatever it is batched with (encoders/reproducible.py, batching.py)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from helpers import WORDS


def test_vectors_do_not_depend_on_batch_size_or_threads(tiny_model):
    torch = pytest.importorskip("torch")
    from uniembed.encoders.reproducible import strict_blas

    if strict_blas() is None:
        pytest.skip(
            "this torch has no MKL: batch invariance there is to float32 rounding only (README)"
        )
    assert strict_blas() is True
    rng = np.random.default_rng(0)
    texts = [" ".join(rng.choice(WORDS, rng.integers(1, 14))) for _ in range(600)]
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(
            2
        )  # small products split over 2 threads differed by 1e-7 without strict mode
        reference = tiny_model.encode(texts, batch_size=600, show_progress=False)
        for batch_size in (1, 2, 3, 7):
            assert np.array_equal(
                tiny_model.encode(texts, batch_size=batch_size, show_progress=False), reference
            )
        torch.set_num_threads(1)
        assert np.array_equal(
            tiny_model.encode(texts[::-1], batch_size=5, show_progress=False), reference[::-1]
        )
    finally:
        torch.set_num_threads(threads)


def test_torch_started_before_uniembed_is_reported(tiny_dir):
    pytest.importorskip("torch")
    script = (
        "import torch; torch.ones(2, 2) @ torch.ones(2, 2)\n"
        "import uniembed; from uniembed.encoders.reproducible import strict_blas\n"
        f"uniembed.load({str(tiny_dir)!r}); print('strict', strict_blas())\n"
    )
    env = {"PATH": "/usr/bin:/bin", "HOME": "/tmp"}  # no MKL_CBWR inherited from this process
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    if "strict None" in done.stdout:
        pytest.skip("this torch has no MKL")
    assert "strict False" in done.stdout
    assert "not in strict reproducible mode (it ran before `import uniembed`" in done.stderr
