"""Metadata filters on payload fields: parsed once into conditions, then either evaluated as a
numpy mask over in-memory columns or compiled to a SQL `where` for the store's text search.

Python: {"lang": "en", "year": {">=": 2020}, "tag": {"in": ["a", "b"]}, "author": {"exists": True}}
CLI:    'lang=en' 'year>=2020' 'tag in (a,b)' 'exists(author)' 'lang!=fr', joined with ' and '
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from uniembed.errors import InputError

OPERATORS = ("=", "!=", "<", "<=", ">", ">=", "in", "exists")
_CLAUSE = re.compile(r"^\s*(?P<field>[A-Za-z_]\w*)\s*(?P<op>!=|>=|<=|=|<|>|\s+in\s+)\s*(?P<value>.+?)\s*$", re.IGNORECASE)
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
        conditions = [_parse_clause(clause) for clause in re.split(r"\s+and\s+", spec.strip(), flags=re.IGNORECASE)]
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
        raise InputError(f"cannot parse filter {clause!r}; use field=value, field>=value, field in (a,b) or exists(field)")
    op = match["op"].strip().lower()
    value = match["value"]
    if op == "in":
        if not (value.startswith("(") and value.endswith(")")):
            raise InputError(f"filter {clause!r}: 'in' needs a list in parentheses, e.g. lang in (en,fr)")
        return Condition(match["field"], "in", [_unquote(v) for v in value[1:-1].split(",")])
    return Condition(match["field"], op, _unquote(value))


def _unquote(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


def _from_dict(field: object, rule: object) -> list[Condition]:
    if not isinstance(rule, dict):
        return [Condition(str(field), "=", rule)]
    conditions = []
    for op, value in rule.items():
        if op not in OPERATORS:
            raise InputError(f"unknown filter operator {op!r} on {field!r}; operators: {list(OPERATORS)}")
        conditions.append(Condition(str(field), op, value))
    return conditions


def _typed(condition: Condition, field_types: dict[str, str]) -> Condition:
    if condition.field not in field_types:
        known = ", ".join(sorted(field_types)) or "(none yet)"
        raise InputError(f"unknown filter field {condition.field!r}; filterable payload fields: {known}")
    kind = field_types[condition.field]
    if condition.op == "exists":
        return Condition(condition.field, "exists", bool(condition.value))
    if condition.op == "in":
        values = condition.value if isinstance(condition.value, (list, tuple, set)) else [condition.value]
        return Condition(condition.field, "in", [_convert(v, kind, condition.field) for v in values])
    if kind in ("string", "bool") and condition.op in ("<", "<=", ">", ">="):
        raise InputError(f"filter on {condition.field!r} ({kind}): operator {condition.op!r} needs a number field")
    return Condition(condition.field, condition.op, _convert(condition.value, kind, condition.field))


def _convert(value: object, kind: str, field: str):
    try:
        if kind == "string":
            if not isinstance(value, (str, int, float)) or isinstance(value, bool):
                raise ValueError
            return str(value)
        if kind == "bool":
            if isinstance(value, bool):
                return value
            if str(value).lower() in ("true", "false"):
                return str(value).lower() == "true"
            raise ValueError
        if isinstance(value, bool):
            raise ValueError
        return int(value) if kind == "int" and float(value) == int(float(value)) else float(value)
    except (TypeError, ValueError):
        raise InputError(f"filter value {value!r} does not fit field {field!r} of type {kind}") from None


# -- evaluation ----------------------------------------------------------------------------------
def filter_mask(conditions: list[Condition], columns: dict[str, tuple[np.ndarray, np.ndarray]], n: int) -> np.ndarray | None:
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
        return np.isin(values, np.asarray(value, dtype=values.dtype))
    return {
        "=": np.equal, "!=": np.not_equal, "<": np.less, "<=": np.less_equal, ">": np.greater, ">=": np.greater_equal,
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
        return f"{column} IN ({', '.join(_sql_literal(v) for v in c.value)})"
    return f"{column} {'<>' if c.op == '!=' else c.op} {_sql_literal(c.value)}"
