"""What changed between two contracts, and whether it breaks callers of the old one.

A change is breaking when a request the old contract accepted may be refused by the new
one (inputs), or when an answer may now fall outside what the old contract promised
(outputs)::

    >>> [str(c) for c in diff(old, new)]
    ['breaking  age: min raised 18 -> 21', 'compatible  country: allowed values added [NL]']

A renamed field shows as the old name removed (breaking) and the new one added.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from slipway.contracts.schema import Contract, FieldRule, OutputRules

BREAKING = "breaking"
COMPATIBLE = "compatible"

# (old type, new type) pairs where the new type accepts every value the old one did.
_WIDENINGS = {("int", "float"), ("category", "string"), ("datetime", "string")}

__all__ = ["BREAKING", "COMPATIBLE", "Change", "breaking", "diff"]


@dataclass(frozen=True)
class Change:
    field: str | None  # None for the output rules
    kind: str  # "breaking" | "compatible"
    what: str

    def __str__(self) -> str:
        return f"{self.kind}  {self.field or 'outputs'}: {self.what}"

    def to_dict(self) -> dict[str, Any]:
        return {"field": self.field, "kind": self.kind, "what": self.what}


def breaking(changes: list[Change]) -> list[Change]:
    return [c for c in changes if c.kind == BREAKING]


def diff(old: Contract, new: Contract) -> list[Change]:
    changes: list[Change] = []
    old_fields = {f.name: f for f in old.inputs}
    new_fields = {f.name: f for f in new.inputs}
    added = [f for f in new.inputs if f.name not in old_fields]
    for rule in old.inputs:
        if rule.name not in new_fields:
            twin = next((a.name for a in added if _same_but_name(rule, a)), None)
            hint = f" (renamed to {twin}?)" if twin else ""
            changes.append(Change(rule.name, BREAKING, f"field removed{hint}"))
    for rule in new.inputs:
        if rule.name in old_fields:
            changes.extend(_field_changes(old_fields[rule.name], rule))
        elif rule.nullable:
            changes.append(Change(rule.name, COMPATIBLE, "new optional (nullable) field"))
        else:
            changes.append(Change(rule.name, BREAKING, "new required field"))
    changes.extend(_output_changes(old.outputs, new.outputs))
    return changes


def _same_but_name(a: FieldRule, b: FieldRule) -> bool:
    return {**a.to_dict(), "name": ""} == {**b.to_dict(), "name": ""}


def _field_changes(old: FieldRule, new: FieldRule) -> list[Change]:
    out: list[Change] = []

    def add(kind: str, what: str) -> None:
        out.append(Change(new.name, kind, what))

    if old.type != new.type:
        widened = (old.type, new.type) in _WIDENINGS
        add(
            COMPATIBLE if widened else BREAKING,
            f"type {'widened' if widened else 'changed'} {old.type} -> {new.type}",
        )
    if old.nullable and not new.nullable:
        add(BREAKING, "nullable became required")
    elif new.nullable and not old.nullable:
        add(COMPATIBLE, "required became nullable")
    _bound(add, "min", old.min, new.min, raised_breaks=True)
    _bound(add, "max", old.max, new.max, raised_breaks=False)
    _allowed(add, old.allowed, new.allowed)
    if old.pattern != new.pattern:
        if new.pattern is None:
            add(COMPATIBLE, "pattern removed")
        elif old.pattern is None:
            add(BREAKING, f"pattern added {new.pattern!r}")
        else:
            add(BREAKING, f"pattern changed {old.pattern!r} -> {new.pattern!r}")
    if old.max_length != new.max_length:
        if new.max_length is None:
            add(COMPATIBLE, f"max_length {old.max_length} removed")
        elif old.max_length is None:
            add(BREAKING, f"max_length {new.max_length} added")
        elif new.max_length < old.max_length:
            add(BREAKING, f"max_length reduced {old.max_length} -> {new.max_length}")
        else:
            add(COMPATIBLE, f"max_length raised {old.max_length} -> {new.max_length}")
    if old.coerce != new.coerce:
        if old.coerce:
            add(BREAKING, "coercion turned off (e.g. '3' no longer accepted as 3)")
        else:
            add(COMPATIBLE, "coercion turned on")
    for attr in ("pii", "unit", "description"):
        before, after = getattr(old, attr), getattr(new, attr)
        if before != after:
            add(COMPATIBLE, f"{attr} changed {before!r} -> {after!r}")
    return out


def _bound(
    add: Any, name: str, old: float | None, new: float | None, *, raised_breaks: bool
) -> None:
    """A lower bound that rises, or an upper bound that falls, narrows the range."""
    if old == new:
        return
    if new is None:
        add(COMPATIBLE, f"{name} {old:g} removed")
    elif old is None:
        add(BREAKING, f"{name} {new:g} added")
    else:
        narrowed = (new > old) == raised_breaks
        direction = "raised" if new > old else "lowered"
        add(BREAKING if narrowed else COMPATIBLE, f"{name} {direction} {old:g} -> {new:g}")


def _allowed(add: Any, old: tuple[Any, ...] | None, new: tuple[Any, ...] | None) -> None:
    if old == new:
        return
    if new is None:
        add(COMPATIBLE, "allowed values no longer restricted")
        return
    if old is None:
        add(BREAKING, f"allowed values restricted to {list(new)}")
        return
    removed = [v for v in old if v not in new]
    gained = [v for v in new if v not in old]
    if removed:
        add(BREAKING, f"allowed values removed {removed}")
    if gained:
        add(COMPATIBLE, f"allowed values added {gained}")


def _output_changes(old: OutputRules, new: OutputRules) -> list[Change]:
    out: list[Change] = []
    if old.classes != new.classes:
        out.append(
            Change(
                None,
                BREAKING,
                f"classes changed {_listed(old.classes)} -> {_listed(new.classes)}",
            )
        )
    # Outputs run the other way: callers rely on the old promise, so a wider range breaks.
    if old.probability_range != new.probability_range:
        (lo0, hi0), (lo1, hi1) = old.probability_range, new.probability_range
        wider = lo1 < lo0 or hi1 > hi0
        out.append(
            Change(
                None,
                BREAKING if wider else COMPATIBLE,
                f"probability_range [{lo0:g}, {hi0:g}] -> [{lo1:g}, {hi1:g}]",
            )
        )
    for name, before, after in (("min", old.min, new.min), ("max", old.max, new.max)):
        if before != after:
            # A bound dropped, or moved outward, lets answers out that were promised away.
            outward = after is None or (
                before is not None and (after < before if name == "min" else after > before)
            )
            kind = BREAKING if outward else COMPATIBLE
            out.append(Change(None, kind, f"prediction {name} {before} -> {after}"))
    return out


def _listed(values: tuple[Any, ...] | None) -> Any:
    return None if values is None else list(values)
