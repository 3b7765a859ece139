"""The same drift code over two data sets in memory or on disk, for notebooks and CI::

    report = drift("reference.parquet", "today.parquet")
    report.drifted            # ["amount", "country"]

Each column is read once, whole: numbers go to the KLL sketch in one vectorized update,
categories through a value_counts (arrow's or pandas') into the frequent-items sketch.
Parquet files are read one column at a time, so memory holds a column, not a file.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from slipway.errors import InvalidRequest, SlipwayError, ValidationFailed
from slipway.monitoring.drift import DriftReport, DriftThresholds, profile_drift
from slipway.monitoring.profile import Profile, arrow_kind, infer_kind, to_columns

__all__ = ["drift"]


def drift(
    reference: Any,
    current: Any,
    *,
    columns: Sequence[str] | None = None,
    thresholds: DriftThresholds | None = None,
) -> DriftReport:
    """Drift of every column the two data sets share (or of ``columns``).

    ``reference`` and ``current``: pandas DataFrames, pyarrow Tables, dicts of arrays,
    or paths to .parquet, .csv, .json or .jsonl files. A column's kind comes from the
    reference (from the current data where the reference has only nulls); columns of
    other types (datetimes, lists) are skipped unless named in ``columns``.
    """
    # Two threads, one per side: reading, value_counts and numpy release the GIL, so one
    # side's work overlaps the other's KLL updates (which hold it).
    with ThreadPoolExecutor(2) as pool:
        opening = pool.submit(_Source.open, current, "current")
        ref = _Source.open(reference, "reference")
        cur = opening.result()
        kinds = _kinds(ref, cur, columns)
        profiling = pool.submit(cur.profile, kinds)
        reference_profile = ref.profile(kinds)
        current_profile = profiling.result()
    return profile_drift(reference_profile, current_profile, thresholds or DriftThresholds())


def _kinds(ref: _Source, cur: _Source, columns: Sequence[str] | None) -> dict[str, str]:
    if columns is None:
        names = [name for name in ref.names if name in cur.names]
        if not names:
            raise InvalidRequest(f"{ref.label} and {cur.label} have no column in common")
    else:
        names = list(dict.fromkeys(columns))
        for side in (ref, cur):
            missing = [name for name in names if name not in side.names]
            if missing:
                raise ValidationFailed.field(missing[0], f"no such column in {side.label}")
    kinds: dict[str, str] = {}
    for name in names:
        kind = ref.kind(name) or cur.kind(name)
        if kind is not None:
            kinds[name] = kind
        elif columns is not None:
            raise ValidationFailed.field(name, "neither numbers nor categories")
    return kinds


class _Source:
    """One side's columns, by name: in memory, or read from a Parquet file on demand."""

    def __init__(self, label: str, columns: dict[str, Any] | None, parquet: Any = None) -> None:
        self.label = label
        self._columns = columns
        self._parquet = parquet
        self.names: list[str] = (
            list(columns) if columns is not None else list(parquet.schema_arrow.names)
        )

    @classmethod
    def open(cls, data: Any, role: str) -> _Source:
        if not isinstance(data, str | os.PathLike):
            return cls(role, to_columns(data))
        path = Path(data)
        if path.suffix.lower() not in (".parquet", ".pq"):
            from slipway.contracts.io import read_table

            return cls(str(data), to_columns(read_table(path)))
        if not path.is_file():
            raise InvalidRequest(f"{data}: no such file")
        try:
            import pyarrow.parquet as pq  # type: ignore[import-untyped]
        except ImportError:
            raise SlipwayError(
                "reading data files needs pyarrow: pip install 'slipway[data]'"
            ) from None
        try:
            parquet = pq.ParquetFile(path)
            # Strings come back as dictionaries (codes into the file's own dictionary
            # pages): value_counts then counts codes, 4x less work than counting strings.
            text = [f.name for f in parquet.schema_arrow if arrow_kind(f.type) == "categorical"]
            if text:
                parquet = pq.ParquetFile(path, read_dictionary=text)
            return cls(str(data), None, parquet)
        except Exception as exc:  # noqa: BLE001 - arrow raises several kinds; all mean this
            raise InvalidRequest(f"{data}: cannot read as parquet: {_first_line(exc)}") from None

    def column(self, name: str) -> Any:
        if self._columns is not None:
            return self._columns[name]
        try:
            return self._parquet.read(columns=[name]).column(0)
        except Exception as exc:  # noqa: BLE001 - as in open()
            raise InvalidRequest(
                f"{self.label}: cannot read {name!r}: {_first_line(exc)}"
            ) from None

    def kind(self, name: str) -> str | None:
        if self._columns is not None:
            return infer_kind(self._columns[name])
        return arrow_kind(self._parquet.schema_arrow.field(name).type)

    @property
    def rows(self) -> int:
        if self._parquet is not None:
            return int(self._parquet.metadata.num_rows)
        return len(next(iter(self._columns.values()))) if self._columns else 0

    def profile(self, kinds: dict[str, str]) -> Profile:
        profile = Profile.empty(kinds)
        for name, sketch in profile.columns.items():
            try:
                sketch.update(self.column(name))  # one column in memory at a time
            except InvalidRequest as exc:
                # Name the data set too: the same column may be fine on the other side.
                raise ValidationFailed.field(name, f"in {self.label}: {exc.message}") from None
        profile.rows = self.rows
        return profile


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
