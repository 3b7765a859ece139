"""Data contracts: what a version accepts and what it may answer.

A contract has typed input fields with constraints and output rules::

    inputs:
      - {name: age, type: int, min: 18, max: 120}
      - {name: country, type: category, allowed: [DE, FR, NL], nullable: true}
      - {name: email, type: string, pattern: '[^@]+@[^@]+', pii: true, max_length: 254}
      - {name: signup, type: datetime}
      - {name: embedding, type: list_float, max_length: 384}
    outputs:
      classes: [churn, stay]        # labels a classifier may answer
      probability_range: [0, 1]     # every class probability within this range
      min: null                     # regression: answered values within [min, max]
      max: null

The signature (``contracts/signature.py``) says how the model is called; the contract
says what data is acceptable. YAML and dict forms round-trip exactly.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import yaml

from slipway.errors import ValidationFailed

FIELD_TYPES = ("int", "float", "bool", "string", "category", "datetime", "list_float")
_NUMERIC = ("int", "float")
_TEXT = ("string", "category")


@dataclass(frozen=True)
class FieldRule:
    name: str
    type: str = "float"
    nullable: bool = False
    min: float | None = None
    max: float | None = None
    allowed: tuple[Any, ...] | None = None
    pattern: str | None = None
    max_length: int | None = None
    pii: bool = False
    unit: str = ""
    description: str = ""
    # Accept values of another JSON type when the conversion loses nothing ("3" -> 3).
    coerce: bool = False

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "type": self.type}
        for f in fields(self)[2:]:
            value = getattr(self, f.name)
            if value != f.default:
                out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    @property
    def compiled_pattern(self) -> re.Pattern[str] | None:
        return _compile(self.pattern) if self.pattern else None


_PATTERNS: dict[str, re.Pattern[str]] = {}


def _compile(pattern: str) -> re.Pattern[str]:
    compiled = _PATTERNS.get(pattern)
    if compiled is None:
        compiled = _PATTERNS[pattern] = re.compile(pattern)
    return compiled


@dataclass(frozen=True)
class OutputRules:
    classes: tuple[Any, ...] | None = None
    probability_range: tuple[float, float] = (0.0, 1.0)
    min: float | None = None
    max: float | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.classes is not None:
            out["classes"] = list(self.classes)
        if self.probability_range != (0.0, 1.0):
            out["probability_range"] = list(self.probability_range)
        if self.min is not None:
            out["min"] = self.min
        if self.max is not None:
            out["max"] = self.max
        return out


@dataclass(frozen=True)
class Contract:
    inputs: tuple[FieldRule, ...]
    outputs: OutputRules = OutputRules()

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.inputs)

    def validate(self, data: Any) -> Any:
        """Check a whole data set (DataFrame, arrow Table, columns or rows) in one go;
        returns a ``contracts.batch.ValidationReport`` with counts and examples per field."""
        from slipway.contracts.batch import validate

        return validate(data, self)

    @property
    def pii_fields(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.inputs if f.pii)

    # -- forms ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"inputs": [f.to_dict() for f in self.inputs]}
        outputs = self.outputs.to_dict()
        if outputs:
            out["outputs"] = outputs
        return out

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)

    @classmethod
    def from_yaml(cls, text: str) -> Contract:
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ValidationFailed.field("contract", f"not valid YAML: {exc}") from None
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: Any) -> Contract:
        if not isinstance(data, Mapping):
            raise ValidationFailed.field("contract", "must be an object")
        unknown = set(data) - {"inputs", "outputs"}
        if unknown:
            raise ValidationFailed.field(f"contract.{sorted(unknown)[0]}", "unknown key")
        raw_inputs = data.get("inputs")
        if not isinstance(raw_inputs, list) or not raw_inputs:
            raise ValidationFailed.field("contract.inputs", "must be a non-empty list")
        seen: set[str] = set()
        inputs = []
        for i, item in enumerate(raw_inputs):
            rule = _field_rule(item, f"contract.inputs[{i}]")
            if rule.name in seen:
                raise ValidationFailed.field(f"contract.inputs[{i}].name", "duplicate field")
            seen.add(rule.name)
            inputs.append(rule)
        return cls(tuple(inputs), _output_rules(data.get("outputs") or {}))

    @classmethod
    def from_signature(cls, signature: Mapping[str, Any]) -> Contract:
        """The contract of a version registered without one: names and types only."""
        kinds = {"float": "float", "int": "int", "bool": "bool", "string": "string"}
        inputs = tuple(
            FieldRule(f["name"], kinds.get(f.get("type", "float"), "float"))
            for f in signature.get("inputs", [])
        )
        classes = signature.get("classes")
        return cls(inputs, OutputRules(classes=tuple(classes) if classes is not None else None))


_FIELD_KEYS = {f.name for f in fields(FieldRule)}


def _number(value: Any, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValidationFailed.field(where, "must be a number")
    return float(value) if isinstance(value, float) else value


def _field_rule(item: Any, where: str) -> FieldRule:
    if not isinstance(item, Mapping):
        raise ValidationFailed.field(where, "must be an object")
    unknown = set(item) - _FIELD_KEYS
    if unknown:
        raise ValidationFailed.field(f"{where}.{sorted(unknown)[0]}", "unknown key")
    name = item.get("name")
    if not isinstance(name, str) or not name:
        raise ValidationFailed.field(f"{where}.name", "must be a non-empty string")
    kind = item.get("type", "float")
    if kind not in FIELD_TYPES:
        raise ValidationFailed.field(f"{where}.type", f"must be one of {', '.join(FIELD_TYPES)}")
    lo, hi = _number(item.get("min"), f"{where}.min"), _number(item.get("max"), f"{where}.max")
    if (lo is not None or hi is not None) and kind not in _NUMERIC:
        raise ValidationFailed.field(f"{where}.min", f"min/max do not apply to {kind}")
    if lo is not None and hi is not None and lo > hi:
        raise ValidationFailed.field(f"{where}.min", "must not exceed max")
    allowed = item.get("allowed")
    if allowed is not None:
        if not isinstance(allowed, list) or not allowed:
            raise ValidationFailed.field(f"{where}.allowed", "must be a non-empty list")
        allowed = tuple(allowed)
    elif kind == "category":
        raise ValidationFailed.field(f"{where}.allowed", "a category field lists its values")
    pattern = item.get("pattern")
    if pattern is not None:
        if kind not in _TEXT or not isinstance(pattern, str):
            raise ValidationFailed.field(f"{where}.pattern", "applies to string fields only")
        try:
            _compile(pattern)
        except re.error as exc:
            raise ValidationFailed.field(f"{where}.pattern", f"invalid regex: {exc}") from None
    max_length = item.get("max_length")
    if max_length is not None and (
        isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 0
    ):
        raise ValidationFailed.field(f"{where}.max_length", "must be a non-negative integer")
    if max_length is not None and kind not in (*_TEXT, "list_float"):
        raise ValidationFailed.field(f"{where}.max_length", f"does not apply to {kind}")
    for flag in ("nullable", "pii", "coerce"):
        if not isinstance(item.get(flag, False), bool):
            raise ValidationFailed.field(f"{where}.{flag}", "must be true or false")
    for text in ("unit", "description"):
        if not isinstance(item.get(text, ""), str):
            raise ValidationFailed.field(f"{where}.{text}", "must be a string")
    return FieldRule(
        name=name,
        type=kind,
        nullable=item.get("nullable", False),
        min=lo,
        max=hi,
        allowed=allowed,
        pattern=pattern,
        max_length=max_length,
        pii=item.get("pii", False),
        unit=item.get("unit", ""),
        description=item.get("description", ""),
        coerce=item.get("coerce", False),
    )


def _output_rules(data: Any) -> OutputRules:
    if not isinstance(data, Mapping):
        raise ValidationFailed.field("contract.outputs", "must be an object")
    unknown = set(data) - {"classes", "probability_range", "min", "max"}
    if unknown:
        raise ValidationFailed.field(f"contract.outputs.{sorted(unknown)[0]}", "unknown key")
    classes = data.get("classes")
    if classes is not None and (not isinstance(classes, list) or not classes):
        raise ValidationFailed.field("contract.outputs.classes", "must be a non-empty list")
    prange = data.get("probability_range", [0.0, 1.0])
    if (
        not isinstance(prange, list)
        or len(prange) != 2
        or any(isinstance(v, bool) or not isinstance(v, int | float) for v in prange)
        or prange[0] > prange[1]
    ):
        raise ValidationFailed.field("contract.outputs.probability_range", "must be [low, high]")
    return OutputRules(
        classes=tuple(classes) if classes is not None else None,
        probability_range=(float(prange[0]), float(prange[1])),
        min=_number(data.get("min"), "contract.outputs.min"),
        max=_number(data.get("max"), "contract.outputs.max"),
    )
