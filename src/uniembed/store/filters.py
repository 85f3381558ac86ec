"""Metadata filters on payload fields: parsed once into conditions, then either evaluated as a
numpy mask over in-memory columns or compiled to a SQL `where` for the store's text search.

Python: {"lang": "en", "year": {">=": 2020}, "tag": {"in": ["a", "b"]}, "author": {"exists": True}}
CLI:    'lang=en' 'year>=2020' 'tag in (a,b)' 'exists(author)' 'lang!=fr', joined with ' and '
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from uniembed._text import encodable
from uniembed.errors import InputError

OPERATORS = ("=", "!=", "<", "<=", ">", ">=", "in", "exists")
_CLAUSE = re.compile(
    r"^\s*(?P<field>[A-Za-z_]\w*)\s*(?P<op>!=|>=|<=|=|<|>|\s+in\s+)\s*(?P<value>.+?)\s*$",
    re.IGNORECASE,
)
_EXISTS = re.compile(r"^\s*exists\(\s*(?P<field>[A-Za-z_]\w*)\s*\)\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class Condition:
    field: str
    op: str
    value: object = None


def parse_filter(spec: object, field_types: dict[str, str]) -> list[Condition]:
    """Conditions (all must hold) from a dict or a filter string, checked against the payload
    fields the collection knows; InputError names an unknown field, operator or bad value."""
    if spec is None or spec == "" or spec == {}:
        return []
    if isinstance(spec, str):
        conditions = [
            _parse_clause(clause)
            for clause in re.split(r"\s+and\s+", spec.strip(), flags=re.IGNORECASE)
        ]
    elif isinstance(spec, dict):
        conditions = [c for field, rule in spec.items() for c in _from_dict(field, rule)]
    else:
        raise InputError(f"filter must be a dict or a string, got {type(spec).__name__}")
    return [_typed(condition, field_types) for condition in conditions]


def _parse_clause(clause: str) -> Condition:
    exists = _EXISTS.match(clause)
    if exists:
        return Condition(exists["field"], "exists", True)
    match = _CLAUSE.match(clause)
    if not match:
        raise InputError(
            f"cannot parse filter {clause!r}; use field=value, field>=value, field in (a,b) or exists(field)"
        )
    op = match["op"].strip().lower()
    value = match["value"]
    if op == "in":
        if not (value.startswith("(") and value.endswith(")")):
            raise InputError(
                f"filter {clause!r}: 'in' needs a list in parentheses, e.g. lang in (en,fr)"
            )
        return Condition(
            match["field"], "in", [_unquote(v, clause) for v in value[1:-1].split(",")]
        )
    return Condition(match["field"], op, _unquote(value, clause))


def _unquote(text: str, clause: str) -> str:
    """A quoted value without its quotes, or a plain one; a value that starts like an operator or
    holds a stray quote is a typo ("year==2020", "lang='en' and"), not a value to match."""
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    if text[:1] in "=<>!" or "'" in text or '"' in text:
        raise InputError(
            f"cannot parse filter {clause!r}: {text!r} is neither a plain value nor a quoted one "
            "(one operator per condition, conditions joined by 'and')"
        )
    return text


def _from_dict(field: object, rule: object) -> list[Condition]:
    if not isinstance(rule, dict):
        return [Condition(str(field), "=", rule)]
    conditions = []
    for op, value in rule.items():
        if op not in OPERATORS:
            raise InputError(
                f"unknown filter operator {op!r} on {field!r}; operators: {list(OPERATORS)}"
            )
        conditions.append(Condition(str(field), op, value))
    return conditions


def _typed(condition: Condition, field_types: dict[str, str]) -> Condition:
    if condition.field not in field_types:
        known = ", ".join(sorted(field_types)) or "(none yet)"
        raise InputError(
            f"unknown filter field {condition.field!r}; filterable payload fields: {known}"
        )
    kind = field_types[condition.field]
    if condition.op == "exists":
        return Condition(condition.field, "exists", bool(condition.value))
    if condition.op == "in":
        values = (
            condition.value
            if isinstance(condition.value, (list, tuple, set))
            else [condition.value]
        )
        converted = [_convert(v, kind, condition.field) for v in values]
        if (
            kind == "int"
        ):  # an int field holds no 2000.5 and nothing beyond int64: such values match nothing
            converted = [v for v in converted if _is_int64(v)]
        return Condition(condition.field, "in", converted)
    if kind in ("string", "bool") and condition.op in ("<", "<=", ">", ">="):
        raise InputError(
            f"filter on {condition.field!r} ({kind}): operator {condition.op!r} needs a number field"
        )
    value = _convert(condition.value, kind, condition.field)
    if kind == "int" and not _is_int64(value):
        return _on_int_field(condition.field, condition.op, value)
    return Condition(condition.field, condition.op, value)


INT64 = (-(2**63), 2**63 - 1)


def _is_int64(value) -> bool:
    return isinstance(value, int) and INT64[0] <= value <= INT64[1]


def _on_int_field(field: str, op: str, value: float) -> Condition:
    """A comparison of an int field with a value no int64 equals (2000.5, 1e30), as an exact
    integer comparison: `year < 2000.5` is `year <= 2000`; `year = 2000.5` matches nothing.
    Numpy would cast the value to int (2000.5 -> 2000) and SQL engines differ."""
    everything, nothing = Condition(field, "exists", True), Condition(field, "in", [])
    if value > INT64[1] or value < INT64[0]:
        above = value > INT64[1]
        if op == "!=" or (op in ("<", "<=") and above) or (op in (">", ">=") and not above):
            return everything
        return nothing
    if op in ("=", "!="):
        return nothing if op == "=" else everything
    floor = math.floor(value)
    return Condition(field, "<=" if op in ("<", "<=") else ">", floor)


def _convert(value: object, kind: str, field: str):
    """The filter value as the field's type; numbers must be finite. For an int field, an
    integral value comes back as an int and anything else as a float (see _on_int_field)."""
    if kind == "string" and isinstance(value, str):
        _no_nul(value, field)
    try:
        if kind == "string":
            if (
                not isinstance(value, (str, int, float))
                or isinstance(value, bool)
                or not encodable(str(value))
            ):
                raise ValueError
            if isinstance(value, float) and not math.isfinite(value):
                # a number compared as its text: inf and nan are no numbers a payload holds
                raise InputError(
                    f"filter value {value!r:.60} on field {field!r} is not a finite number"
                )
            return str(value)
        if kind == "bool":
            if isinstance(value, bool):
                return value
            if str(value).lower() in ("true", "false"):
                return str(value).lower() == "true"
            raise ValueError
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ValueError
        if kind == "int":
            exact = _exact_int(value)
            if exact is not None:
                return exact
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise InputError(
            f"filter value {value!r:.60} does not fit field {field!r} of type {kind}"
        ) from None
    if not math.isfinite(number):
        raise InputError(f"filter value {value!r:.60} on field {field!r} is not a finite number")
    return number


def _no_nul(value: str, field: str) -> None:
    if (
        "\x00" in value
    ):  # no home stores NUL (store/rows.py), and PostgreSQL cannot even be sent one
        raise InputError(
            f"filter value {value!r:.60} on field {field!r} holds the NUL character (\\x00), "
            "which no collection stores"
        )


def _exact_int(value: int | float | str) -> int | None:
    """`value` as an exact integer when it is one ("2020", 2020, 2020.0, "1e3"), else None."""
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    number = float(value)
    return int(number) if math.isfinite(number) and number.is_integer() else None


# -- evaluation ----------------------------------------------------------------------------------
def filter_mask(
    conditions: list[Condition], columns: dict[str, tuple[np.ndarray, np.ndarray]], n: int
) -> np.ndarray | None:
    """Boolean mask of rows meeting every condition; columns map field -> (values, present mask).
    None when there are no conditions."""
    if not conditions:
        return None
    mask = np.ones(n, dtype=bool)
    for c in conditions:
        values, present = columns[c.field]
        if c.op == "exists":
            mask &= present if c.value else ~present
            continue
        mask &= present & _compare(values, c.op, c.value)
    return mask


def _compare(values: np.ndarray, op: str, value) -> np.ndarray:
    if op == "in":
        return (
            np.isin(values, np.asarray(value, dtype=values.dtype))
            if len(value)
            else np.zeros(len(values), bool)
        )
    return {
        "=": np.equal,
        "!=": np.not_equal,
        "<": np.less,
        "<=": np.less_equal,
        ">": np.greater,
        ">=": np.greater_equal,
    }[op](values, value)


def to_sql(conditions: list[Condition], column_of) -> str | None:
    """The conditions as a SQL boolean expression; `column_of(field)` names each field's column."""
    if not conditions:
        return None
    return " AND ".join(_sql_clause(c, column_of(c.field)) for c in conditions)


def _sql_literal(value) -> str:
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, (int, float)):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


def _sql_clause(c: Condition, column: str) -> str:
    if c.op == "exists":
        return f"{column} IS {'NOT ' if c.value else ''}NULL"
    if c.op == "in":
        return (
            f"{column} IN ({', '.join(_sql_literal(v) for v in c.value)})" if c.value else "FALSE"
        )
    return f"{column} {'<>' if c.op == '!=' else c.op} {_sql_literal(c.value)}"
