"""kill -9 a writer at random moments: every acknowledged write survives and the collection opens."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]  # bench/ is a package run from here (issue 31)


@pytest.mark.parametrize(
    "kind", [[], ["--multivector"], ["--images"]], ids=["single-vector", "multi-vector", "image"]
)
def test_acknowledged_writes_survive_sigkill(kind):
    out = subprocess.run(
        [sys.executable, "-m", "bench.durability", "--rounds", "3", "--json", "--seed", "1", *kind],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["kills"] == 3 and result["opened after kill"] == 3
    assert result["acknowledged writes"] > 0 and result["lost writes"] == 0
