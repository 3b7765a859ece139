"""validate() gives the verdict and reason of check_rows for every value, on every input kind."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from slipway.contracts.batch import PII_MASK, validate
from slipway.contracts.check import check_rows
from slipway.contracts.schema import Contract, FieldRule
from slipway.errors import InvalidRequest
from tests.contracts.strategies import contracts, row_values

SETTINGS = settings(max_examples=60, deadline=None)


def _canon(errors: dict[int, list[dict[str, Any]]]) -> dict[int, list[tuple[str, str]]]:
    return {
        row: sorted((str(e["field"]), e["reason"]) for e in problems)
        for row, problems in errors.items()
    }


def assert_same_verdicts(data: Any, contract: Contract, rows: list[Any]) -> None:
    report = validate(data, contract)
    expected = check_rows(contract, rows).errors
    assert _canon(report.errors()) == _canon(expected)
    assert report.invalid_rows == len(expected)
    assert report.rows == len(rows)
    for name, f in report.fields.items():
        per_row = sum(1 for problems in expected.values() for e in problems if e["field"] == name)
        assert f.violations == per_row == sum(f.reasons.values()), name


@st.composite
def messy_rows(draw: st.DrawFn, contract: Contract) -> list[Any]:
    """Rows of anything: valid, wrong types, nulls, missing and unknown keys, non-objects."""
    n = draw(st.integers(0, 150))
    per_field = {
        r.name: draw(st.lists(row_values(r), min_size=1, max_size=12)) for r in contract.inputs
    }
    rows: list[Any] = []
    for _ in range(n):
        choice = draw(st.integers(0, 40))
        if choice == 0:
            rows.append([1, 2])
            continue
        row = {name: draw(st.sampled_from(values)) for name, values in per_field.items()}
        if choice == 1:
            row.pop(draw(st.sampled_from(sorted(row))))
        if choice == 2:
            row["zz_extra"] = draw(st.integers())
        rows.append(row)
    return rows


@SETTINGS
@given(data=st.data(), contract=contracts())
def test_row_lists_get_check_rows_verdicts(data: st.DataObject, contract: Contract) -> None:
    rows = data.draw(messy_rows(contract))
    assert_same_verdicts(rows, contract, rows)


@SETTINGS
@given(data=st.data(), contract=contracts())
def test_dicts_of_lists_get_check_rows_verdicts(data: st.DataObject, contract: Contract) -> None:
    rows = [r for r in data.draw(messy_rows(contract)) if isinstance(r, dict)]
    rows = [r for r in rows if set(r) == set(contract.names)]
    columns = {name: [r[name] for r in rows] for name in contract.names}
    assert_same_verdicts(columns, contract, rows)


COLUMN_VALUES = {
    "int": st.integers(-2000, 2000),
    "float": st.floats(-2000, 2000, allow_nan=False),
    "float_nan": st.floats(allow_nan=True, allow_infinity=True),
    "bool": st.booleans(),
    "str": st.sampled_from(["3", "2.5", "true", "2024-01-02", "nope", "AB12", "abc", ""])
    | st.text(max_size=8),
    "list": st.lists(st.floats(-5, 5), max_size=5),
}


@st.composite
def typed_columns(draw: st.DrawFn, contract: Contract, kinds: list[str]) -> dict[str, list[Any]]:
    """One Python type per column (with nulls): what a DataFrame or a Table holds."""
    n = draw(st.integers(0, 150))
    out = {}
    for rule in contract.inputs:
        kind = draw(st.sampled_from(kinds))
        pool = draw(st.lists(COLUMN_VALUES[kind] | st.none(), min_size=1, max_size=10))
        out[rule.name] = [draw(st.sampled_from(pool)) for _ in range(n)]
    return out


def _rows(columns: dict[str, list[Any]]) -> list[dict[str, Any]]:
    names = list(columns)
    n = len(columns[names[0]]) if names else 0
    return [{name: columns[name][i] for name in names} for i in range(n)]


@SETTINGS
@given(data=st.data(), contract=contracts())
def test_arrow_tables_get_check_rows_verdicts(data: st.DataObject, contract: Contract) -> None:
    kinds = ["int", "float_nan", "bool", "str", "list"]
    columns = data.draw(typed_columns(contract, kinds))
    assert_same_verdicts(pa.table(columns), contract, _rows(columns))


@SETTINGS
@given(data=st.data(), contract=contracts())
def test_dataframes_get_check_rows_verdicts(data: st.DataObject, contract: Contract) -> None:
    # pandas reads None as NaN in number columns, so NaN stays out of this one.
    columns = data.draw(typed_columns(contract, ["int", "float", "bool", "str", "list"]))
    frame = pd.DataFrame(columns)
    # What the frame holds (ints with nulls become floats), as JSON would carry it.
    records = frame.to_dict("records") if len(frame.columns) else []
    rows = [
        {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
        for r in records
    ]
    assert_same_verdicts(frame, contract, rows)


CONTRACT = Contract(
    (
        FieldRule("age", "int", min=18, max=120),
        FieldRule("country", "category", allowed=("DE", "FR"), nullable=True),
        FieldRule("email", "string", pattern=r"[^@]+@[^@]+", pii=True),
        FieldRule("score", "float", min=0.0, max=1.0),
    )
)
ROWS = [
    {"age": 30, "country": "DE", "email": "a@b.c", "score": 0.5},
    {"age": 17, "country": "XX", "email": "secret-no-at", "score": 1.5},
    {"age": 40, "country": None, "email": "leak@nowhere", "score": 0.1},
    {"age": 200, "country": "FR", "email": "also-secret", "score": 0.2},
]


def _inputs() -> dict[str, Any]:
    frame = pd.DataFrame(ROWS)
    return {
        "rows": ROWS,
        "dict of lists": {k: [r[k] for r in ROWS] for k in ROWS[0]},
        "dict of arrays": {k: np.array([r[k] for r in ROWS]) for k in ("age", "score")}
        | {k: [r[k] for r in ROWS] for k in ("country", "email")},
        "dataframe": frame,
        "arrow": pa.Table.from_pandas(frame, preserve_index=False),
        "dataframe with categoricals": frame.astype({"country": "category"}),
    }


@pytest.mark.parametrize("kind", list(_inputs()))
def test_every_input_kind_gives_the_same_report(kind: str) -> None:
    report = validate(_inputs()[kind], CONTRACT)
    assert report.to_dict() == validate(ROWS, CONTRACT).to_dict()
    assert report.invalid_rows == 2
    assert report.invalid_indices.tolist() == [1, 3]
    assert report.fields["age"].reasons == {"below min 18": 1, "above max 120": 1}
    assert report.fields["country"].examples == [
        {"row": 1, "value": "XX", "reason": "not one of the allowed values"}
    ]


def test_pii_values_are_masked_in_examples() -> None:
    report = validate(ROWS, CONTRACT)
    email = report.fields["email"]
    assert email.violations == 2
    assert [e["value"] for e in email.examples] == [PII_MASK, PII_MASK]
    text = json.dumps(report.to_dict()) + json.dumps(report.summary_table())
    assert "secret" not in text


def test_examples_are_capped_at_five() -> None:
    report = validate({"age": list(range(20)), "score": [0.5] * 20}, CONTRACT)
    assert report.fields["age"].violations == 18
    assert [e["row"] for e in report.fields["age"].examples] == [0, 1, 2, 3, 4]


def test_missing_and_unknown_columns() -> None:
    frame = pd.DataFrame({"age": [30, 40], "score": [0.5, 0.5], "extra": [1, 2]})
    report = validate(frame, CONTRACT)
    assert report.missing_columns == ("country", "email")
    assert report.unknown_columns == ("extra",)
    # country is nullable: a column that is not there is null, which it allows.
    assert report.fields["country"].violations == 0
    assert report.fields["email"].reasons == {"missing": 2}
    assert report.fields["extra"].reasons == {"unknown field": 2}
    assert not report.fields["extra"].in_contract
    assert not report.ok


def test_a_clean_data_set() -> None:
    report = validate(ROWS[:1], CONTRACT)
    assert report.ok and report.invalid_rows == 0 and report.errors() == {}
    assert validate(pd.DataFrame(ROWS[:0], columns=list(ROWS[0])), CONTRACT).ok


def test_nan_is_missing_in_pandas_but_not_finite_elsewhere() -> None:
    rule = Contract((FieldRule("x", "float", nullable=True),))
    assert validate(pd.DataFrame({"x": [1.0, np.nan]}), rule).ok
    report = validate({"x": np.array([1.0, np.nan])}, rule)
    assert report.fields["x"].reasons == {"must be finite": 1}


def test_native_datetimes_are_iso_datetimes() -> None:
    contract = Contract((FieldRule("t", "datetime"),))
    times = pd.to_datetime(["2024-01-01T00:00:00", "2024-02-03T04:05:00"])
    assert validate(pd.DataFrame({"t": times}), contract).ok
    assert validate(pa.table({"t": pa.array(times.to_pydatetime())}), contract).ok
    assert validate({"t": times.to_numpy()}, contract).ok


def test_summary_table_rows() -> None:
    rows = validate(ROWS, CONTRACT).summary_table()
    age = next(r for r in rows if r["field"] == "age")
    assert age["violations"] == 2
    assert "below min 18: 1" in age["reasons"] and "row 1: 17" in age["examples"]


def test_unsupported_input_is_a_clear_error() -> None:
    with pytest.raises(InvalidRequest, match="pandas DataFrame"):
        validate(42, CONTRACT)
    with pytest.raises(InvalidRequest, match="differ in length"):
        validate({"age": [1, 2], "score": [1.0]}, CONTRACT)


def test_columns_checked_in_parallel_give_the_sequential_report(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Large inputs are checked a column per thread; the report must not change."""
    from slipway.contracts import batch

    rng = np.random.default_rng(7)
    n = 5_000
    frame = pd.DataFrame(
        {
            "a": rng.integers(0, 120, n),
            "b": rng.normal(0, 3, n),
            "c": rng.choice(["x", "y", "z", "w"], n),
            "d": rng.choice(["AB-12", "AB-7", "bad", "AB-123456"], n),
        }
    )
    frame.loc[::97, "b"] = np.nan
    contract = Contract.from_dict(
        {
            "inputs": [
                {"name": "a", "type": "int", "min": 0, "max": 100},
                {"name": "b", "type": "float", "min": -5, "max": 5, "nullable": True},
                {"name": "c", "type": "category", "allowed": ["x", "y", "z"]},
                {
                    "name": "d",
                    "type": "string",
                    "pattern": "AB-[0-9]+",
                    "max_length": 6,
                    "pii": True,
                },
            ]
        }
    )
    sequential = validate(frame, contract)
    monkeypatch.setattr(batch, "_PARALLEL_CELLS", 0)
    monkeypatch.setattr(batch.os, "cpu_count", lambda: 4)  # threads even on one core
    parallel = validate(frame, contract)
    assert parallel.invalid_rows > 0
    assert parallel.to_dict() == sequential.to_dict()
    assert parallel.errors() == sequential.errors()
