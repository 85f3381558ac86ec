"""Where uniembed keeps what it can rebuild (exported ONNX models): $UNIEMBED_CACHE, else
$XDG_CACHE_HOME/uniembed, else ~/.cache/uniembed."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    if os.environ.get("UNIEMBED_CACHE"):
        return Path(os.environ["UNIEMBED_CACHE"])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "uniembed"
