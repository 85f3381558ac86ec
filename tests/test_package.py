"""Package-level promises: a light import, and extras that say what to install."""

from __future__ import annotations

import subprocess
import sys

import pytest

from uniembed import MissingExtraError
from uniembed._extras import require


@pytest.mark.parametrize(
    "module",
    ["uniembed", "uniembed.serve", "uniembed.train", "uniembed.graph", "uniembed.multivector"],
)
def test_import_loads_nothing_heavy(module):
    heavy = ("torch", "transformers", "sklearn", "pyarrow", "fastapi", "lancedb")
    code = f"import sys, {module}; print(sorted(m for m in {heavy!r} if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_missing_extra_names_the_pip_command(monkeypatch):
    import importlib

    from uniembed import _extras

    real_import_module = importlib.import_module

    def without_pyarrow(name, *args):
        if name == "pyarrow":
            raise ImportError("No module named 'pyarrow'")
        return real_import_module(name, *args)

    monkeypatch.setattr(_extras.importlib, "import_module", without_pyarrow)
    with pytest.raises(MissingExtraError, match=r'pip install "uniembed\[parquet\]"'):
        require("parquet")
    require("eval")  # installed extras pass
