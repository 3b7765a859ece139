"""A data set's sketches: a version's reference data, or a live window's traffic.

A profile holds one ``ColumnSketch`` per feature, plus optional sketches of the model's
predictions, its scores and the ground-truth labels. Profiles merge (windows, shards) and
serialize to JSON::

    ref = build_profile(df, predictions=model.predict(df))
    live = Profile.empty(kinds_from_contract(contract), prediction="categorical")
    live.update({"age": ages, "country": countries}, predictions=answers)
    ref.merge(other_ref)

Columns are read whole (vectorized); pandas and pyarrow are used only when given.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from slipway.errors import InvalidRequest, ValidationFailed
from slipway.monitoring.sketches import KINDS, ColumnSketch

__all__ = [
    "Profile",
    "arrow_kind",
    "build_profile",
    "infer_kind",
    "kinds_from_contract",
    "to_columns",
]

_ROLES = ("prediction", "score", "label")


@dataclass
class Profile:
    columns: dict[str, ColumnSketch]
    prediction: ColumnSketch | None = None
    # Classifiers with probabilities: P(classes[1]) when binary, max probability otherwise.
    score: ColumnSketch | None = None
    label: ColumnSketch | None = None
    rows: int = 0

    @classmethod
    def empty(
        cls, kinds: Mapping[str, str], *, prediction: str | None = None, score: bool = False
    ) -> Profile:
        """No rows yet; ``kinds`` maps feature names to "numeric" or "categorical",
        ``prediction`` is the predictions' kind (None: no prediction sketch until some
        predictions arrive)."""
        for name, kind in kinds.items():
            if kind not in KINDS:
                raise ValueError(f"{name}: kind must be one of {KINDS}, not {kind!r}")
        return cls(
            columns={name: ColumnSketch(kind) for name, kind in kinds.items()},
            prediction=ColumnSketch(prediction) if prediction is not None else None,
            score=ColumnSketch.numeric() if score else None,
        )

    def update(
        self,
        columns: Mapping[str, Any],
        *,
        predictions: Any = None,
        probabilities: np.ndarray | None = None,
        classes: Sequence[Any] | None = None,
        labels: Any = None,
    ) -> None:
        """Add a batch of rows. ``columns`` maps names to 1-D values (arrays, lists,
        Series, arrow arrays); names the profile does not track are ignored, tracked
        names missing from the batch count as nulls. Without ``predictions``, a
        classifier's are ``classes[argmax(probabilities)]``."""
        n = _batch_length(columns, predictions, probabilities, labels)
        for name, sketch in self.columns.items():
            if name not in columns:
                sketch.nulls += n
                continue
            try:
                sketch.update(columns[name])
            except InvalidRequest as exc:
                raise ValidationFailed.field(name, exc.message) from None
        probs = None
        if probabilities is not None:
            probs = np.asarray(probabilities, dtype=np.float64)
            if probs.ndim == 2 and predictions is None and classes is not None:
                if len(classes) != probs.shape[1]:
                    raise InvalidRequest(
                        f"{len(classes)} classes but {probs.shape[1]} probability columns"
                    )
                predictions = np.asarray(classes)[probs.argmax(axis=1)]
        if predictions is not None:
            # A classifier's answers are classes even when they are numbers (0, 1, 2):
            # the reference and the live windows must agree on that, or drift cannot
            # compare them.
            kind = "categorical" if classes is not None else None
            self.prediction = _update_role(self.prediction, "prediction", predictions, kind)
        if probs is not None:
            self.score = _update_role(self.score, "score", _score(probs), "numeric")
        if labels is not None:
            kind = self.prediction.kind if self.prediction is not None else None
            self.label = _update_role(self.label, "label", labels, kind)
        self.rows += n

    def merge(self, other: Profile) -> None:
        """Fold ``other`` in: the union of columns; a column in both merges its sketches."""
        for name, sketch in other.columns.items():
            mine = self.columns.get(name)
            if mine is None:
                self.columns[name] = sketch.copy()
            else:
                mine.merge(sketch)
        for role in _ROLES:
            theirs: ColumnSketch | None = getattr(other, role)
            if theirs is None:
                continue
            mine = getattr(self, role)
            if mine is None:
                setattr(self, role, theirs.copy())
            else:
                mine.merge(theirs)
        self.rows += other.rows

    def kinds(self) -> dict[str, str]:
        return {name: sketch.kind for name, sketch in self.columns.items()}

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "rows": self.rows,
            "columns": {name: s.to_dict() for name, s in self.columns.items()},
        }
        for role in _ROLES:
            sketch = getattr(self, role)
            out[role] = sketch.to_dict() if sketch is not None else None
        return out

    @classmethod
    def from_dict(cls, data: Any, where: str = "profile") -> Profile:
        if not isinstance(data, Mapping):
            raise ValidationFailed.field(where, "must be an object")
        rows = data.get("rows")
        if isinstance(rows, bool) or not isinstance(rows, int) or rows < 0:
            raise ValidationFailed.field(f"{where}.rows", "must be a non-negative integer")
        raw = data.get("columns")
        if not isinstance(raw, Mapping):
            raise ValidationFailed.field(f"{where}.columns", "must be an object")
        columns = {
            str(name): ColumnSketch.from_dict(value, f"{where}.columns.{name}")
            for name, value in raw.items()
        }
        roles: dict[str, ColumnSketch | None] = {}
        for role in _ROLES:
            value = data.get(role)
            roles[role] = (
                None if value is None else ColumnSketch.from_dict(value, f"{where}.{role}")
            )
        score = roles["score"]
        if score is not None and score.kind != "numeric":
            raise ValidationFailed.field(f"{where}.score", "must be a numeric sketch")
        return cls(columns=columns, rows=rows, **roles)


def build_profile(
    X: Any,
    *,
    predictions: Any = None,
    probabilities: Any = None,
    classes: Sequence[Any] | None = None,
    labels: Any = None,
    kinds: Mapping[str, str] | None = None,
    feature_names: Sequence[str] | None = None,
) -> Profile:
    """Profile a whole data set in one pass per column.

    ``X``: a pandas DataFrame, pyarrow Table, dict of columns, list of row dicts, or a
    2-D array (columns named by ``feature_names``, else ``x0, x1, ...``). Without
    ``kinds``, numbers are numeric and bool/str/object/category columns categorical;
    datetimes and other types are skipped. With ``kinds``, only those columns are
    profiled, and each must be present.
    """
    columns = to_columns(X, feature_names)
    if kinds is None:
        kinds = {name: k for name, col in columns.items() if (k := infer_kind(col)) is not None}
    else:
        missing = [name for name in kinds if name not in columns]
        if missing:
            raise InvalidRequest(
                f"no column {missing[0]!r} in the data",
                details=[{"field": name, "reason": "missing column"} for name in missing],
            )
    profile = Profile.empty(kinds)
    profile.update(
        {name: columns[name] for name in kinds},
        predictions=predictions,
        probabilities=probabilities,
        classes=classes,
        labels=labels,
    )
    return profile


def kinds_from_contract(contract: Any) -> dict[str, str]:
    """Feature kinds from a ``contracts.schema.Contract``: int/float numeric, bool,
    string and category categorical. PII fields are left out, so their values never
    reach a sketch; datetime and list fields are left out too."""
    kinds: dict[str, str] = {}
    for rule in contract.inputs:
        if rule.pii:
            continue
        if rule.type in ("int", "float"):
            kinds[rule.name] = "numeric"
        elif rule.type in ("bool", "string", "category"):
            kinds[rule.name] = "categorical"
    return kinds


# -- columns -------------------------------------------------------------------------------
def to_columns(X: Any, feature_names: Sequence[str] | None = None) -> dict[str, Any]:
    """``X`` as name -> 1-D column (kept in its own library's type: no copies)."""
    module = type(X).__module__.split(".")[0]
    if module == "pandas" and hasattr(X, "columns"):
        return {str(name): X[name] for name in X.columns}
    if module == "pyarrow" and hasattr(X, "column_names"):
        return {str(name): X.column(i) for i, name in enumerate(X.column_names)}
    if isinstance(X, Mapping):
        return {str(name): col for name, col in X.items()}
    if isinstance(X, Sequence) and not isinstance(X, str | bytes) and len(X) == 0:
        return {}
    if (
        isinstance(X, Sequence)
        and not isinstance(X, str | bytes)
        and all(isinstance(row, Mapping) for row in X)
    ):
        keys = dict.fromkeys(key for row in X for key in row)
        return {str(key): [row.get(key) for row in X] for key in keys}
    if isinstance(X, np.ndarray | Sequence) and not isinstance(X, str | bytes):
        array = np.asarray(X)
        if array.ndim != 2:
            raise InvalidRequest(f"expected a 2-D array of rows, got shape {array.shape}")
        names = list(feature_names) if feature_names is not None else None
        if names is None:
            names = [f"x{i}" for i in range(array.shape[1])]
        if len(names) != array.shape[1]:
            raise InvalidRequest(f"{len(names)} feature names for {array.shape[1]} columns")
        return {str(name): array[:, i] for i, name in enumerate(names)}
    raise InvalidRequest(
        "data must be a pandas DataFrame, a pyarrow Table, a dict of columns, a list of "
        f"row dicts or a 2-D array, not {type(X).__name__}"
    )


def infer_kind(column: Any) -> str | None:
    """The kind a column is sketched as: numbers "numeric"; bool, text and category
    "categorical"; None for what is not sketched (datetimes, lists, all-null lists)."""
    module = type(column).__module__.split(".")[0]
    if module == "pyarrow":  # arrays, chunked arrays, schema fields
        return arrow_kind(column.type)
    dtype = getattr(column, "dtype", None)
    if dtype is None:
        return _infer_objects(list(column))
    kind = getattr(dtype, "kind", "O")
    if kind in "iuf":
        return "numeric"
    if kind in "bUS":
        return "categorical"
    if kind == "O":
        if module == "pandas" and str(dtype) not in ("object",):
            return "categorical"  # category, string
        return _infer_objects(list(column))
    return None


def arrow_kind(t: Any) -> str | None:
    """``infer_kind`` for a pyarrow DataType."""
    import pyarrow.types as pat  # type: ignore[import-untyped]

    if pat.is_integer(t) or pat.is_floating(t) or pat.is_decimal(t):
        return "numeric"
    if pat.is_boolean(t) or pat.is_string(t) or pat.is_large_string(t) or pat.is_dictionary(t):
        return "categorical"
    is_string_view = getattr(pat, "is_string_view", None)  # pyarrow >= 16
    return "categorical" if is_string_view is not None and is_string_view(t) else None


def _infer_objects(values: list[Any]) -> str | None:
    types = set(map(type, values)) - {type(None)}
    if not types:
        return None
    if all(issubclass(t, int | float | np.integer | np.floating) for t in types) and not any(
        issubclass(t, bool | np.bool_) for t in types
    ):
        return "numeric"
    return "categorical"


def _batch_length(columns: Mapping[str, Any], *others: Any) -> int:
    lengths = {name: len(col) for name, col in columns.items()}
    for role, values in zip(("predictions", "probabilities", "labels"), others, strict=True):
        if values is not None:
            lengths[role] = len(values)
    distinct = set(lengths.values())
    if len(distinct) > 1:
        raise InvalidRequest(f"columns differ in length: {lengths}")
    return distinct.pop() if distinct else 0


def _score(probs: np.ndarray) -> np.ndarray:
    if probs.ndim == 1:
        return probs
    if probs.ndim != 2:
        raise InvalidRequest(f"probabilities must be 1-D or 2-D, got shape {probs.shape}")
    if probs.shape[1] <= 2:
        # binary: P(classes[1]); a single column is already that probability
        return np.asarray(probs[:, -1])
    return np.asarray(probs.max(axis=1))


def _update_role(
    sketch: ColumnSketch | None, role: str, values: Any, kind: str | None = None
) -> ColumnSketch:
    if sketch is None:
        sketch = ColumnSketch(kind or infer_kind(_column(values)) or "categorical")
    try:
        sketch.update(_column(values))
    except InvalidRequest as exc:
        raise ValidationFailed.field(role, exc.message) from None
    return sketch


def _column(values: Any) -> Any:
    if isinstance(values, list | tuple):
        return values
    module = type(values).__module__.split(".")[0]
    return values if module in ("pandas", "pyarrow") else np.asarray(values)
