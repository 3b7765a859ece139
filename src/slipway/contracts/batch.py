"""Checking a whole data set against a contract, column by column.

The verdict and the reason for every value are those of ``check.check_value`` (a row
that ``check_rows`` refuses is refused here, for the same reasons), but numeric columns
are checked with numpy and text columns once per distinct value::

    >>> report = validate(df, contract)
    >>> report.ok, report.invalid_rows
    (False, 3)
    >>> report.fields["age"].reasons
    {'below min 18': 2, 'null not allowed': 1}

Inputs: a pandas DataFrame, a pyarrow Table, a dict of columns or a list of row dicts
(see ``_columns`` for how NaN and native datetimes are read).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from slipway.contracts._columns import Coded, Column, Numbers, Objects, to_table
from slipway.contracts.check import check_value
from slipway.contracts.schema import Contract, FieldRule

MAX_EXAMPLES = 5
PII_MASK = "<pii>"
_JSON_KIND = {"b": "bool", "i": "int", "u": "int", "f": "float"}

__all__ = ["FieldReport", "ValidationReport", "validate"]


@dataclass(frozen=True)
class FieldReport:
    name: str
    violations: int
    reasons: dict[str, int]  # reason -> rows, most frequent first
    examples: list[dict[str, Any]]  # up to 5: {"row", "value", "reason"}; pii masked
    in_contract: bool = True  # False for a column the contract does not know

    def to_dict(self) -> dict[str, Any]:
        return {
            "violations": self.violations,
            "reasons": dict(self.reasons),
            "examples": [{**e, "value": _jsonable(e["value"])} for e in self.examples],
            "in_contract": self.in_contract,
        }


@dataclass(frozen=True)
class ValidationReport:
    rows: int
    invalid_rows: int
    fields: dict[str, FieldReport]  # every contract field, then unknown columns
    missing_columns: tuple[str, ...]  # contract fields no row has
    unknown_columns: tuple[str, ...]  # columns the contract does not know
    not_objects: int = 0  # rows of a row list that are not dicts
    # Per field: one reason code per row (0 = fine) and the reasons they stand for.
    _codes: dict[str, tuple[np.ndarray, tuple[str, ...]]] = field(
        default_factory=dict, repr=False, compare=False
    )
    _invalid: np.ndarray = field(
        default_factory=lambda: np.zeros(0, dtype=bool), repr=False, compare=False
    )
    _not_objects: np.ndarray | None = field(default=None, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        return self.invalid_rows == 0

    @property
    def invalid_indices(self) -> np.ndarray:
        """Row numbers with at least one violation, ascending."""
        return np.flatnonzero(self._invalid)

    @property
    def valid_mask(self) -> np.ndarray:
        return ~self._invalid

    def errors(self, limit: int | None = None) -> dict[int, list[dict[str, Any]]]:
        """Per invalid row, its errors in ``CheckResult.errors`` form (first ``limit`` rows)."""
        rows = self.invalid_indices[:limit].tolist()
        out: dict[int, list[dict[str, Any]]] = {i: [] for i in rows}
        if self._not_objects is not None:
            for i in rows:
                if self._not_objects[i]:
                    out[i].append({"field": None, "reason": "row must be an object"})
        for name, (codes, reasons) in self._codes.items():
            for i in rows:
                code = codes[i]
                if code:
                    out[i].append({"field": name, "reason": reasons[code - 1]})
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "rows": self.rows,
            "invalid_rows": self.invalid_rows,
            "missing_columns": list(self.missing_columns),
            "unknown_columns": list(self.unknown_columns),
            "not_objects": self.not_objects,
            "fields": {name: f.to_dict() for name, f in self.fields.items()},
        }

    def summary_table(self) -> list[dict[str, Any]]:
        """One row per field for ``slipway contract check``: counts, reasons, examples."""
        out = []
        for f in self.fields.values():
            out.append(
                {
                    "field": f.name if f.in_contract else f"{f.name} (unknown)",
                    "violations": f.violations,
                    "reasons": "; ".join(f"{r}: {n}" for r, n in f.reasons.items()),
                    "examples": "; ".join(
                        f"row {e['row']}: {_short(e['value'])}" for e in f.examples
                    ),
                }
            )
        return out


def validate(data: Any, contract: Contract) -> ValidationReport:
    """Check every value of ``data`` against ``contract``; see the module docstring."""
    table = to_table(data)
    n = table.rows
    outside = table.not_objects  # rows that are not dicts get no field errors
    invalid = np.zeros(n, dtype=bool) if outside is None else outside.copy()
    fields: dict[str, FieldReport] = {}
    codes_by_field: dict[str, tuple[np.ndarray, tuple[str, ...]]] = {}
    missing = []

    def record(name: str, out: _Reasons, column: Column | None, pii: bool, known: bool) -> None:
        codes = out.codes
        if outside is not None:
            codes[outside] = 0
        bad = np.flatnonzero(codes != 0) if out.reasons else np.zeros(0, dtype=np.intp)
        counts = np.bincount(codes[bad], minlength=len(out.reasons) + 1)[1:]
        violations = len(bad)
        examples = [
            {
                "row": int(i),
                "value": PII_MASK if pii else (None if column is None else column.value(i)),
                "reason": out.reasons[codes[i] - 1],
            }
            for i in bad[:MAX_EXAMPLES]
        ]
        ranked = sorted(
            ((r, int(c)) for r, c in zip(out.reasons, counts, strict=True) if c),
            key=lambda rc: -rc[1],
        )
        fields[name] = FieldReport(name, violations, dict(ranked), examples, known)
        if violations:
            invalid[bad] = True
            codes_by_field[name] = (codes, tuple(out.reasons))

    for rule in contract.inputs:
        out = _Reasons(n)
        column = table.columns.get(rule.name)
        if column is None:
            missing.append(rule.name)
            if not rule.nullable:
                out.set(np.ones(n, dtype=bool), "missing")
        else:
            _check_column(rule, column, out)
            absent = table.absent.get(rule.name)
            if absent is not None:
                out.codes[absent] = 0
                if not rule.nullable:
                    out.set(absent, "missing")
        record(rule.name, out, column, rule.pii, True)

    names = set(contract.names)
    unknown = [name for name in table.columns if name not in names]
    for name in unknown:
        out = _Reasons(n)
        present = np.ones(n, dtype=bool)
        if name in table.absent:
            present &= ~table.absent[name]
        out.set(present, "unknown field")
        record(name, out, table.columns[name], False, False)

    return ValidationReport(
        rows=n,
        invalid_rows=int(invalid.sum()),
        fields=fields,
        missing_columns=tuple(missing),
        unknown_columns=tuple(unknown),
        not_objects=0 if outside is None else int(outside.sum()),
        _codes=codes_by_field,
        _invalid=invalid,
        _not_objects=outside,
    )


class _Reasons:
    """One reason code per row (0 = fine), and the reasons the codes stand for."""

    def __init__(self, n: int) -> None:
        self.codes = np.zeros(n, dtype=np.int16)
        self.reasons: list[str] = []

    def code(self, reason: str) -> int:
        try:
            return self.reasons.index(reason) + 1
        except ValueError:
            self.reasons.append(reason)
            return len(self.reasons)

    def set(self, mask: np.ndarray, reason: str) -> None:
        if mask.any():
            self.codes[mask] = self.code(reason)

    def refuse(self, pending: np.ndarray, bad: np.ndarray, reason: str) -> np.ndarray:
        """Mark ``bad`` rows (among ``pending``) and return the rows still to check."""
        bad = pending & bad
        self.set(bad, reason)
        still: np.ndarray = pending & ~bad
        return still


def _check_column(rule: FieldRule, column: Column, out: _Reasons) -> None:
    if isinstance(column, Numbers):
        _check_numbers(rule, column, out)
    elif isinstance(column, Coded):
        _check_coded(rule, column, out)
    else:
        _check_objects(rule, column, out)


def _check_numbers(rule: FieldRule, column: Numbers, out: _Reasons) -> None:
    v, nulls = column.values, column.nulls
    pending = np.ones(len(v), dtype=bool)
    if nulls is not None:
        if not rule.nullable:
            out.set(nulls, "null not allowed")
        pending = ~nulls
    kind = v.dtype.kind
    got = _JSON_KIND[kind]
    if rule.type in ("int", "float"):
        if kind == "b":
            out.set(pending, f"expected {rule.type}, got bool")
            return
        if kind == "f":
            pending = out.refuse(pending, ~np.isfinite(v), "must be finite")
            if rule.type == "int":
                with np.errstate(invalid="ignore"):
                    fractional = v != np.floor(v)
                pending = out.refuse(pending, fractional, "expected int, got a fractional number")
        with np.errstate(invalid="ignore"):
            if rule.min is not None:
                pending = out.refuse(pending, v < rule.min, f"below min {rule.min:g}")
            if rule.max is not None:
                pending = out.refuse(pending, v > rule.max, f"above max {rule.max:g}")
        if rule.allowed is not None:
            as_type = int if rule.type == "int" else float
            _check_allowed(rule, v, pending, as_type, out)
    elif rule.type == "bool":
        if kind != "b":
            out.set(pending, f"expected bool, got {got}")
        elif rule.allowed is not None:
            _check_allowed(rule, v, pending, bool, out)
    else:
        out.set(pending, f"expected {rule.type}, got {got}")


def _check_allowed(
    rule: FieldRule, v: np.ndarray, pending: np.ndarray, as_type: Any, out: _Reasons
) -> None:
    # Python's `in` on each distinct value: the exact semantics of check_value.
    rows = np.flatnonzero(pending)
    uniques, inverse = np.unique(v[rows], return_inverse=True)
    allowed = rule.allowed or ()
    refused = np.array([as_type(u) not in allowed for u in uniques.tolist()], dtype=bool)
    bad = np.zeros(len(v), dtype=bool)
    bad[rows[refused[inverse.reshape(-1)]]] = True
    out.set(bad, "not one of the allowed values")


def _check_coded(rule: FieldRule, column: Coded, out: _Reasons) -> None:
    # One check per distinct value; the extra last slot is the code of null (index -1).
    lookup = np.zeros(len(column.uniques) + 1, dtype=np.int16)
    for j in _suspects(rule, column.uniques):
        ok, reason = check_value(rule, column.uniques[j])
        if not ok:
            lookup[j] = out.code(reason)
    if not rule.nullable:
        lookup[-1] = out.code("null not allowed")
    out.codes[:] = lookup[column.codes]


def _suspects(rule: FieldRule, uniques: list[Any]) -> range | list[int]:
    """Positions of the values check_value may refuse; for text rules and str values, a
    quick pass that leaves the (few) refused values to check_value for the reason."""
    if rule.type not in ("string", "category") or not all(type(u) is str for u in uniques):
        return range(len(uniques))
    allowed: Any = rule.allowed
    if allowed is not None:
        try:
            allowed = frozenset(allowed)
        except TypeError:
            return range(len(uniques))
    limit, pattern = rule.max_length, rule.compiled_pattern
    return [
        j
        for j, u in enumerate(uniques)
        if (allowed is not None and u not in allowed)
        or (limit is not None and len(u) > limit)
        or (pattern is not None and not pattern.fullmatch(u))
    ]


def _check_objects(rule: FieldRule, column: Objects, out: _Reasons) -> None:
    cache: dict[tuple[type, Any], int] = {}
    codes = out.codes
    for i, value in enumerate(column.values):
        try:
            key = (type(value), value)
            code = cache.get(key)
        except TypeError:  # unhashable (lists): check it every time
            key, code = None, None
        if code is None:
            ok, reason = check_value(rule, value)
            code = 0 if ok else out.code(reason)
            if key is not None:
                cache[key] = code
        if code:
            codes[i] = code


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return str(value)


def _short(value: Any, width: int = 40) -> str:
    text = value if value == PII_MASK else repr(value)
    return text if len(text) <= width else text[: width - 1] + "…"
