"""Filter parsing, typing, numpy evaluation and SQL compilation."""
from __future__ import annotations

import numpy as np
import pytest

from uniembed import InputError
from uniembed.store.filters import Condition, filter_mask, parse_filter, to_sql

TYPES = {"lang": "string", "year": "int", "score": "float", "draft": "bool"}


def test_string_and_dict_forms_parse_to_the_same_conditions():
    from_string = parse_filter("lang=en and year>=2020 and lang in (en, 'fr') and exists(score)", TYPES)
    from_dict = parse_filter({"lang": "en", "year": {">=": 2020}}, TYPES) + parse_filter(
        {"lang": {"in": ["en", "fr"]}, "score": {"exists": True}}, TYPES)
    assert from_string == from_dict == [
        Condition("lang", "=", "en"), Condition("year", ">=", 2020), Condition("lang", "in", ["en", "fr"]),
        Condition("score", "exists", True),
    ]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("author=x", "unknown filter field 'author'; filterable payload fields: draft, lang, score, year"),
        ({"year": {"~": 3}}, "unknown filter operator '~'"),
        ("year>=soon", "filter value 'soon' does not fit field 'year' of type int"),
        ("lang>en", "operator '>' needs a number field"),
        ("year in 2020", "'in' needs a list in parentheses"),
        ("year", "cannot parse filter 'year'"),
        (42, "filter must be a dict or a string"),
    ],
)
def test_bad_filters_are_refused_naming_the_problem(spec, message):
    with pytest.raises(InputError, match=message):
        parse_filter(spec, TYPES)


def test_mask_evaluates_every_operator():
    columns = {
        "lang": (np.array(["en", "fr", "", "en"], dtype=object), np.array([True, True, False, True])),
        "year": (np.array([2019, 2021, 0, 2020]), np.array([True, True, False, True])),
    }

    def rows(spec):
        return list(np.flatnonzero(filter_mask(parse_filter(spec, TYPES), columns, 4)))

    assert rows("lang=en") == [0, 3]
    assert rows("lang!=en") == [1]  # a missing value matches no comparison
    assert rows("year>2019 and year<=2021") == [1, 3]
    assert rows("lang in (fr, de)") == [1]
    assert rows({"lang": {"exists": False}}) == [2]
    assert filter_mask([], columns, 4) is None


def test_sql_quotes_values_and_names_columns():
    conditions = parse_filter({"lang": {"in": ["en", "o'k"]}, "year": {"!=": 3}, "draft": True, "score": {"exists": False}}, TYPES)
    assert to_sql(conditions, lambda f: f"p_{f}") == (
        "p_lang IN ('en', 'o''k') AND p_year <> 3 AND p_draft = TRUE AND p_score IS NULL"
    )
