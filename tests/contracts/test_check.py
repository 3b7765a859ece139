"""Property tests of check_rows: a passing row satisfies every constraint, and a row that
breaks exactly one constraint is refused naming that field and that reason."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from slipway.contracts.check import check_rows, check_value
from slipway.contracts.schema import Contract, FieldRule
from tests.contracts.strategies import contracts, row_values, satisfies, valid_rows

SETTINGS = settings(max_examples=150, deadline=None)


@SETTINGS
@given(data=st.data(), contract=contracts())
def test_a_passing_row_satisfies_every_constraint(data: st.DataObject, contract: Contract) -> None:
    row = {r.name: data.draw(row_values(r), label=r.name) for r in contract.inputs}
    result = check_rows(contract, [row])
    expected = all(satisfies(r, row[r.name]) for r in contract.inputs)
    assert result.ok == expected, (row, result.errors)
    if result.ok:
        clean = result.rows[0]
        for rule in contract.inputs:
            value = clean[rule.name]
            if value is None:
                continue
            expected_type = {"int": int, "float": float, "bool": bool, "list_float": list}
            assert type(value) is expected_type.get(rule.type, str)


@SETTINGS
@given(data=st.data(), contract=contracts())
def test_valid_rows_pass(data: st.DataObject, contract: Contract) -> None:
    row = data.draw(valid_rows(contract))
    result = check_rows(contract, [row])
    assert result.ok, result.errors
    assert set(result.rows[0]) == set(contract.names)


BREAKS = (
    "type",
    "null",
    "min",
    "max",
    "allowed",
    "pattern",
    "max_length",
    "missing",
    "unknown",
    "datetime",
    "finite",
    "fractional",
)


def _break(rule: FieldRule, kind: str, draw: Any) -> tuple[Any, str]:
    """A value that breaks ``kind`` of ``rule`` and nothing checked before it."""
    t = rule.type
    if kind == "type":
        if t in ("int", "float", "bool"):
            return [1], f"expected {t}, got list"
        return 5, f"expected {t}, got int"
    if kind == "null":
        assume(not rule.nullable)
        return None, "null not allowed"
    if kind == "min":
        assume(rule.min is not None)
        assert rule.min is not None
        below = rule.min - draw(st.integers(1, 100))
        return (int(below) if t == "int" else float(below)), f"below min {rule.min:g}"
    if kind == "max":
        assume(rule.max is not None)
        assert rule.max is not None
        above = rule.max + draw(st.integers(1, 100))
        return (int(above) if t == "int" else float(above)), f"above max {rule.max:g}"
    if kind == "allowed":
        assume(rule.allowed is not None and t in ("int", "string", "category"))
        assert rule.allowed is not None
        if t == "int":
            lo = int(rule.min) if rule.min is not None else -100
            hi = int(rule.max) if rule.max is not None else lo + 200
            lo = min(lo, hi)
            assume(hi - lo + 1 > len(rule.allowed))
            value: Any = draw(st.integers(lo, hi).filter(lambda v: v not in (rule.allowed or ())))
        else:
            value = draw(st.text(max_size=20).filter(lambda v: v not in (rule.allowed or ())))
        return value, "not one of the allowed values"
    if kind == "pattern":
        assume(rule.pattern is not None and rule.allowed is None)
        return "!", "does not match pattern"
    if kind == "max_length":
        assume(rule.max_length is not None and rule.allowed is None)
        assert rule.max_length is not None
        extra = draw(st.integers(1, 5))
        if t == "list_float":
            return [0.5] * (rule.max_length + extra), f"longer than max_length {rule.max_length}"
        return "a" * (rule.max_length + extra), f"longer than max_length {rule.max_length}"
    if kind == "datetime":
        assume(t == "datetime")
        return draw(st.sampled_from(["nope", "2024-13-01", "01/02/2024", ""])), (
            "not an ISO 8601 datetime"
        )
    if kind == "finite":
        assume(t in ("int", "float"))
        return draw(st.sampled_from([math.nan, math.inf, -math.inf])), "must be finite"
    assume(kind == "fractional" and t == "int")
    return 2.5, "expected int, got a fractional number"


@settings(max_examples=300, deadline=None)
@given(data=st.data(), contract=contracts(), kind=st.sampled_from(BREAKS))
def test_breaking_one_constraint_names_that_field_and_reason(
    data: st.DataObject, contract: Contract, kind: str
) -> None:
    row = data.draw(valid_rows(contract))
    target = data.draw(st.sampled_from(contract.inputs))
    if kind == "missing":
        assume(not target.nullable)
        row.pop(target.name, None)
        field, reason = target.name, "missing"
    elif kind == "unknown":
        row["zz_unknown"] = data.draw(st.integers())
        field, reason = "zz_unknown", "unknown field"
    else:
        value, reason = _break(target, kind, data.draw)
        row[target.name] = value
        field = target.name
    result = check_rows(contract, [row])
    assert result.errors == {0: [{"field": field, "reason": reason}]}, row
    assert result.valid == [] and result.rows == []


def test_coercion_only_when_the_contract_allows_it() -> None:
    strict = FieldRule("n", "int")
    lenient = FieldRule("n", "int", coerce=True)
    assert check_value(strict, "3") == (False, "expected int, got string")
    assert check_value(lenient, "3") == (True, 3)
    assert check_value(lenient, "3.0") == (True, 3)
    assert check_value(lenient, "3.5") == (False, "expected int, got a fractional number")
    assert check_value(lenient, "three") == (
        False,
        "expected int, got a string that is not a number",
    )
    assert check_value(FieldRule("x", "float", coerce=True), "2.5") == (True, 2.5)
    assert check_value(FieldRule("b", "bool", coerce=True), "TRUE") == (True, True)
    assert check_value(FieldRule("b", "bool"), "true") == (False, "expected bool, got string")
    # Coercion never bypasses the constraints.
    assert check_value(FieldRule("n", "int", min=5, coerce=True), "3") == (False, "below min 5")


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (True, "expected int, got bool"),
        ("7", "expected int, got string"),
        ({"a": 1}, "expected int, got object"),
    ],
)
def test_bools_and_strings_are_not_ints(value: Any, reason: str) -> None:
    assert check_value(FieldRule("n", "int"), value) == (False, reason)


def test_a_row_that_is_not_an_object() -> None:
    contract = Contract((FieldRule("a", "int"),))
    result = check_rows(contract, [[1], {"a": 1}])
    assert result.errors == {0: [{"field": None, "reason": "row must be an object"}]}
    assert result.valid == [1]


def _field_by_field(contract: Contract, row: dict[str, Any]) -> tuple[dict[str, Any], list[Any]]:
    """What check_rows decides for one row, spelled out with check_value per field (its
    inline fast path for plain numbers must agree with this exactly)."""
    clean: dict[str, Any] = {}
    problems: list[Any] = []
    for rule in contract.inputs:
        if rule.name not in row:
            if rule.nullable:
                clean[rule.name] = None
            else:
                problems.append({"field": rule.name, "reason": "missing"})
            continue
        ok, value = check_value(rule, row[rule.name])
        if ok:
            clean[rule.name] = value
        else:
            problems.append({"field": rule.name, "reason": value})
    problems += [{"field": k, "reason": "unknown field"} for k in row if k not in contract.names]
    return clean, problems


ANY_NUMBERISH = st.one_of(
    st.floats(),  # NaN and infinities included
    st.integers(-(10**20), 10**20),
    st.booleans(),
    st.none(),
    st.sampled_from(["1", "2.5", "x"]),
)


@SETTINGS
@given(data=st.data(), contract=contracts())
def test_the_inline_number_check_agrees_with_check_value(
    data: st.DataObject, contract: Contract
) -> None:
    row: dict[str, Any] = {}
    for rule in contract.inputs:
        if data.draw(st.integers(0, 9), label=f"{rule.name} present") > 0:
            source = ANY_NUMBERISH | row_values(rule)
            row[rule.name] = data.draw(source, label=rule.name)
    if data.draw(st.booleans(), label="unknown key"):
        row["zz_unknown"] = 1
    clean, problems = _field_by_field(contract, row)
    result = check_rows(contract, [row])
    if problems:
        assert result.errors == {0: problems}
    else:
        assert result.ok and result.rows == [clean]
        for name, value in clean.items():  # float(3) == 3, so the types are compared too
            assert type(result.rows[0][name]) is type(value)
