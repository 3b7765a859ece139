"""The model input built from rows the contract passed: straight into a float matrix when
the contract types every signature field, else through Signature.matrix — same values."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from slipway.contracts.check import check_rows
from slipway.contracts.schema import Contract, FieldRule
from slipway.contracts.signature import Field, Signature
from slipway.serving.pool import LoadedVersion


def loaded(signature: Signature, contract: Contract) -> LoadedVersion:
    # The matrix needs only the signature and the contract.
    return LoadedVersion("e", 1, None, signature, None, contract)  # type: ignore[arg-type]


SIGNATURE = Signature((Field("a", "float"), Field("n", "int"), Field("b", "bool")))
CONTRACT = Contract(
    (FieldRule("a", "float", nullable=True), FieldRule("n", "int"), FieldRule("b", "bool"))
)


def test_a_contract_typing_every_signature_field_takes_the_direct_path() -> None:
    assert loaded(SIGNATURE, CONTRACT).numeric_inputs == ("a", "n", "b")


@pytest.mark.parametrize(
    "contract",
    [
        # A float in the contract may be fractional where the signature wants an int.
        Contract((FieldRule("a"), FieldRule("n", "float"), FieldRule("b", "bool"))),
        # A field the signature does not have (Signature.matrix refuses it by name).
        Contract((*CONTRACT.inputs, FieldRule("extra"))),
        # A field missing from the contract.
        Contract(CONTRACT.inputs[:2]),
    ],
)
def test_any_other_contract_goes_through_the_signature(contract: Contract) -> None:
    assert loaded(SIGNATURE, contract).numeric_inputs is None


def test_string_signatures_go_through_the_signature() -> None:
    signature = Signature((Field("s", "string"),))
    assert loaded(signature, Contract((FieldRule("s", "string"),))).numeric_inputs is None


ROW = st.fixed_dictionaries(
    {
        "a": st.none() | st.floats(allow_nan=False, allow_infinity=False) | st.integers(-99, 99),
        "n": st.integers(-(2**40), 2**40),
        "b": st.booleans(),
    }
)


@settings(max_examples=100, deadline=None)
@given(rows=st.lists(ROW, min_size=1, max_size=5))
def test_the_direct_path_gives_what_the_signature_gives(rows: list[dict[str, Any]]) -> None:
    checked = check_rows(CONTRACT, rows)
    assert checked.ok
    direct = loaded(SIGNATURE, CONTRACT).matrix(checked.rows)
    assert direct.dtype == np.float64
    np.testing.assert_array_equal(direct, SIGNATURE.matrix(checked.rows, allow_null=True))


def test_a_single_field_still_makes_one_column() -> None:
    # itemgetter of one name answers the bare value, not a 1-tuple: guarded in row_values.
    signature = Signature((Field("x", "float"),))
    contract = Contract((FieldRule("x", "float"),))
    rows = check_rows(contract, [{"x": 1.5}, {"x": -2}]).rows
    direct = loaded(signature, contract).matrix(rows)
    assert direct.shape == (2, 1)
    np.testing.assert_array_equal(direct, signature.matrix(rows, allow_null=True))
