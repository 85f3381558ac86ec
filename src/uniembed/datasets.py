"""Data sets shipped inside the package, so the demo runs with no download."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def banking77_dir() -> Path:
    """Folder with train.csv.gz and test.csv.gz: a Banking77 subset (CC BY 4.0, see ATTRIBUTION.md)."""
    return Path(str(files("uniembed") / "data" / "banking77"))


def clipart_file() -> Path:
    """clipart-demo.parquet: 300 public-domain clip-art images with titles (see its ATTRIBUTION.md)."""
    return Path(str(files("uniembed") / "data" / "clipart" / "clipart-demo.parquet"))
