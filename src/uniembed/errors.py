"""The errors uniembed raises on bad input, so callers (and the CLI) can catch them in one place.

Every message names the bad value: the file, the line or index, the column, the model directory.
"""

from __future__ import annotations


class UniembedError(Exception):
    """Base class of every error uniembed raises on purpose."""


class InputError(UniembedError, ValueError):
    """User input is malformed: a None item, an unknown column, an empty list, a bad option."""


class NotFoundError(InputError):
    """What the caller names does not exist (a collection, an upgrade in progress): 404 over HTTP.
    An InputError too, so code that catches bad input keeps catching it."""


class ConflictError(InputError):
    """The request is well formed but the state forbids it now: a name or an id already taken,
    a backfill running, a collection dropped meanwhile: 409 over HTTP. An InputError too."""


class ModelLoadError(UniembedError):
    """A model could not be loaded: missing or corrupt files, no network for a hub id."""


class IntegrityError(ModelLoadError):
    """A weights file does not have the SHA-256 it must have."""


class MissingExtraError(UniembedError, ImportError):
    """An optional dependency group is not installed."""


class CollectionDamagedError(UniembedError):
    """A collection's files on disk are unreadable or inconsistent (edited by hand, truncated)."""


class ModelOutputError(UniembedError):
    """A model produced vectors that are not finite numbers (NaN or inf): its weights are broken."""


class CollectionLockedError(UniembedError):
    """Another process is writing to the collection."""


class StoreUnavailableError(UniembedError):
    """A collection's database cannot be reached or refuses us: down, a wrong address or password."""
