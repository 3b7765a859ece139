"""A first contract from data, for a person to review and edit.

    >>> print(infer_contract(df).to_yaml())
    inputs:
    - {name: age, type: int, min: 14, max: 125}
    - {name: country, type: category, allowed: [DE, FR, NL], nullable: true}

- numbers: the range between two quantiles (0.1% and 99.9%), widened on each side by
  ``margin`` of its width; int bounds are rounded outward to integers, float bounds to
  three significant digits of the width (so a rare outlier beyond the quantiles is
  flagged, which is the point of a range);
- text: at most ``category_cap`` distinct values make a category (its values sorted),
  more make a string whose ``max_length`` is the longest seen rounded up to a power of
  two; text that all reads as ISO 8601 dates makes a datetime;
- lists of numbers make ``list_float`` with the longest length seen as ``max_length``;
- a field is nullable when it has a null.
"""

from __future__ import annotations

import math
import re
from dataclasses import replace
from datetime import datetime
from typing import Any

import numpy as np

from slipway.contracts._columns import Coded, Column, Numbers, Objects, to_table
from slipway.contracts.schema import Contract, FieldRule
from slipway.errors import InvalidRequest

_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")

__all__ = ["infer_contract"]


def infer_contract(
    data: Any,
    *,
    category_cap: int = 50,
    margin: float = 0.05,
    quantiles: tuple[float, float] = (0.001, 0.999),
) -> Contract:
    table = to_table(data)
    if not table.columns:
        raise InvalidRequest("cannot infer a contract from data without columns")
    rules = []
    for name, column in table.columns.items():
        rule = _infer(name, column, category_cap, margin, quantiles)
        if name in table.absent and not rule.nullable:
            rule = replace(rule, nullable=True)
        rules.append(rule)
    return Contract(tuple(rules))


def _infer(
    name: str,
    column: Column,
    cap: int,
    margin: float,
    quantiles: tuple[float, float],
) -> FieldRule:
    if isinstance(column, Numbers):
        return _numbers(name, column, margin, quantiles)
    if isinstance(column, Coded):
        used = np.unique(column.codes)
        nullable = bool(used.size and used[0] < 0)
        values = [column.uniques[i] for i in used[used >= 0].tolist()]
        return _values(name, values, nullable, cap)
    return _objects(name, column, cap, margin, quantiles)


def _numbers(
    name: str, column: Numbers, margin: float, quantiles: tuple[float, float]
) -> FieldRule:
    v = column.values
    nullable = bool(column.nulls is not None and column.nulls.any())
    if column.nulls is not None:
        v = v[~column.nulls]
    if v.dtype.kind == "b":
        return FieldRule(name, "bool", nullable=nullable)
    kind = "int" if v.dtype.kind in "iu" else "float"
    if kind == "float":
        v = v[np.isfinite(v)]
    if not v.size:
        return FieldRule(name, kind, nullable=True)
    lo, hi = (float(q) for q in np.quantile(v, quantiles))
    width = hi - lo
    pad = margin * (width or max(abs(lo), 1.0))
    lo, hi = lo - pad, hi + pad
    if kind == "int":
        return FieldRule(name, "int", nullable=nullable, min=math.floor(lo), max=math.ceil(hi))
    step = 10.0 ** (math.floor(math.log10(hi - lo)) - 2)
    digits = max(0, -math.floor(math.log10(step)))
    low = round(math.floor(lo / step) * step, digits)
    high = round(math.ceil(hi / step) * step, digits)
    return FieldRule(name, "float", nullable=nullable, min=float(low), max=float(high))


def _values(name: str, values: list[Any], nullable: bool, cap: int) -> FieldRule:
    """A text column (its distinct non-null values)."""
    if not all(isinstance(v, str) for v in values):
        kinds = sorted({type(v).__name__ for v in values})
        raise InvalidRequest(f"cannot infer a type for column {name!r}: values of {kinds}")
    if values and all(_looks_like_datetime(v) for v in values):
        return FieldRule(name, "datetime", nullable=nullable)
    if values and len(values) <= cap:
        return FieldRule(name, "category", nullable=nullable, allowed=tuple(sorted(values)))
    longest = max((len(v) for v in values), default=0)
    return FieldRule(name, "string", nullable=nullable, max_length=_power_of_two(longest))


def _objects(
    name: str, column: Objects, cap: int, margin: float, quantiles: tuple[float, float]
) -> FieldRule:
    present = [v for v in column.values if v is not None]
    nullable = len(present) < len(column.values)
    if present and all(isinstance(v, list) for v in present):
        numbers = all(
            isinstance(x, int | float) and not isinstance(x, bool) for v in present for x in v
        )
        if not numbers:
            raise InvalidRequest(f"cannot infer a type for column {name!r}: lists of non-numbers")
        longest = max(len(v) for v in present)
        return FieldRule(name, "list_float", nullable=nullable, max_length=longest)
    if present and all(isinstance(v, int | float) and not isinstance(v, bool) for v in present):
        values = np.array(present, dtype=np.float64)
        rule = _numbers(name, Numbers(values), margin, quantiles)
        return replace(rule, nullable=nullable)
    return _values(name, list(dict.fromkeys(present)), nullable, cap)


def _looks_like_datetime(text: str) -> bool:
    if not _ISO_DATE.match(text):
        return False
    try:
        datetime.fromisoformat(text)
    except ValueError:
        return False
    return True


def _power_of_two(n: int) -> int:
    return 1 if n <= 1 else 1 << (n - 1).bit_length()
