"""Checking request rows and model outputs against a contract.

Rows are checked one by one (a request holds few); every bad value is reported with its
row, field and reason, so a caller can fix all of them at once::

    >>> result = check_rows(contract, [{"age": 17}, {"age": "30"}])
    >>> result.errors
    {0: [{"field": "age", "reason": "below min 18"}],
     1: [{"field": "age", "reason": "expected int, got string"}]}

``pipelines`` checking whole files use the vectorized ``contracts.batch`` instead.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from slipway.contracts.schema import Contract, FieldRule

_JSON_TYPE = {
    bool: "bool",
    int: "int",
    float: "float",
    str: "string",
    type(None): "null",
    list: "list",
    dict: "object",
}


@dataclass(frozen=True)
class CheckResult:
    valid: list[int]  # indices of the rows that passed, in order
    rows: list[dict[str, Any]]  # those rows, with safe coercions applied
    errors: dict[int, list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors


def check_rows(contract: Contract, rows: Sequence[Any]) -> CheckResult:
    valid: list[int] = []
    clean_rows: list[dict[str, Any]] = []
    errors: dict[int, list[dict[str, Any]]] = {}
    plan = _plan_of(contract)
    for i, row in enumerate(rows):
        if not isinstance(row, Mapping):
            errors[i] = [{"field": None, "reason": "row must be an object"}]
            continue
        problems: list[dict[str, Any]] = []
        clean: dict[str, Any] = {}
        present = 0
        for rule, name, fast, low, high in plan:
            value = row.get(name, _MISSING)
            # The common case decided inline: a plain number inside the rule's bounds
            # (the bounds are finite, so NaN and infinities take the full check).
            kind = type(value)
            if (
                (kind is float or kind is int)
                and (fast is _FLOAT or (fast is _INT and kind is int))
                and low <= value <= high
            ):
                clean[name] = float(value) if fast is _FLOAT else value
                present += 1
                continue
            if value is _MISSING:
                if rule.nullable:
                    clean[name] = None
                else:
                    problems.append({"field": name, "reason": "missing"})
                continue
            present += 1
            ok, value = check_value(rule, value)
            if ok:
                clean[name] = value
            else:
                problems.append({"field": name, "reason": value})
        if len(row) > present:  # keys are unique: more keys than known fields found
            names = contract.names
            for key in row:
                if key not in names:
                    problems.append({"field": key, "reason": "unknown field"})
        if problems:
            errors[i] = problems
        else:
            valid.append(i)
            clean_rows.append(clean)
    return CheckResult(valid, clean_rows, errors)


_MISSING: Any = object()
_FLOAT, _INT = "float", "int"
# (rule, name, fast kind or None, low, high) per input field.
_Plan = tuple[tuple[FieldRule, str, str | None, float, float], ...]
_PLANS: dict[int, tuple[Contract, _Plan]] = {}


def _plan_of(contract: Contract) -> _Plan:
    """How to check each field, worked out once per contract: numeric fields with no
    rule beyond min/max get the inline check of ``check_rows`` (an int field only for an
    int value: a float may be fractional); everything else goes through check_value."""
    cached = _PLANS.get(id(contract))
    if cached is not None and cached[0] is contract:
        return cached[1]
    plan = []
    for rule in contract.inputs:
        simple = rule.allowed is None and rule.pattern is None and rule.max_length is None
        # The module's own constants, so check_rows can compare by identity.
        fast = {"float": _FLOAT, "int": _INT}.get(rule.type) if simple else None
        low = max(rule.min, -sys.float_info.max) if rule.min is not None else -sys.float_info.max
        high = min(rule.max, sys.float_info.max) if rule.max is not None else sys.float_info.max
        plan.append((rule, rule.name, fast, low, high))
    result = tuple(plan)
    if len(_PLANS) > 1024:  # contracts are few; this only bounds a pathological churn
        _PLANS.clear()
    _PLANS[id(contract)] = (contract, result)
    return result


def check_value(rule: FieldRule, value: Any) -> tuple[bool, Any]:
    """(True, the value to use) or (False, the reason it is refused)."""
    if value is None:
        return (True, None) if rule.nullable else (False, "null not allowed")
    ok, converted = _typed(rule, value)
    if not ok:
        return False, converted
    return _constraints(rule, converted)


def _expected(rule: FieldRule, value: Any) -> str:
    return f"expected {rule.type}, got {_JSON_TYPE.get(type(value), type(value).__name__)}"


def _typed(rule: FieldRule, value: Any) -> tuple[bool, Any]:
    kind = rule.type
    if kind in ("int", "float"):
        if isinstance(value, str) and rule.coerce:
            value = _parse_number(value)
            if value is None:
                return False, f"expected {kind}, got a string that is not a number"
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False, _expected(rule, value)
        if isinstance(value, float) and not math.isfinite(value):
            return False, "must be finite"
        if kind == "int":
            if isinstance(value, float):
                if not value.is_integer():
                    return False, "expected int, got a fractional number"
                value = int(value)
            return True, value
        return True, float(value)
    if kind == "bool":
        if isinstance(value, str) and rule.coerce and value.lower() in ("true", "false"):
            return True, value.lower() == "true"
        return (True, value) if isinstance(value, bool) else (False, _expected(rule, value))
    if kind in ("string", "category"):
        return (True, value) if isinstance(value, str) else (False, _expected(rule, value))
    if kind == "datetime":
        if not isinstance(value, str):
            return False, _expected(rule, value)
        try:
            datetime.fromisoformat(value)
        except ValueError:
            return False, "not an ISO 8601 datetime"
        return True, value
    # list_float
    if not isinstance(value, list):
        return False, _expected(rule, value)
    if not all(
        isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in value
    ):
        return False, "must be a list of finite numbers"
    return True, [float(v) for v in value]


def _parse_number(text: str) -> int | float | None:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _constraints(rule: FieldRule, value: Any) -> tuple[bool, Any]:
    if rule.min is not None and value < rule.min:
        return False, f"below min {rule.min:g}"
    if rule.max is not None and value > rule.max:
        return False, f"above max {rule.max:g}"
    if rule.allowed is not None and value not in rule.allowed:
        return False, "not one of the allowed values"
    if rule.max_length is not None and len(value) > rule.max_length:
        return False, f"longer than max_length {rule.max_length}"
    pattern = rule.compiled_pattern
    if pattern is not None and not pattern.fullmatch(value):
        return False, "does not match pattern"
    return True, value


def check_outputs(
    contract: Contract,
    predictions: np.ndarray,
    probabilities: np.ndarray | None,
) -> list[str]:
    """Reasons the model's answer breaks the output rules (empty when it does not)."""
    rules = contract.outputs
    problems: list[str] = []
    if probabilities is not None:
        if not np.all(np.isfinite(probabilities)):
            problems.append("probabilities are not all finite")
        else:
            low, high = rules.probability_range
            if probabilities.min() < low or probabilities.max() > high:
                problems.append(f"probabilities outside [{low:g}, {high:g}]")
            # Plain arithmetic: np.allclose costs more than the model on one row.
            if float(np.abs(probabilities.sum(axis=1) - 1.0).max()) > 1e-3:
                problems.append("class probabilities do not sum to 1")
    if rules.classes is not None:
        known = set(rules.classes)
        # The offending values stay out of the reason: it reaches the caller, and the
        # withheld answer is kept in the prediction record instead.
        if any(p not in known for p in predictions.tolist()):
            problems.append("a class label outside the contract's classes")
    elif np.issubdtype(predictions.dtype, np.number):
        if not np.all(np.isfinite(predictions)):
            problems.append("predictions are not all finite")
        else:
            if rules.min is not None and predictions.min() < rules.min:
                problems.append(f"prediction below min {rules.min:g}")
            if rules.max is not None and predictions.max() > rules.max:
                problems.append(f"prediction above max {rules.max:g}")
    return problems
