"""The signature of a version: its input and output fields, by name and type.

It also turns request rows into the 2-D array a model is called with, naming the row
and field of every value it cannot take::

    >>> sig = Signature.from_dict({"inputs": [{"name": "x", "type": "float"}]})
    >>> sig.matrix([{"x": 1}, {"x": "2.5"}]).tolist()
    Traceback (most recent call last):
    ...
    slipway.errors.ValidationFailed: inputs[1].x: expected float, got string
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from slipway.errors import ValidationFailed

FIELD_TYPES = ("float", "int", "bool", "string")


@dataclass(frozen=True)
class Field:
    name: str
    type: str = "float"

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "type": self.type}


@dataclass(frozen=True)
class Signature:
    inputs: tuple[Field, ...]
    outputs: tuple[Field, ...] = ()
    classes: tuple[Any, ...] | None = None
    _names: tuple[str, ...] = field(default=(), repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_names", tuple(f.name for f in self.inputs))

    @property
    def input_names(self) -> tuple[str, ...]:
        return self._names

    @property
    def numeric(self) -> bool:
        return all(f.type != "string" for f in self.inputs)

    # -- (de)serialization -------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "inputs": [f.to_dict() for f in self.inputs],
            "outputs": [f.to_dict() for f in self.outputs],
        }
        if self.classes is not None:
            out["classes"] = list(self.classes)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Signature:
        if not isinstance(data, Mapping):
            raise ValidationFailed.field("signature", "must be an object")
        inputs = _fields(data.get("inputs"), "signature.inputs", required=True)
        outputs = _fields(data.get("outputs") or [], "signature.outputs", required=False)
        classes = data.get("classes")
        if classes is not None and not isinstance(classes, list):
            raise ValidationFailed.field("signature.classes", "must be a list")
        return cls(tuple(inputs), tuple(outputs), tuple(classes) if classes is not None else None)

    # -- inference from data -----------------------------------------------------------
    @classmethod
    def infer(
        cls,
        X: Any,
        y: Any = None,
        classes: Sequence[Any] | None = None,
        feature_names: Sequence[str] | None = None,
    ) -> Signature:
        """Infer fields from a 2-D array, a pandas DataFrame or a list of dicts.

        A plain array has no column names: ``feature_names`` gives them (else f0, f1...).
        """
        names, kinds = _columns_of(X)
        if feature_names is not None:
            if len(feature_names) != len(names):
                raise ValidationFailed.field(
                    "feature_names", f"{len(feature_names)} names for {len(names)} columns"
                )
            names = [str(n) for n in feature_names]
        inputs = tuple(Field(n, k) for n, k in zip(names, kinds, strict=True))
        outputs: tuple[Field, ...] = ()
        if y is not None:
            y_arr = np.asarray(y)
            outputs = (Field("prediction", _kind_of_dtype(y_arr.dtype)),)
        cls_tuple = tuple(_plain(c) for c in classes) if classes is not None else None
        return cls(inputs, outputs, cls_tuple)

    # -- request rows to model input -----------------------------------------------------
    def matrix(
        self, rows: Sequence[Mapping[str, Any]], where: str = "inputs", allow_null: bool = False
    ) -> np.ndarray:
        """Rows (dicts by field name) to a 2-D array in field order.

        Numeric signatures give float64; any string field gives an object array.
        Raises ValidationFailed with one detail per bad value (row, field, reason).
        """
        errors: list[dict[str, Any]] = []
        n, k = len(rows), len(self.inputs)
        numeric = self.numeric
        out = np.empty((n, k), dtype=np.float64 if numeric else object)
        for i, row in enumerate(rows):
            if not isinstance(row, Mapping):
                errors.append({"row": i, "field": None, "reason": "row must be an object"})
                continue
            for j, f in enumerate(self.inputs):
                if f.name not in row:
                    errors.append({"row": i, "field": f.name, "reason": "missing"})
                    continue
                value = row[f.name]
                if value is None and allow_null:
                    # A null the data contract accepted: NaN for numbers (what estimators
                    # that handle missing values expect), None for strings.
                    out[i, j] = np.nan if numeric or f.type != "string" else None
                    continue
                ok, value = _convert(value, f.type)
                if not ok:
                    errors.append({"row": i, "field": f.name, "reason": value})
                    continue
                out[i, j] = value
            extra = [key for key in row if key not in self._names]
            for key in extra:
                errors.append({"row": i, "field": key, "reason": "unknown field"})
        if errors:
            first = errors[0]
            message = f"{where}[{first['row']}].{first['field']}: {first['reason']}"
            if len(errors) > 1:
                message += f" (and {len(errors) - 1} more)"
            raise ValidationFailed(message, details=errors)
        return out


def _fields(raw: Any, where: str, *, required: bool) -> list[Field]:
    if not isinstance(raw, list) or (required and not raw):
        raise ValidationFailed.field(where, "must be a non-empty list of fields")
    fields: list[Field] = []
    seen: set[str] = set()
    for i, item in enumerate(raw):
        if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
            raise ValidationFailed.field(f"{where}[{i}]", "must be an object with a name")
        name, kind = item["name"], item.get("type", "float")
        if not name:
            raise ValidationFailed.field(f"{where}[{i}].name", "must not be empty")
        if name in seen:
            raise ValidationFailed.field(f"{where}[{i}].name", f"duplicate field {name!r}")
        if kind not in FIELD_TYPES:
            raise ValidationFailed.field(
                f"{where}[{i}].type", f"must be one of {', '.join(FIELD_TYPES)}"
            )
        seen.add(name)
        fields.append(Field(name, kind))
    return fields


def _convert(value: Any, kind: str) -> tuple[bool, Any]:
    """(True, converted) or (False, reason). bool is never taken for a number."""
    if kind == "string":
        return (True, value) if isinstance(value, str) else (False, _expected(kind, value))
    if kind == "bool":
        return (True, float(value)) if isinstance(value, bool) else (False, _expected(kind, value))
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False, _expected(kind, value)
    if kind == "int" and isinstance(value, float) and not value.is_integer():
        return False, "expected int, got a fractional number"
    if isinstance(value, float) and not math.isfinite(value):
        return False, "must be finite"
    return True, float(value)


def _expected(kind: str, value: Any) -> str:
    got = {bool: "bool", int: "int", float: "float", str: "string", type(None): "null"}.get(
        type(value), type(value).__name__
    )
    return f"expected {kind}, got {got}"


def _kind_of_dtype(dtype: Any) -> str:
    if not isinstance(dtype, np.dtype):
        # pandas extension dtypes (the "str" default of pandas 3, nullable Int64, ...)
        # are not numpy dtypes; their numpy kind letter says what they hold.
        kind = getattr(dtype, "kind", "O")
        return {"b": "bool", "i": "int", "u": "int", "f": "float"}.get(kind, "string")
    if np.issubdtype(dtype, np.bool_):
        return "bool"
    if np.issubdtype(dtype, np.integer):
        return "int"
    if np.issubdtype(dtype, np.floating):
        return "float"
    return "string"


def _columns_of(X: Any) -> tuple[list[str], list[str]]:
    columns = getattr(X, "columns", None)
    dtypes = getattr(X, "dtypes", None)
    if columns is not None and dtypes is not None:  # a pandas DataFrame
        return [str(c) for c in columns], [_kind_of_dtype(d) for d in dtypes]
    if isinstance(X, list) and X and isinstance(X[0], Mapping):
        names = list(X[0])
        return names, [_kind_of_value(X[0][n]) for n in names]
    arr = np.asarray(X)
    if arr.ndim != 2:
        raise ValidationFailed.field("X", f"must be 2-D, got {arr.ndim}-D")
    kind = _kind_of_dtype(arr.dtype)
    return [f"f{i}" for i in range(arr.shape[1])], [kind] * arr.shape[1]


def _kind_of_value(v: Any) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float"
    return "string"


def _plain(v: Any) -> Any:
    """numpy scalars to plain Python, so classes serialize to JSON."""
    return v.item() if isinstance(v, np.generic) else v


def rows_from_matrix(X: Any, names: Iterable[str]) -> list[dict[str, Any]]:
    """A 2-D array or DataFrame back into request rows (used for example rows)."""
    keys = list(names)
    if hasattr(X, "to_dict") and hasattr(X, "columns"):
        return [{k: _plain(v) for k, v in r.items()} for r in X.to_dict(orient="records")]
    arr = np.asarray(X)
    return [{k: _plain(v) for k, v in zip(keys, row, strict=True)} for row in arr]
