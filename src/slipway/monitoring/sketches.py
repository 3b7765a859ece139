"""One column's mergeable sketch: KLL quantiles for numbers, frequent items for categories.

Memory is bounded whatever the number of updates: a KLL sketch with k=200 keeps a few
hundred floats (~2.5 KB serialized), a frequent-items sketch at most 768 items, each cut
to 256 characters. Sketches merge in microseconds, so windows and shards combine freely::

    s = ColumnSketch.numeric()
    s.update(np.array([1.0, 2.0, np.nan, np.inf]))  # count 3, nulls 1, nonfinite 1
    s.quantiles([0.5])                               # ~1.5 (from the KLL sketch)
    ColumnSketch.from_dict(s.to_dict())              # JSON-safe, no pickle

Numeric: ``None``/NaN are nulls; ±inf are values (in ``count``) but kept out of the KLL
sketch and out of mean/std, and counted in ``nonfinite``; finite values beyond float32's
range (±3.4e38) are clipped to it. Mean and std are exact
(running moments merged with Chan's formula); std is the population one, as numpy's.
Categorical: values are stringified (``True`` -> ``"true"``); ``None``/NaN are nulls.
"""

from __future__ import annotations

import base64
import binascii
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import datasketches as ds  # type: ignore[import-untyped]
import numpy as np

from slipway.errors import InvalidRequest, ValidationFailed

KINDS = ("numeric", "categorical")
KLL_K = 200
# 2**10 slots: up to 768 items tracked exactly before the sketch starts to estimate.
FREQ_LG_MAX_K = 10
MAX_ITEM_LENGTH = 256
_F32_MAX = float(np.finfo(np.float32).max)

__all__ = ["KINDS", "ColumnSketch"]


class ColumnSketch:
    """A numeric or categorical column's sketch with its null count; see the module doc."""

    kind: str
    count: int
    nulls: int

    def __init__(self, kind: str) -> None:
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
        self.kind = kind
        self.count = 0
        self.nulls = 0
        self.nonfinite = 0
        # Running moments of the finite values: how many, their mean, sum of squared
        # deviations (M2). Exact, unlike anything read back from the KLL sketch.
        self._n = 0
        self._mean = 0.0
        self._m2 = 0.0
        self._kll: Any = ds.kll_floats_sketch(KLL_K) if kind == "numeric" else None
        self._freq: Any = ds.frequent_strings_sketch(FREQ_LG_MAX_K) if kind != "numeric" else None

    @classmethod
    def numeric(cls) -> ColumnSketch:
        return cls("numeric")

    @classmethod
    def categorical(cls) -> ColumnSketch:
        return cls("categorical")

    def __repr__(self) -> str:
        return f"ColumnSketch({self.kind}, count={self.count}, nulls={self.nulls})"

    # -- updates -------------------------------------------------------------------------
    def update(self, values: Any) -> None:
        """Add a batch: a numpy array, list, pandas Series or pyarrow (chunked) array."""
        if self.kind == "numeric":
            for batch in _float_batches(values):
                self._update_numeric(batch)
        else:
            items, counts, nulls = _value_counts(values)
            self.update_counts(items, counts, nulls)

    def update_counts(self, items: Sequence[Any], counts: Sequence[int], nulls: int = 0) -> None:
        """Add distinct values with their counts (the output of a value_counts)."""
        if self.kind != "categorical":
            raise ValueError("update_counts is for categorical sketches")
        if nulls < 0:
            raise ValueError("nulls must not be negative")
        merged: dict[str, int] = {}
        for item, raw in zip(items, counts, strict=True):
            c = int(raw)
            if c < 0:
                raise ValueError(f"count of {item!r} is negative")
            key = _stringify(item)
            if key is None:
                nulls += c
            elif c:
                merged[key] = merged.get(key, 0) + c
        for key, c in merged.items():
            self._freq.update(key, c)
            self.count += c
        self.nulls += int(nulls)

    def _update_numeric(self, x: np.ndarray) -> None:
        finite_mask = np.isfinite(x)
        if finite_mask.all():
            finite, n_nan = x, 0
        else:
            finite, n_nan = x[finite_mask], int(np.count_nonzero(np.isnan(x)))
        self.nulls += n_nan
        self.nonfinite += len(x) - n_nan - len(finite)
        self.count += len(x) - n_nan
        if not len(finite):
            return
        with np.errstate(over="ignore"):
            f32 = finite.astype(np.float32)
        if np.isinf(f32).any():
            # Beyond float32's range: clipped to it, for the moments too (whose squares
            # would otherwise overflow float64).
            finite = np.clip(finite, -_F32_MAX, _F32_MAX)
            f32 = finite.astype(np.float32)
        mean = float(finite.mean())
        deviations = finite - mean
        # Not np.dot: it wakes BLAS threads whose spinning slowed each update ~2x.
        m2 = float(np.square(deviations, out=deviations).sum())
        self._combine(len(finite), mean, m2)
        self._kll.update(f32)

    def _combine(self, n: int, mean: float, m2: float) -> None:
        """Chan et al.'s parallel update of (n, mean, M2)."""
        total = self._n + n
        delta = mean - self._mean
        self._m2 += m2 + delta * delta * self._n * n / total
        self._mean += delta * n / total
        self._n = total

    def merge(self, other: ColumnSketch) -> None:
        """Fold ``other`` into this sketch (``other`` is left unchanged)."""
        if other.kind != self.kind:
            raise ValueError(f"cannot merge a {other.kind} sketch into a {self.kind} one")
        if self.kind == "numeric":
            self._kll.merge(other._kll)
            if other._n:
                self._combine(other._n, other._mean, other._m2)
        else:
            self._freq.merge(other._freq)
        self.count += other.count
        self.nulls += other.nulls
        self.nonfinite += other.nonfinite

    def copy(self) -> ColumnSketch:
        return ColumnSketch.from_dict(self.to_dict())

    # -- forms ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        sketch = self._kll if self.kind == "numeric" else self._freq
        out: dict[str, Any] = {"kind": self.kind, "count": self.count, "nulls": self.nulls}
        if self.kind == "numeric":
            out.update(nonfinite=self.nonfinite, mean=self._mean, m2=self._m2)
        out["sketch"] = base64.b64encode(sketch.serialize()).decode("ascii")
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "sketch") -> ColumnSketch:
        """Rebuild from ``to_dict``'s form, checking every field; bytes are parsed by
        DataSketches' own deserializer, never unpickled."""
        if not isinstance(data, Mapping):
            raise ValidationFailed.field(where, "must be an object")
        kind = data.get("kind")
        if kind not in KINDS:
            raise ValidationFailed.field(f"{where}.kind", f"must be one of {', '.join(KINDS)}")
        self = cls(kind)
        self.count = _count(data, "count", where)
        self.nulls = _count(data, "nulls", where)
        raw = data.get("sketch")
        if not isinstance(raw, str):
            raise ValidationFailed.field(f"{where}.sketch", "must be a base64 string")
        try:
            blob = base64.b64decode(raw.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError):
            raise ValidationFailed.field(f"{where}.sketch", "is not valid base64") from None
        parse = ds.kll_floats_sketch if kind == "numeric" else ds.frequent_strings_sketch
        try:
            sketch = parse.deserialize(blob)
        except (ValueError, IndexError, RuntimeError, TypeError) as exc:
            raise ValidationFailed.field(
                f"{where}.sketch", f"is not a {kind} sketch: {exc}"
            ) from None
        if kind == "numeric":
            self.nonfinite = _count(data, "nonfinite", where)
            self._mean = _number(data, "mean", where)
            self._m2 = _number(data, "m2", where)
            if self._m2 < 0:
                raise ValidationFailed.field(f"{where}.m2", "must not be negative")
            self._kll, self._n = sketch, int(sketch.n)
            seen = self._n + self.nonfinite
        else:
            self._freq, seen = sketch, int(sketch.total_weight)
        if seen != self.count:
            raise ValidationFailed.field(
                f"{where}.count", f"is {self.count} but the sketch holds {seen} values"
            )
        return self

    # -- reads ---------------------------------------------------------------------------
    @property
    def total(self) -> int:
        return self.count + self.nulls

    @property
    def null_rate(self) -> float:
        return self.nulls / self.total if self.total else 0.0

    @property
    def finite(self) -> int:
        """Numeric values in the KLL sketch (count less ±inf)."""
        return self._n if self.kind == "numeric" else 0

    def quantiles(self, qs: Sequence[float] | np.ndarray) -> np.ndarray:
        """Approximate quantiles (rank error ~1.3% at k=200); NaN when empty."""
        self._need("numeric")
        if self._kll.is_empty():
            return np.full(len(qs), np.nan)
        return np.asarray(self._kll.get_quantiles(list(map(float, qs))), dtype=np.float64)

    def pmf(self, edges: Sequence[float] | np.ndarray) -> np.ndarray:
        """Mass in [-inf, e0), [e0, e1), ..., [e_last, inf] for increasing ``edges``;
        all zeros when empty."""
        self._need("numeric")
        if self._kll.is_empty():
            return np.zeros(len(edges) + 1)
        return np.asarray(self._kll.get_pmf(list(map(float, edges))), dtype=np.float64)

    def cdf(self, points: Sequence[float] | np.ndarray) -> np.ndarray:
        """Fraction of values below each point (then 1.0 at the end); NaN-free."""
        return np.cumsum(self.pmf(points))

    @property
    def mean(self) -> float | None:
        self._need("numeric")
        return self._mean if self._n else None

    @property
    def std(self) -> float | None:
        self._need("numeric")
        return math.sqrt(self._m2 / self._n) if self._n else None

    @property
    def min(self) -> float | None:
        self._need("numeric")
        return None if self._kll.is_empty() else float(self._kll.get_min_value())

    @property
    def max(self) -> float | None:
        self._need("numeric")
        return None if self._kll.is_empty() else float(self._kll.get_max_value())

    def frequencies(self) -> dict[str, float]:
        """Estimated count per item; exact while fewer than 768 distinct items were seen,
        then the items that may be frequent (no false negatives)."""
        self._need("categorical")
        rows = self._freq.get_frequent_items(ds.frequent_items_error_type.NO_FALSE_NEGATIVES)
        return {item: float(estimate) for item, estimate, _lo, _hi in rows}

    def heavy_items(self) -> list[str]:
        """Items surely frequent (no false positives): every item while exact."""
        self._need("categorical")
        rows = self._freq.get_frequent_items(ds.frequent_items_error_type.NO_FALSE_POSITIVES)
        return [row[0] for row in rows]

    def estimate(self, item: str) -> float:
        """Estimated count of one item (0 for one never seen while exact)."""
        self._need("categorical")
        return float(self._freq.get_estimate(item))

    def _need(self, kind: str) -> None:
        if self.kind != kind:
            raise ValueError(f"not available on a {self.kind} sketch")


# -- inputs --------------------------------------------------------------------------------
def _float_batches(values: Any) -> list[np.ndarray]:
    """Any 1-D batch as float64 arrays (one per arrow chunk), nulls as NaN."""
    module = type(values).__module__.split(".")[0]
    if module == "pyarrow":
        return _arrow_floats(values)
    try:
        if module == "pandas":
            values = values.to_numpy(dtype=np.float64, na_value=np.nan)
        x = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidRequest(f"expected numbers: {exc}") from None
    if x.ndim != 1:
        raise InvalidRequest(f"expected one column of values, got shape {x.shape}")
    return [x]


def _arrow_floats(values: Any) -> list[np.ndarray]:
    """Arrow chunks read straight from their buffers: arrow's own to_numpy first imports
    pandas when installed, a quarter of a second the first time."""
    import pyarrow as pa  # type: ignore[import-untyped]
    import pyarrow.compute as pc  # type: ignore[import-untyped]

    out = []
    for raw in values.chunks if hasattr(values, "chunks") else [values]:
        chunk = raw
        if chunk.type != pa.float64():
            try:
                chunk = pc.cast(raw, pa.float64())
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
                raise InvalidRequest(f"expected numbers: {exc}") from None
        n, offset = len(chunk), chunk.offset
        validity, data = chunk.buffers()[:2]
        if data is None:
            x = np.full(n, np.nan)
        else:
            x = np.frombuffer(data, np.float64, count=n, offset=offset * 8)
        if chunk.null_count and data is not None:
            bits = np.frombuffer(validity, np.uint8)
            valid = np.unpackbits(bits, count=offset + n, bitorder="little")[offset:]
            x = np.where(valid.view(bool), x, np.nan)
        out.append(x)
    return out


def _value_counts(values: Any) -> tuple[list[Any], list[int], int]:
    """Distinct values, their counts and the null count, without a Python loop per row
    except for plain lists and object arrays (counted by ``Counter`` in C)."""
    module = type(values).__module__.split(".")[0]
    if module == "pyarrow":
        import pyarrow.compute as pc

        vc = pc.value_counts(values)
        items, counts = vc.field("values").to_pylist(), vc.field("counts").to_pylist()
        # value_counts lists null as a value of its own
        return items, counts, 0
    if module == "pandas":
        vc = values.value_counts(dropna=True, sort=False)
        return vc.index.tolist(), vc.to_numpy().tolist(), int(values.isna().sum())
    if isinstance(values, np.ndarray) and values.dtype.kind in "biufUS":
        if values.ndim != 1:
            raise InvalidRequest(f"expected one column of values, got shape {values.shape}")
        uniq, counts = np.unique(values, return_counts=True)
        return uniq.tolist(), counts.tolist(), 0
    if isinstance(values, np.ndarray):
        values = values.tolist()
    if isinstance(values, str | bytes) or not isinstance(values, Sequence):
        raise InvalidRequest(f"expected a column of values, not {type(values).__name__}")
    try:
        # Keyed by type too: True == 1 == 1.0 as dict keys, but they are different items.
        counter = Counter(zip(map(type, values), values, strict=True))
    except TypeError as exc:  # unhashable values: lists, dicts
        raise InvalidRequest(f"expected scalar values: {exc}") from None
    return [value for _type, value in counter], list(counter.values()), 0


def _stringify(value: Any) -> str | None:
    """The item a value is counted as; None for a null."""
    if value is None:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    text = value if isinstance(value, str) else str(value)
    return text[:MAX_ITEM_LENGTH]


def _count(data: Mapping[str, Any], key: str, where: str) -> int:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValidationFailed.field(f"{where}.{key}", "must be a non-negative integer")
    return value


def _number(data: Mapping[str, Any], key: str, where: str) -> float:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValidationFailed.field(f"{where}.{key}", "must be a finite number")
    return float(value)
