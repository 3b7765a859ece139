"""diff(): each kind of change, classified as breaking or compatible."""

from __future__ import annotations

from typing import Any

import pytest

from slipway.contracts.diff import BREAKING, COMPATIBLE, Change, breaking, diff
from slipway.contracts.schema import Contract, FieldRule, OutputRules

BASE = FieldRule("x", "int", min=0, max=10)


def _one(old: FieldRule, new: FieldRule) -> list[tuple[str, str]]:
    return [(c.kind, c.what) for c in diff(Contract((old,)), Contract((new,)))]


def _rule(**changes: Any) -> FieldRule:
    return FieldRule(**{**BASE.__dict__, **changes})


@pytest.mark.parametrize(
    ("old", "new", "kind", "what"),
    [
        (BASE, _rule(type="float"), COMPATIBLE, "type widened int -> float"),
        (_rule(type="float"), BASE, BREAKING, "type changed float -> int"),
        (
            FieldRule("x", "string", allowed=("a",)),
            FieldRule("x", "category", allowed=("a",)),
            BREAKING,
            "type changed string -> category",
        ),
        (BASE, _rule(min=1), BREAKING, "min raised 0 -> 1"),
        (BASE, _rule(min=-1), COMPATIBLE, "min lowered 0 -> -1"),
        (BASE, _rule(max=9), BREAKING, "max lowered 10 -> 9"),
        (BASE, _rule(max=11), COMPATIBLE, "max raised 10 -> 11"),
        (BASE, _rule(max=None), COMPATIBLE, "max 10 removed"),
        (_rule(min=None), BASE, BREAKING, "min 0 added"),
        (_rule(nullable=True), BASE, BREAKING, "nullable became required"),
        (BASE, _rule(nullable=True), COMPATIBLE, "required became nullable"),
        (BASE, _rule(allowed=(1, 2)), BREAKING, "allowed values restricted to [1, 2]"),
        (_rule(allowed=(1, 2)), _rule(allowed=(1,)), BREAKING, "allowed values removed [2]"),
        (_rule(allowed=(1,)), _rule(allowed=(1, 2)), COMPATIBLE, "allowed values added [2]"),
        (_rule(allowed=(1,)), BASE, COMPATIBLE, "allowed values no longer restricted"),
        (
            _rule(coerce=True),
            BASE,
            BREAKING,
            "coercion turned off (e.g. '3' no longer accepted as 3)",
        ),
        (BASE, _rule(description="years"), COMPATIBLE, "description changed '' -> 'years'"),
        (BASE, _rule(unit="y"), COMPATIBLE, "unit changed '' -> 'y'"),
        (BASE, _rule(pii=True), COMPATIBLE, "pii changed False -> True"),
    ],
)
def test_field_changes(old: FieldRule, new: FieldRule, kind: str, what: str) -> None:
    assert _one(old, new) == [(kind, what)]


def test_text_rules() -> None:
    s = FieldRule("s", "string", max_length=10)
    assert _one(s, FieldRule("s", "string", max_length=5)) == [
        (BREAKING, "max_length reduced 10 -> 5")
    ]
    assert _one(s, FieldRule("s", "string", max_length=20)) == [
        (COMPATIBLE, "max_length raised 10 -> 20")
    ]
    assert _one(s, FieldRule("s", "string", max_length=10, pattern="[a-z]+")) == [
        (BREAKING, "pattern added '[a-z]+'")
    ]
    p = FieldRule("s", "string", pattern="[a-z]+")
    assert _one(p, FieldRule("s", "string", pattern="[a-c]+")) == [
        (BREAKING, "pattern changed '[a-z]+' -> '[a-c]+'")
    ]
    assert _one(p, FieldRule("s", "string")) == [(COMPATIBLE, "pattern removed")]
    cat = FieldRule("s", "category", allowed=("a", "b"))
    assert _one(cat, FieldRule("s", "string", allowed=("a", "b"))) == [
        (COMPATIBLE, "type widened category -> string")
    ]


def test_fields_added_removed_and_renamed() -> None:
    old = Contract((FieldRule("a", "int"), FieldRule("b", "float")))
    new = Contract(
        (
            FieldRule("a", "int"),
            FieldRule("b2", "float"),
            FieldRule("c", "int", nullable=True),
            FieldRule("d", "string"),
        )
    )
    changes = diff(old, new)
    assert changes == [
        Change("b", BREAKING, "field removed (renamed to b2?)"),
        Change("b2", BREAKING, "new required field"),
        Change("c", COMPATIBLE, "new optional (nullable) field"),
        Change("d", BREAKING, "new required field"),
    ]
    assert breaking(changes) == [changes[0], changes[1], changes[3]]


def test_outputs() -> None:
    inputs = (FieldRule("a", "int"),)
    old = Contract(inputs, OutputRules(classes=("no", "yes")))
    new = Contract(inputs, OutputRules(classes=("no", "yes", "maybe")))
    assert [(c.field, c.kind) for c in diff(old, new)] == [(None, BREAKING)]
    reg = Contract(inputs, OutputRules(min=0.0, max=1.0))
    wider = Contract(inputs, OutputRules(min=0.0, max=2.0))
    assert [c.kind for c in diff(reg, wider)] == [BREAKING]
    assert [c.kind for c in diff(wider, reg)] == [COMPATIBLE]


def test_no_changes() -> None:
    c = Contract((BASE,), OutputRules(classes=("a", "b")))
    assert diff(c, c) == []
    assert str(Change("x", BREAKING, "gone")) == "breaking  x: gone"
