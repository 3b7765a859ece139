"""Hypothesis strategies for contracts, the values they accept, and any values at all."""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Any

from hypothesis import strategies as st

from slipway.contracts.schema import Contract, FieldRule

# Patterns with a strategy for values that match them (and "!" never does).
PATTERNS = {r"[a-z]{1,5}": r"[a-z]{1,5}", r"[A-Z]{2}[0-9]{2}": r"[A-Z]{2}[0-9]{2}"}
FINITE = st.floats(allow_nan=False, allow_infinity=False, width=64)
SMALL_INT = st.integers(-1000, 1000)


@st.composite
def rules(draw: st.DrawFn, name: str) -> FieldRule:
    kind = draw(st.sampled_from(["int", "float", "bool", "string", "category", "datetime"]))
    kind = draw(st.sampled_from([kind, kind, "list_float"]))
    nullable = draw(st.booleans())
    lo = hi = allowed = pattern = max_length = None
    if kind in ("int", "float"):
        num = (
            SMALL_INT if kind == "int" else st.floats(-1000, 1000).map(lambda x: round(x, 2) + 0.0)
        )
        lo, hi = draw(st.none() | num), draw(st.none() | num)
        if lo is not None and hi is not None and lo > hi:
            lo, hi = hi, lo
        if kind == "int" and draw(st.booleans()):
            a = int(lo) if lo is not None else (int(hi) - 100 if hi is not None else -50)
            b = int(hi) if hi is not None else a + 100
            allowed = tuple(draw(st.lists(st.integers(a, b), min_size=1, max_size=4, unique=True)))
        if kind == "float":
            lo = float(lo) if lo is not None else None
            hi = float(hi) if hi is not None else None
    if kind in ("string", "category"):
        if draw(st.booleans()):
            pattern = draw(st.sampled_from(sorted(PATTERNS)))
        max_length = draw(st.none() | st.integers(5, 12))
        if kind == "category" or draw(st.booleans()):
            values = _text_values(pattern, max_length)
            allowed = tuple(draw(st.lists(values, min_size=1, max_size=4, unique=True)))
    if kind == "list_float":
        max_length = draw(st.none() | st.integers(0, 4))
    return FieldRule(
        name,
        kind,
        nullable=nullable,
        min=lo,
        max=hi,
        allowed=allowed,
        pattern=pattern,
        max_length=max_length,
        coerce=draw(st.booleans()) if kind in ("int", "float", "bool") else False,
    )


@st.composite
def contracts(draw: st.DrawFn, max_fields: int = 5) -> Contract:
    n = draw(st.integers(1, max_fields))
    return Contract(tuple(draw(rules(f"f{i}")) for i in range(n)))


def _text_values(pattern: str | None, max_length: int | None) -> st.SearchStrategy[str]:
    if pattern:
        return st.from_regex(PATTERNS[pattern], fullmatch=True)
    return st.text(max_size=max_length if max_length is not None else 10)


def valid_values(rule: FieldRule) -> st.SearchStrategy[Any]:
    """Values ``rule`` accepts (never null)."""
    if rule.allowed is not None:
        return st.sampled_from(rule.allowed)
    kind = rule.type
    if kind == "int":
        return st.integers(
            int(rule.min) if rule.min is not None else -(10**6),
            int(rule.max) if rule.max is not None else 10**6,
        )
    if kind == "float":
        return st.floats(rule.min, rule.max, allow_nan=False, allow_infinity=False)
    if kind == "bool":
        return st.booleans()
    if kind in ("string", "category"):
        return _text_values(rule.pattern, rule.max_length)
    if kind == "datetime":
        return st.datetimes().map(datetime.isoformat)
    return st.lists(FINITE, max_size=rule.max_length if rule.max_length is not None else 5)


def row_values(rule: FieldRule) -> st.SearchStrategy[Any]:
    """Valid, null, or anything JSON-ish; for checks that must hold whatever comes in."""
    return st.one_of(
        valid_values(rule),
        st.none(),
        st.integers(-(10**6), 10**6),
        st.floats(),
        st.booleans(),
        st.text(max_size=14),
        st.sampled_from(["3", "2.5", "true", "2024-01-02", "nope", "AB12", "abc"]),
        st.lists(st.floats() | st.integers(-5, 5) | st.booleans(), max_size=5),
    )


@st.composite
def valid_rows(draw: st.DrawFn, contract: Contract) -> dict[str, Any]:
    row = {}
    for rule in contract.inputs:
        if rule.nullable and draw(st.integers(0, 4)) == 0:
            if draw(st.booleans()):
                row[rule.name] = None
            continue
        row[rule.name] = draw(valid_values(rule))
    return row


def satisfies(rule: FieldRule, value: Any) -> bool:
    """An independent statement of what a field accepts, to test check_value against."""
    if value is None:
        return rule.nullable
    kind = rule.type
    if kind in ("int", "float"):
        if rule.coerce and isinstance(value, str):
            try:
                value = int(value)
            except ValueError:
                try:
                    value = float(value)
                except ValueError:
                    return False
        if type(value) not in (int, float) or not math.isfinite(value):
            return False
        if kind == "int" and value != int(value):
            return False
        if rule.min is not None and value < rule.min:
            return False
        if rule.max is not None and value > rule.max:
            return False
    elif kind == "bool":
        if rule.coerce and isinstance(value, str) and value.lower() in ("true", "false"):
            value = value.lower() == "true"
        if type(value) is not bool:
            return False
    elif kind in ("string", "category", "datetime"):
        if type(value) is not str:
            return False
        if kind == "datetime":
            try:
                datetime.fromisoformat(value)
            except ValueError:
                return False
        if rule.max_length is not None and len(value) > rule.max_length:
            return False
        if rule.pattern is not None and not re.fullmatch(rule.pattern, value):
            return False
    else:
        if type(value) is not list:
            return False
        if not all(type(v) in (int, float) and math.isfinite(v) for v in value):
            return False
        if rule.max_length is not None and len(value) > rule.max_length:
            return False
    return rule.allowed is None or value in rule.allowed
