"""A collection's upgrade in progress, kept in its folder:

    <collection>/upgrade/state.json          the target model (name, fingerprint, dim), the old
                                             fingerprint, the adapter in use (a version number)
    <collection>/upgrade/adapter-v<N>.*      adapter N (safetensors + JSON), kept until finish
    <collection>/upgrade/next/               the backfill's vectors (upgrade/backfill.py)
    <collection>/upgrade/backfill.lock       held by the one backfill that may run

How searches stay right while it runs: every stored vector stays the old model's until `finish`,
and a query encoded by the target model goes through the adapter into the old space. So old and
backfilled items are scored in one space by one rule, at every moment; the new model's own
quality arrives at `finish`, when every item has a new vector and the collection switches.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from uniembed.errors import InputError

UPGRADE_DIR = "upgrade"
STATE_FILE = "state.json"


@dataclass
class UpgradeState:
    target_model: str  # what to load: a catalogue name, a folder
    target_name: str
    target_fingerprint: str
    target_dim: int
    old_fingerprint: str
    adapter_version: int | None = None  # adapter-v<N>; None until `fit`
    adapter_kind: str | None = None

    @property
    def adapter_stem(self) -> str | None:
        return None if self.adapter_version is None else f"adapter-v{self.adapter_version}"


def upgrade_dir(collection_path: Path) -> Path:
    return Path(collection_path) / UPGRADE_DIR


def read_state(collection_path: Path) -> UpgradeState | None:
    path = upgrade_dir(collection_path) / STATE_FILE
    if not path.is_file():
        return None
    try:
        return UpgradeState(**json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, TypeError) as exc:
        from uniembed.errors import CollectionDamagedError

        raise CollectionDamagedError(
            f"{path}: upgrade state damaged ({type(exc).__name__}: {exc})"
        ) from None


def write_state(collection_path: Path, state: UpgradeState) -> None:
    """Atomically (temp file, fsync, rename)."""
    from uniembed._atomic import replace_file

    folder = upgrade_dir(collection_path)
    folder.mkdir(exist_ok=True)
    tmp = folder / f".{STATE_FILE}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(asdict(state), f, indent=2)
        f.flush()
        os.fsync(f.fileno())
    replace_file(tmp, folder / STATE_FILE)


def query_adapter(collection_path: Path, old_fingerprint: str | None, model_fingerprint: str):
    """The adapter taking `model_fingerprint`'s query vectors into the collection's space, or None
    when no upgrade to that model has one."""
    from uniembed.spaces.adapters import Adapter

    state = read_state(collection_path)
    if state is None or state.adapter_stem is None or state.target_fingerprint != model_fingerprint:
        return None
    adapter = Adapter.load(upgrade_dir(collection_path), state.adapter_stem)
    check_adapter(adapter, old_fingerprint, model_fingerprint, where=str(collection_path))
    return adapter


def check_adapter(
    adapter, old_fingerprint: str | None, new_fingerprint: str, *, where: str
) -> None:
    """InputError unless the adapter maps `new_fingerprint`'s vectors into `old_fingerprint`'s space."""
    card = adapter.card
    if card.old_fingerprint != old_fingerprint:
        raise InputError(
            f"this adapter maps into the space of fingerprint {str(card.old_fingerprint)[:12]}, but "
            f"collection {where} holds vectors of fingerprint {str(old_fingerprint)[:12]}: it was "
            "fitted for another collection"
        )
    if card.new_fingerprint != new_fingerprint:
        raise InputError(
            f"this adapter takes vectors of fingerprint {str(card.new_fingerprint)[:12]}, not of the "
            f"model given (fingerprint {new_fingerprint[:12]})"
        )


class AdaptedQueries:
    """Encodes queries with the new model and maps them through the adapter (queries only: the
    collection's documents keep coming from its own model until the upgrade finishes)."""

    def __init__(self, model, adapter):
        self.model, self.adapter = model, adapter
        self.name = f"{model.name} (through adapter {adapter.card.kind})"

    def encode(self, texts, *, prompt=None, dim=None, show_progress=False):
        return self.adapter(self.model.encode(texts, prompt=prompt, show_progress=show_progress))
