"""Profile: building from every input shape, roles, merge, JSON forms, contract kinds."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from slipway.contracts.schema import Contract
from slipway.errors import InvalidRequest, ValidationFailed
from slipway.monitoring.profile import Profile, build_profile, kinds_from_contract

ROWS = 1_000


def columns(seed: int = 0, rows: int = ROWS) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 90, rows)
    income = rng.lognormal(10, 1, rows)
    income[::10] = np.nan
    return {
        "age": age,
        "income": income,
        "country": rng.choice(["DE", "FR", "NL"], rows).astype(object),
        "member": rng.random(rows) < 0.3,
    }


def summary(p: Profile) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, s in p.columns.items():
        reads = (s.mean,) if s.kind == "numeric" else (s.frequencies(),)
        out[name] = (s.kind, s.count, s.nulls, *reads)
    return out


EXPECTED_KINDS = {
    "age": "numeric",
    "income": "numeric",
    "country": "categorical",
    "member": "categorical",
}


def test_every_input_shape_gives_the_same_profile() -> None:
    import pandas as pd
    import pyarrow as pa

    data = columns()
    df = pd.DataFrame(data)
    expected = summary(build_profile(data))
    assert build_profile(data).kinds() == EXPECTED_KINDS
    assert summary(build_profile(df)) == expected
    assert summary(build_profile(pa.Table.from_pandas(df))) == expected
    rows = df.astype(object).where(df.notna(), None).to_dict(orient="records")
    assert summary(build_profile(rows)) == expected
    assert build_profile(data).rows == ROWS
    assert summary(build_profile(data)) == summary(
        build_profile({k: list(v) for k, v in data.items()})
    )


def test_2d_array_with_feature_names() -> None:
    X = np.random.default_rng(1).normal(size=(500, 3))
    p = build_profile(X, feature_names=["a", "b", "c"])
    assert p.kinds() == {"a": "numeric", "b": "numeric", "c": "numeric"}
    assert p.columns["b"].mean == pytest.approx(X[:, 1].mean())
    assert list(build_profile(X).columns) == ["x0", "x1", "x2"]
    with pytest.raises(InvalidRequest, match="feature names"):
        build_profile(X, feature_names=["a"])
    with pytest.raises(InvalidRequest, match="data must be"):
        build_profile("not data")


def test_kinds_inferred_from_dtypes_and_given_kinds_select() -> None:
    import pandas as pd

    df = pd.DataFrame(
        {
            "n": pd.array([1, None, 3], dtype="Int64"),
            "flag": pd.array([True, None, False], dtype="boolean"),
            "cat": pd.Series(["a", "b", "a"], dtype="category"),
            "text": ["x", "y", "z"],
            "when": pd.to_datetime(["2024-01-01"] * 3),
        }
    )
    p = build_profile(df)
    assert p.kinds() == {
        "n": "numeric",
        "flag": "categorical",
        "cat": "categorical",
        "text": "categorical",
    }
    assert p.columns["flag"].frequencies() == {"true": 1, "false": 1}
    chosen = build_profile(df, kinds={"n": "categorical"})
    assert chosen.kinds() == {"n": "categorical"}
    assert chosen.columns["n"].frequencies() == {"1": 1, "3": 1}
    with pytest.raises(InvalidRequest, match="'missing'"):
        build_profile(df, kinds={"missing": "numeric"})


def test_binary_classifier_roles() -> None:
    rng = np.random.default_rng(2)
    p1 = rng.random(ROWS)
    probs = np.column_stack([1 - p1, p1])
    labels = rng.choice(["no", "yes"], ROWS)
    p = build_profile(columns(), probabilities=probs, classes=["no", "yes"], labels=labels)
    assert p.prediction is not None and p.score is not None and p.label is not None
    assert p.prediction.frequencies() == {
        "yes": float((p1 > 0.5).sum()),
        "no": float((p1 <= 0.5).sum()),
    }
    assert p.score.mean == pytest.approx(p1.mean())  # P(classes[1])
    assert p.label.kind == "categorical" and p.label.count == ROWS


def test_multiclass_score_is_the_max_probability_and_regression_is_numeric() -> None:
    probs = np.random.default_rng(3).dirichlet([1, 1, 1], ROWS)
    p = build_profile(columns(), predictions=probs.argmax(axis=1), probabilities=probs)
    assert p.score is not None and p.score.mean == pytest.approx(probs.max(axis=1).mean())
    reg = build_profile(columns(), predictions=np.linspace(0, 1, ROWS))
    assert reg.prediction is not None and reg.prediction.kind == "numeric"
    with pytest.raises(InvalidRequest, match="classes"):
        build_profile(columns(), probabilities=probs, classes=["a", "b"])


def test_update_counts_absent_columns_as_nulls_and_checks_lengths() -> None:
    p = Profile.empty({"a": "numeric", "b": "categorical"}, prediction="categorical", score=True)
    p.update({"a": [1.0, 2.0], "extra": ["ignored", "too"]}, predictions=["x", "y"])
    assert (p.rows, p.columns["a"].count, p.columns["b"].nulls) == (2, 2, 2)
    assert "extra" not in p.columns and p.score is not None and p.score.count == 0
    with pytest.raises(InvalidRequest, match="differ in length"):
        p.update({"a": [1.0, 2.0]}, predictions=["x"])
    with pytest.raises(ValidationFailed) as info:
        p.update({"a": ["one", "two"]})
    assert info.value.details[0]["field"] == "a"
    with pytest.raises(ValueError, match="kind"):
        Profile.empty({"a": "text"})


def test_merge_is_a_union_and_equals_one_profile_of_both() -> None:
    a, b = columns(4), columns(5)
    left = build_profile(a, predictions=np.ones(ROWS))
    right = build_profile({k: v for k, v in b.items() if k != "member"})
    right.columns["only_right"] = build_profile({"only_right": np.arange(ROWS)}).columns[
        "only_right"
    ]
    left.merge(right)
    both = build_profile({k: np.concatenate([a[k], b[k]]) for k in ("age", "income", "country")})
    assert left.rows == 2 * ROWS
    assert set(left.columns) == {"age", "income", "country", "member", "only_right"}
    for name in ("age", "income"):
        assert left.columns[name].mean == pytest.approx(both.columns[name].mean)
        assert left.columns[name].nulls == both.columns[name].nulls
    assert left.columns["country"].frequencies() == both.columns["country"].frequencies()
    assert left.columns["member"].count == ROWS
    assert left.prediction is not None and left.prediction.count == ROWS
    right.columns["only_right"].update([1.0])  # a merged-in copy, not the same object
    assert left.columns["only_right"].count == ROWS
    clash = Profile.empty({"age": "categorical"})
    with pytest.raises(ValueError, match="cannot merge"):
        left.merge(clash)


def test_round_trip_through_json() -> None:
    probs = np.random.default_rng(6).dirichlet([1, 1], ROWS)
    p = build_profile(columns(), probabilities=probs, classes=[0, 1], labels=np.zeros(ROWS))
    data = json.loads(json.dumps(p.to_dict(), allow_nan=False))
    back = Profile.from_dict(data)
    assert summary(back) == summary(p)
    assert back.rows == p.rows
    for role in ("prediction", "score", "label"):
        mine, theirs = getattr(p, role), getattr(back, role)
        assert (theirs.kind, theirs.count) == (mine.kind, mine.count)
    assert back.columns["age"].to_dict() == p.columns["age"].to_dict()  # KLL bytes: stable
    assert Profile.from_dict(Profile.empty({}).to_dict()).columns == {}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"rows": -1}, "profile.rows"),
        ({"columns": []}, "profile.columns"),
        ({"columns": {"age": {"kind": "numeric"}}}, "profile.columns.age.count"),
        ({"score": "x"}, "profile.score"),
    ],
)
def test_malformed_profiles_name_the_field(change: dict[str, Any], field: str) -> None:
    data = {**build_profile(columns()).to_dict(), **change}
    with pytest.raises(ValidationFailed) as info:
        Profile.from_dict(data)
    assert info.value.details[0]["field"] == field
    with pytest.raises(ValidationFailed):
        Profile.from_dict(None)


def test_categorical_score_is_refused() -> None:
    data = build_profile({"c": ["a"]}, predictions=["x"]).to_dict()
    data["score"] = data["prediction"]
    with pytest.raises(ValidationFailed, match="numeric"):
        Profile.from_dict(data)


def test_kinds_from_contract_leaves_pii_out() -> None:
    contract = Contract.from_dict(
        {
            "inputs": [
                {"name": "age", "type": "int"},
                {"name": "income", "type": "float"},
                {"name": "member", "type": "bool"},
                {"name": "country", "type": "category", "allowed": ["DE", "FR"]},
                {"name": "note", "type": "string"},
                {"name": "email", "type": "string", "pii": True},
                {"name": "salary", "type": "float", "pii": True},
                {"name": "signup", "type": "datetime"},
            ]
        }
    )
    assert kinds_from_contract(contract) == {
        "age": "numeric",
        "income": "numeric",
        "member": "categorical",
        "country": "categorical",
        "note": "categorical",
    }
    live = Profile.empty(kinds_from_contract(contract))
    live.update({"age": [30], "email": ["someone@example.com"], "salary": [1e5]})
    assert "email" not in json.dumps(live.to_dict()) and "salary" not in live.columns
