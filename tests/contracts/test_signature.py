from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from slipway.contracts.signature import Signature
from slipway.errors import ValidationFailed

SIG = Signature.from_dict(
    {
        "inputs": [
            {"name": "x", "type": "float"},
            {"name": "n", "type": "int"},
            {"name": "flag", "type": "bool"},
        ],
        "classes": ["a", "b"],
    }
)

finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
row = st.fixed_dictionaries(
    {
        "x": finite | st.integers(-(10**6), 10**6),
        "n": st.integers(-(10**6), 10**6),
        "flag": st.booleans(),
    }
)


@given(st.lists(row, min_size=1, max_size=20))
def test_valid_rows_become_a_float_matrix_in_field_order(rows: list[dict]) -> None:
    X = SIG.matrix(rows)
    assert X.shape == (len(rows), 3) and X.dtype == np.float64
    for i, r in enumerate(rows):
        assert X[i, 0] == float(r["x"]) and X[i, 1] == r["n"] and X[i, 2] == float(r["flag"])


BAD_VALUES = {
    "x": ["1.5", None, True, math.nan, math.inf, [1.0]],
    "n": [1.5, "3", None, False],
    "flag": [1, "true", None, 0.0],
}


@given(
    row, st.sampled_from([(f, v) for f, vs in BAD_VALUES.items() for v in vs]), st.integers(0, 4)
)
def test_one_bad_value_is_rejected_naming_its_row_and_field(
    good: dict, bad: tuple, position: int
) -> None:
    field, value = bad
    rows = [dict(good) for _ in range(5)]
    rows[position][field] = value
    with pytest.raises(ValidationFailed) as exc:
        SIG.matrix(rows)
    assert exc.value.details == [
        {"row": position, "field": field, "reason": exc.value.details[0]["reason"]}
    ]
    assert f"inputs[{position}].{field}" in exc.value.message


def test_missing_and_unknown_fields_are_named() -> None:
    with pytest.raises(ValidationFailed) as exc:
        SIG.matrix([{"x": 1.0, "n": 1, "extra": 2}])
    reasons = {(d["field"], d["reason"]) for d in exc.value.details}
    assert reasons == {("flag", "missing"), ("extra", "unknown field")}


def test_string_fields_give_an_object_matrix() -> None:
    sig = Signature.from_dict(
        {"inputs": [{"name": "city", "type": "string"}, {"name": "v", "type": "float"}]}
    )
    X = sig.matrix([{"city": "Oslo", "v": 2}])
    assert X.dtype == object and X.tolist() == [["Oslo", 2.0]]


def test_round_trip_and_inference() -> None:
    assert Signature.from_dict(SIG.to_dict()) == SIG
    inferred = Signature.infer(
        np.zeros((3, 2)), y=np.array([0, 1, 1]), classes=[np.int64(0), 1], feature_names=["a", "b"]
    )
    assert inferred.to_dict() == {
        "inputs": [{"name": "a", "type": "float"}, {"name": "b", "type": "float"}],
        "outputs": [{"name": "prediction", "type": "int"}],
        "classes": [0, 1],
    }
    rows = Signature.infer([{"k": "v", "n": 1}])
    assert [f.type for f in rows.inputs] == ["string", "int"]


@pytest.mark.parametrize(
    "bad, field",
    [
        ({}, "signature.inputs"),
        ({"inputs": [{"name": "a", "type": "tensor"}]}, "signature.inputs[0].type"),
        ({"inputs": [{"name": "a"}, {"name": "a"}]}, "signature.inputs[1].name"),
        ({"inputs": [{"name": "a"}], "classes": "ab"}, "signature.classes"),
    ],
)
def test_bad_signatures_name_the_field(bad: dict, field: str) -> None:
    with pytest.raises(ValidationFailed) as exc:
        Signature.from_dict(bad)
    assert exc.value.details[0]["field"] == field
