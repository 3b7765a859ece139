"""infer_contract: a contract that accepts its own data, round-trips as YAML, honours caps."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from slipway.contracts.batch import validate
from slipway.contracts.infer import infer_contract
from slipway.contracts.schema import Contract
from slipway.errors import InvalidRequest


def _frame(n: int = 500) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    return pd.DataFrame(
        {
            "age": rng.integers(18, 90, n),
            "income": rng.uniform(1000.0, 9000.0, n),
            "country": rng.choice(["NL", "DE", "FR"], n),
            "signup": pd.date_range("2024-01-01", periods=n, freq="h").strftime("%Y-%m-%dT%H:%M"),
            "name": [f"user-{i}" for i in range(n)],
            "active": rng.random(n) < 0.5,
            "score": np.where(rng.random(n) < 0.1, np.nan, rng.uniform(0, 1, n)),
        }
    )


def test_inferred_contract_accepts_its_own_data() -> None:
    frame = _frame()
    contract = infer_contract(frame)
    by_name = {f.name: f for f in contract.inputs}
    assert by_name["age"].type == "int" and isinstance(by_name["age"].min, int)
    assert by_name["age"].min is not None and by_name["age"].min <= 18
    assert by_name["age"].max is not None and by_name["age"].max >= 89
    assert by_name["income"].type == "float"
    assert by_name["country"].type == "category"
    assert by_name["country"].allowed == ("DE", "FR", "NL")
    assert by_name["signup"].type == "datetime"
    assert by_name["name"].type == "string" and by_name["name"].max_length == 8
    assert by_name["active"].type == "bool"
    assert by_name["score"].nullable and not by_name["age"].nullable
    for data in (frame, pa.Table.from_pandas(frame, preserve_index=False)):
        assert validate(data, contract).ok


def test_yaml_round_trips_exactly() -> None:
    contract = infer_contract(_frame())
    text = contract.to_yaml()
    again = Contract.from_yaml(text)
    assert again == contract
    assert again.to_yaml() == text


def test_ranges_come_from_quantiles_with_a_margin() -> None:
    values = np.arange(0, 1001)
    contract = infer_contract({"x": values}, quantiles=(0.0, 1.0), margin=0.1)
    assert (contract.inputs[0].min, contract.inputs[0].max) == (-100, 1100)
    # An outlier beyond the quantiles is left out of the range: that is what it flags.
    with_outlier = np.append(np.arange(0, 10_000), 10**9)
    rule = infer_contract({"x": with_outlier}).inputs[0]
    assert rule.max is not None and rule.max < 10**9


def test_category_cap() -> None:
    frame = pd.DataFrame({"c": [f"v{i % 60}" for i in range(600)]})
    assert infer_contract(frame).inputs[0].type == "string"
    capped = infer_contract(frame, category_cap=60).inputs[0]
    assert capped.type == "category" and capped.allowed is not None
    assert len(capped.allowed) == 60


def test_row_lists_nulls_and_lists() -> None:
    rows = [
        {"a": 1, "v": [0.1, 0.2], "s": "x"},
        {"a": None, "v": [0.3], "s": "y"},
        {"a": 3, "v": [1, 2, 3]},
    ]
    contract = infer_contract(rows)
    a, v, s = contract.inputs
    assert (a.type, a.nullable) == ("int", True)
    assert (v.type, v.max_length) == ("list_float", 3)
    assert (s.type, s.nullable) == ("category", True)
    assert validate(rows, contract).ok


def test_uninferable_columns_are_named() -> None:
    with pytest.raises(InvalidRequest, match="'mixed'"):
        infer_contract([{"mixed": 1}, {"mixed": "a"}])
    with pytest.raises(InvalidRequest, match="without columns"):
        infer_contract({})
