"""One table of bounds for every index parameter a user can set, checked where it enters.

FAISS aborts the process on values it never expected (HNSW with m=0 fails an assertion inside
the C++ code; m=-1 allocates without bound), so nothing reaches an index constructor unchecked:
`Collection.create` checks before anything is written, and `Collection.open` checks again, so a
collection.json edited by hand cannot take a server down either.
"""

from __future__ import annotations

from dataclasses import dataclass

from uniembed.errors import InputError


@dataclass(frozen=True)
class Param:
    """A parameter's default and what it may be: an integer in [low, high], or one of `choices`."""

    default: int | str
    low: int = 0
    high: int = 0
    choices: tuple[str, ...] = ()

    def check(self, kind: str, name: str, value: object) -> int | str:
        if self.choices:
            if value not in self.choices:
                raise InputError(
                    f"index {kind!r}: {name} must be one of {list(self.choices)}, got {value!r}"
                )
            return value
        # JSON clients may write an integer as 5.0; anything else that is not a whole number is refused
        whole = isinstance(value, float) and value.is_integer()
        if isinstance(value, bool) or not (isinstance(value, int) or whole):
            raise InputError(
                f"index {kind!r}: {name} must be an integer in [{self.low}, {self.high}], got {value!r}"
            )
        value = int(value)
        if not self.low <= value <= self.high:
            raise InputError(
                f"index {kind!r}: {name} must be in [{self.low}, {self.high}], got {value}"
            )
        return value


def check_params(kind: str, table: dict[str, Param], params: dict | None) -> dict:
    """The full, checked parameters (defaults filled in); InputError names the first bad one."""
    if params is not None and not isinstance(params, dict):
        raise InputError(f"index_params must be a dict (JSON object), got {type(params).__name__}")
    params = dict(params or {})
    unknown = sorted(map(str, set(params) - set(table)))
    if unknown:
        raise InputError(
            f"index {kind!r} has no parameter(s) {unknown}; its parameters: {sorted(table)}"
        )
    full = {name: spec.default for name, spec in table.items()}
    full.update({name: table[name].check(kind, name, value) for name, value in params.items()})
    return full


# Bounds: generous for real use, far from what makes FAISS abort or allocate without bound.
GRAPH_DEGREE = Param(32, 2, 256)  # HNSW links per node (FAISS asserts m > 0; memory grows with m)
EF = Param(128, 1, 10_000)  # HNSW candidate list while searching
RESCORE = Param(4, 1, 100)  # candidates fetched per wanted hit, then rescored exactly
