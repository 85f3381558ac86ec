"""Reading a model directory's JSON files: one error (ModelLoadError naming the file) for a file
that is missing, unreadable or not JSON. Shared by the encoders and the image preprocessing."""

from __future__ import annotations

import json
from pathlib import Path

from uniembed.errors import ModelLoadError


def read_json(path: Path) -> dict | list:
    """The parsed JSON of `path`; ModelLoadError naming the file otherwise."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ModelLoadError(f"{path} is not valid JSON: {exc}") from exc
    except OSError as exc:
        raise ModelLoadError(f"cannot read {path}: {exc.strerror or exc}") from exc
