"""The model kinds `load()` knows, registered in one place: each kind says how to recognise its
directory (from its files alone, cheaply) and how to load it, and `load()` walks the registry in
order, the first kind that recognises a directory loading it. A new kind (a reranker, a sparse
encoder) registers itself here instead of adding a branch to `load()`; the kinds uniembed ships are
registered at the bottom of `load.py`.

Each kind also names the `load()` options it takes: an option given to a kind that does not take
it is refused, naming the option and why the kind fixes it, instead of being ignored.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path

from uniembed.errors import InputError


@dataclass(frozen=True)
class LoadOptions:
    """Every option of `load()` but the model itself, as given (None: the model's own setting)."""

    backend: str = "torch"
    precision: str = "fp32"
    device: str | None = None
    pooling: str | None = None
    max_tokens: int | None = None
    padding_side: str | None = None
    chunk_overlap: int = 32
    threads: int | None = None
    token_budget: int = 16384
    layers: int | None = None
    dim: int | None = None

    def given(self) -> list[str]:
        """The options set away from their defaults, in declaration order."""
        return [f.name for f in fields(self) if getattr(self, f.name) != f.default]


@dataclass(frozen=True)
class ModelKind:
    """One kind of model directory: how to recognise it and how to load it."""

    name: str
    recognise: Callable[[Path], bool]  # looks at the directory's files; loads nothing
    load: Callable[[str, Path, LoadOptions], object]  # (name, directory, options) -> an Encoder
    # the options this kind takes; None: all of them. device and threads apply to every kind.
    takes: frozenset[str] | None = None
    label: str = ""  # how errors name the kind ("bound", "CLIP"); default: its name
    fixed_by: str = "its files fix them"  # why it takes no other options, for the error

    def check_options(self, options: LoadOptions) -> None:
        """InputError naming the options this kind does not take, when any was given."""
        if self.takes is None:
            return
        refused = [o for o in options.given() if o not in self.takes | {"device", "threads"}]
        if refused:
            raise InputError(
                f"{', '.join(refused)}: not options of {self.label or self.name} models "
                f"({self.fixed_by})"
            )


_KINDS: list[ModelKind] = []


def register_kind(kind: ModelKind, *, before: str | None = None) -> None:
    """Add a kind; `before` puts it ahead of a registered kind (recognition is first match)."""
    if any(k.name == kind.name for k in _KINDS):
        raise ValueError(f"a model kind named {kind.name!r} is already registered")
    names = [k.name for k in _KINDS]
    if before is not None and before not in names:
        raise ValueError(f"no model kind {before!r} to register before; kinds are: {names}")
    _KINDS.insert(names.index(before) if before else len(_KINDS), kind)


def unregister_kind(name: str) -> None:
    """Remove a registered kind (a plugin unloaded, a test done with its kind)."""
    if not any(k.name == name for k in _KINDS):
        raise ValueError(f"no model kind {name!r} is registered")
    _KINDS[:] = [k for k in _KINDS if k.name != name]


def model_kinds() -> tuple[ModelKind, ...]:
    """The registered kinds, in the order `load()` tries them."""
    return tuple(_KINDS)


def kind_of(directory: Path) -> ModelKind:
    """The first registered kind that recognises `directory`."""
    for kind in _KINDS:
        if kind.recognise(directory):
            return kind
    raise InputError(f"{directory} is not a model directory any registered kind recognises")
