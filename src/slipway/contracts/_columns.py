"""A data set as columns that numpy can check: the common input of ``batch`` and ``infer``.

``data`` may be a pandas DataFrame, a pyarrow Table, a dict of columns (name -> list or
numpy array) or a list of row dicts. Each column becomes one of three shapes:

- ``Numbers``: a numpy array of int, uint, float or bool, with a null mask;
- ``Coded``: distinct values plus one code per row (-1 for null), for strings and the
  like, so a rule is checked once per distinct value and mapped back;
- ``Objects``: plain Python values (mixed types, lists), checked one by one.

Native values are judged by their JSON form: in pandas, NaN/NaT/None are missing values
(pandas' own convention), datetime64 and arrow timestamps become ISO 8601 strings. Elsewhere
(pyarrow, numpy, lists) a float NaN is a value, and is refused as not finite.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from slipway.errors import InvalidRequest


class _Absent:
    def __repr__(self) -> str:
        return "<absent>"


ABSENT: Any = _Absent()  # a key missing from a row dict


class Numbers:
    """Values of an int, uint, float or bool dtype (arbitrary where null), and a null mask.

    With ``nan_is_null`` (floats from pandas), the mask is found when first asked for;
    ``nulls_at`` finds it for a few rows only.
    """

    def __init__(
        self, values: np.ndarray, nulls: np.ndarray | None = None, *, nan_is_null: bool = False
    ) -> None:
        self.values = values
        self._nulls = nulls
        self.nan_pending = nan_is_null and values.dtype.kind == "f"

    @property
    def nulls(self) -> np.ndarray | None:
        if self.nan_pending:
            nulls = np.isnan(self.values)
            self._nulls = nulls if nulls.any() else None
            self.nan_pending = False
        return self._nulls

    def nulls_at(self, rows: np.ndarray) -> np.ndarray | None:
        if self.nan_pending:
            nulls = np.isnan(self.values[rows])
            return nulls if nulls.any() else None
        return None if self._nulls is None else self._nulls[rows]

    def value(self, i: int) -> Any:
        nulls = self.nulls_at(np.array([i]))
        if nulls is not None and nulls[0]:
            return None
        return self.values[i].item()


class Coded:
    """Distinct values and one code per row (index into uniques, -1 for null).

    Built from a pyarrow string array, the encoding waits until ``uniques`` or ``codes``
    is asked for: a check that can run on the strings themselves (``arrow``) skips it.
    """

    def __init__(
        self, uniques: list[Any] | None = None, codes: np.ndarray | None = None, arrow: Any = None
    ) -> None:
        self._uniques = uniques
        self._codes = codes
        self.arrow = arrow  # pyarrow (large_)string array, or None
        self.dictionary: Any = None  # once ``arrow`` is encoded: the uniques, in arrow

    @property
    def uniques(self) -> list[Any]:
        if self._uniques is None:
            self._uniques = self.encoded_dictionary().to_pylist()
        return self._uniques

    @property
    def codes(self) -> np.ndarray:
        if self._codes is None:
            self.encoded_dictionary()
        assert self._codes is not None
        return self._codes

    def encoded_dictionary(self) -> Any:
        """The uniques as an arrow array (encoding ``arrow`` if not done yet)."""
        if self.dictionary is None:
            self.dictionary, self._codes = _encode_arrow(self.arrow)
        return self.dictionary

    def __len__(self) -> int:
        return len(self.arrow) if self._codes is None else len(self._codes)

    def value(self, i: int) -> Any:
        if self._codes is None:
            return self.arrow[i].as_py()
        code = int(self._codes[i])
        if code < 0:
            return None
        return self.uniques[code] if self._uniques is not None else self.dictionary[code].as_py()


@dataclass
class Objects:
    values: list[Any]  # None for null

    def value(self, i: int) -> Any:
        return self.values[i]


Column = Numbers | Coded | Objects


@dataclass
class Table:
    rows: int
    columns: dict[str, Column]
    # Rows that lack a column's key (row dicts only); absent from a whole table instead
    # means the column is not in ``columns`` at all.
    absent: dict[str, np.ndarray]
    not_objects: np.ndarray | None = None  # rows of a row list that are not dicts


def to_table(data: Any) -> Table:
    if isinstance(data, Mapping):
        return _from_dict(data)
    if isinstance(data, Sequence) and not isinstance(data, str | bytes):
        return _from_rows(data)
    module = type(data).__module__.split(".")[0]
    if module == "pandas" and hasattr(data, "columns"):
        return _from_pandas(data)
    if module == "pyarrow" and hasattr(data, "column_names"):
        return _from_arrow_table(data)
    raise InvalidRequest(
        "data must be a pandas DataFrame, a pyarrow Table, a dict of columns "
        f"or a list of row dicts, not {type(data).__name__}"
    )


# -- inputs --------------------------------------------------------------------------------
def _from_dict(data: Mapping[str, Any]) -> Table:
    columns: dict[str, Column] = {}
    lengths = set()
    for name, col in data.items():
        columns[str(name)] = column = _any_column(col)
        lengths.add(len(column) if isinstance(column, Coded) else len(column.values))
    if len(lengths) > 1:
        raise InvalidRequest(f"columns differ in length: {sorted(lengths)}")
    return Table(lengths.pop() if lengths else 0, columns, {})


def _any_column(col: Any) -> Column:
    module = type(col).__module__.split(".")[0]
    if isinstance(col, np.ndarray):
        return _from_numpy(col)
    if module == "pyarrow":
        return _from_arrow(col)
    if module == "pandas":
        return _from_series(col)
    return _from_list(list(col))


def _from_rows(rows: Sequence[Any]) -> Table:
    n = len(rows)
    bad = np.fromiter((not isinstance(r, Mapping) for r in rows), bool, n)
    good: Sequence[Any] = [r for r in rows if isinstance(r, Mapping)] if bad.any() else rows
    keys = dict.fromkeys(k for row in good for k in row)
    columns: dict[str, Column] = {}
    absent: dict[str, np.ndarray] = {}
    for key in keys:
        values = [r.get(key, ABSENT) if isinstance(r, Mapping) else ABSENT for r in rows]
        gone = np.fromiter((v is ABSENT for v in values), bool, n)
        if gone.any():
            absent[str(key)] = gone
            values = [None if v is ABSENT else v for v in values]
        columns[str(key)] = _from_list(values)
    return Table(n, columns, absent, bad if bad.any() else None)


def _from_list(values: list[Any]) -> Column:
    """Lists of plain ints, floats or bools go to numpy; anything else stays Python."""
    kinds = set(map(type, values))
    kinds.discard(type(None))
    # Only one type: a mix of int and float must keep each value's type for the reasons.
    if kinds in ({int}, {float}, {bool}):
        dtype: Any = {int: np.int64, float: np.float64, bool: bool}[kinds.pop()]
        obj = np.array(values, dtype=object)
        nulls: np.ndarray = obj == None  # noqa: E711 - elementwise on objects
        if nulls.any():
            obj[nulls] = 0
        try:
            arr = obj.astype(dtype)
        except OverflowError:
            return Objects(values)
        return Numbers(arr, nulls if nulls.any() else None)
    return Objects(values)


def _from_numpy(arr: np.ndarray, *, nan_is_null: bool = False) -> Column:
    if arr.ndim != 1:
        return Objects([v.tolist() if isinstance(v, np.ndarray) else v for v in arr])
    kind = arr.dtype.kind
    if kind in "iub":
        return Numbers(arr)
    if kind == "f":
        return Numbers(arr, nan_is_null=nan_is_null)
    if kind in "US":
        uniques, codes = np.unique(arr, return_inverse=True)
        return Coded(uniques.tolist(), codes.reshape(-1))
    if kind == "M":
        nat = np.isnat(arr)
        uniques, codes = np.unique(arr.astype("datetime64[us]"), return_inverse=True)
        codes = codes.reshape(-1).astype(np.int64)
        codes[nat] = -1
        return Coded([str(u) for u in np.datetime_as_string(uniques)], codes)
    return _from_list(arr.tolist())


# -- pandas --------------------------------------------------------------------------------
# Above this many cells, columns convert on a few threads: hashing strings (pyarrow,
# pandas) and numpy's masks release the GIL, and most of the time is there.
_PARALLEL_CELLS = 2_000_000


def _convert(fn: Any, items: list[Any], cells: int) -> list[Column]:
    workers = min(4, os.cpu_count() or 1, len(items))
    if cells < _PARALLEL_CELLS or workers < 2:
        return [fn(item) for item in items]
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(fn, items))


def _from_pandas(df: Any) -> Table:
    names = list(df.columns)
    series = [df[name] for name in names]
    columns = _convert(_from_series, series, len(df) * len(names))
    return Table(len(df), {str(n): c for n, c in zip(names, columns, strict=True)}, {})


def _from_series(s: Any) -> Column:
    import pandas as pd  # type: ignore[import-untyped]

    dtype = s.dtype
    if isinstance(dtype, pd.StringDtype) and dtype.storage == "pyarrow":
        import pyarrow as pa  # type: ignore[import-untyped]

        return _from_arrow(pa.array(s.array))  # no copy; missing values are nulls
    if isinstance(dtype, pd.CategoricalDtype):
        categories = s.cat.categories
        uniques = _iso(categories) if categories.dtype.kind == "M" else categories.tolist()
        return Coded(uniques, s.cat.codes.to_numpy().astype(np.int64))
    if isinstance(dtype, np.dtype):
        if dtype.kind == "M":
            return _from_numpy(s.to_numpy())
        if dtype.kind != "O":
            return _from_numpy(s.to_numpy(), nan_is_null=True)
    elif dtype.kind in "iufb":  # nullable extension dtypes: Int64, Float64, boolean
        nulls = s.isna().to_numpy()
        fill: Any = False if dtype.kind == "b" else 0
        values = s.to_numpy(dtype=dtype.numpy_dtype, na_value=fill)
        return Numbers(values, nulls if nulls.any() else None)
    elif dtype.kind == "M":  # timezone-aware datetimes
        codes, uniques = pd.factorize(s)
        return Coded(_iso(uniques), np.asarray(codes, dtype=np.int64))
    inferred = pd.api.types.infer_dtype(s, skipna=True)
    if inferred in ("string", "empty"):
        codes, uniques = pd.factorize(s)
        return Coded(list(uniques), np.asarray(codes, dtype=np.int64))
    if inferred in ("datetime", "datetime64", "date"):
        codes, uniques = pd.factorize(s)
        return Coded(_iso(uniques), np.asarray(codes, dtype=np.int64))
    values = s.to_numpy(dtype=object).tolist()
    for i in np.flatnonzero(s.isna().to_numpy()):
        values[i] = None
    return _from_list(values)


def _iso(values: Any) -> list[str]:
    return [v.isoformat() for v in values]


# -- pyarrow -------------------------------------------------------------------------------
def _from_arrow_table(table: Any) -> Table:
    names = list(table.column_names)
    arrays = [table.column(name) for name in names]
    columns = _convert(_from_arrow, arrays, table.num_rows * len(names))
    return Table(table.num_rows, {str(n): c for n, c in zip(names, columns, strict=True)}, {})


def _from_arrow(arr: Any) -> Column:
    import pyarrow as pa
    import pyarrow.compute as pc  # type: ignore[import-untyped]

    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
    t = arr.type
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return Coded(arrow=arr)  # encoded when needed
    nulls = arr.is_null().to_numpy(zero_copy_only=False) if arr.null_count else None
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t):
        if nulls is not None:
            arr = pc.fill_null(arr, False if pa.types.is_boolean(t) else 0)
        return Numbers(arr.to_numpy(zero_copy_only=False), nulls)
    if pa.types.is_null(t):
        return Numbers(np.zeros(len(arr)), np.ones(len(arr), dtype=bool))
    if pa.types.is_dictionary(t):
        uniques = arr.dictionary.to_pylist()
        if pa.types.is_temporal(arr.dictionary.type):
            uniques = _iso(uniques)
        return Coded(uniques, pc.fill_null(arr.indices, -1).to_numpy().astype(np.int64))
    if pa.types.is_temporal(t) and not pa.types.is_duration(t):
        uniques, codes = _encode_arrow(arr)
        return Coded(_iso(uniques.to_pylist()), codes)
    return Objects(arr.to_pylist())


def _encode_arrow(arr: Any) -> tuple[Any, np.ndarray]:
    """Distinct values (first seen first, an arrow array) and one code per row (-1: null)."""
    import pyarrow.compute as pc

    encoded = arr.dictionary_encode()
    indices = encoded.indices
    if indices.null_count:
        indices = pc.fill_null(indices, -1)
    codes = indices.to_numpy(zero_copy_only=False)
    return encoded.dictionary, codes.astype(np.int64, copy=False)
