"""ColumnSketch: counts, nulls, exact moments, KLL and frequent items, merge, JSON forms."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from slipway.errors import InvalidRequest, ValidationFailed
from slipway.monitoring.sketches import FREQ_LG_MAX_K, MAX_ITEM_LENGTH, ColumnSketch

# KLL k=200: normalized rank error ~1.3% (99% bound); tests allow a little more.
RANK_TOLERANCE = 0.02


def numeric(*batches: Any) -> ColumnSketch:
    s = ColumnSketch.numeric()
    for batch in batches:
        s.update(batch)
    return s


def categorical(*batches: Any) -> ColumnSketch:
    s = ColumnSketch.categorical()
    for batch in batches:
        s.update(batch)
    return s


def assert_quantiles_close(sketch: ColumnSketch, data: np.ndarray) -> None:
    """Each estimated quantile sits within the rank tolerance of its target rank."""
    qs = np.linspace(0.01, 0.99, 99)
    ranks = np.searchsorted(np.sort(data), sketch.quantiles(qs), side="right") / len(data)
    assert np.max(np.abs(ranks - qs)) < RANK_TOLERANCE


# -- numeric -------------------------------------------------------------------------------
def test_numeric_counts_nulls_and_nonfinite_apart() -> None:
    s = numeric(np.array([1.0, 2.0, np.nan, np.inf, -np.inf]), [3, None, 5])
    assert (s.count, s.nulls, s.nonfinite, s.finite, s.total) == (6, 2, 2, 4, 8)
    assert s.null_rate == pytest.approx(2 / 8)
    assert s.mean == pytest.approx(np.mean([1, 2, 3, 5]))
    assert s.std == pytest.approx(np.std([1, 2, 3, 5]))
    assert (s.min, s.max) == (1.0, 5.0)


def test_numeric_reads_match_numpy() -> None:
    x = np.random.default_rng(1).lognormal(0, 1, 200_000)
    s = numeric(x)
    assert s.mean == pytest.approx(x.mean(), rel=1e-12)
    assert s.std == pytest.approx(x.std(), rel=1e-9)
    assert s.min == pytest.approx(x.min(), rel=1e-6)
    assert s.max == pytest.approx(x.max(), rel=1e-6)
    assert_quantiles_close(s, x)
    edges = np.quantile(x, [0.25, 0.5, 0.75])
    assert s.pmf(edges) == pytest.approx([0.25] * 4, abs=RANK_TOLERANCE)
    assert s.cdf(edges)[-1] == pytest.approx(1.0)


def test_numeric_accepts_pandas_and_arrow_with_their_nulls() -> None:
    import pandas as pd
    import pyarrow as pa

    from_pandas = numeric(pd.Series([1.0, None, 3.0]), pd.array([4, None], dtype="Int64"))
    from_arrow = numeric(pa.chunked_array([pa.array([1.0, None]), pa.array([3.0, 4.0, None])]))
    for s in (from_pandas, from_arrow):
        assert (s.count, s.nulls, s.mean) == (3, 2, pytest.approx(8 / 3))
    # arrow buffers are read directly: offsets of sliced arrays and their validity bits
    values = [1.0, None, 3.0, None, 5.0, 6.0, 7.0, 8.0, 9.0, None, 11.0]
    sliced = numeric(pa.array(values).slice(3, 7), pa.array([1, None, 3]).slice(1))
    assert (sliced.count, sliced.nulls, sliced.mean) == (6, 3, pytest.approx(38 / 6))
    other_types = numeric(pa.array([True, None, False]), pa.array([None, None]))
    assert (other_types.count, other_types.nulls, other_types.mean) == (2, 3, 0.5)
    with pytest.raises(InvalidRequest, match="expected numbers"):
        numeric(pa.array(["1.5", "x"]))


def test_numeric_rejects_text_and_2d() -> None:
    with pytest.raises(InvalidRequest, match="expected numbers"):
        numeric(["1.5", "abc"])
    with pytest.raises(InvalidRequest, match="one column"):
        numeric(np.zeros((3, 2)))


def test_values_beyond_float32_are_clipped_without_warnings() -> None:
    s = numeric(np.array([1e300, -1e300, 0.0]))
    assert s.max == pytest.approx(3.4028234e38, rel=1e-6)
    assert s.std is not None and np.isfinite(s.std)
    json.dumps(s.to_dict(), allow_nan=False)


def test_empty_numeric_reads() -> None:
    s = ColumnSketch.numeric()
    assert s.mean is None and s.std is None and s.min is None and s.max is None
    assert np.isnan(s.quantiles([0.5])).all()
    assert (s.pmf([0.0]) == 0).all()
    assert s.null_rate == 0.0


def test_numeric_merge_equals_the_concatenation() -> None:
    rng = np.random.default_rng(2)
    parts = [rng.normal(i, 1 + i, 30_000) for i in range(4)]
    parts[1][::7] = np.nan
    merged = numeric(parts[0])
    for part in parts[1:]:
        merged.merge(numeric(part))
    whole = np.concatenate(parts)
    direct = numeric(whole)
    assert (merged.count, merged.nulls) == (direct.count, direct.nulls)
    assert merged.mean == pytest.approx(direct.mean, rel=1e-12)
    assert merged.std == pytest.approx(direct.std, rel=1e-12)
    assert merged.std == pytest.approx(np.nanstd(whole), rel=1e-9)
    assert_quantiles_close(merged, whole[~np.isnan(whole)])


# -- categorical ---------------------------------------------------------------------------
def test_categorical_stringifies_and_counts_nulls() -> None:
    s = categorical(["a", "b", None, True, np.nan, 1, 1.0, "1"], np.array([True, False]))
    assert s.frequencies() == {"a": 1, "b": 1, "true": 2, "false": 1, "1": 2, "1.0": 1}
    assert (s.count, s.nulls) == (8, 2)


def test_categorical_inputs_agree() -> None:
    import pandas as pd
    import pyarrow as pa

    values = ["x", "y", None, "x", "z", "x"]
    expected = {"x": 3.0, "y": 1.0, "z": 1.0}
    for batch in (
        values,
        np.array(values, dtype=object),
        pd.Series(values),
        pd.Series(values, dtype="category"),
        pa.array(values),
        pa.chunked_array([pa.array(values[:3]), pa.array(values[3:])]).dictionary_encode(),
    ):
        s = categorical(batch)
        assert (s.frequencies(), s.count, s.nulls) == (expected, 5, 1), type(batch)
    assert categorical(np.array(["x", "x", "y"])).frequencies() == {"x": 2, "y": 1}


def test_update_counts_is_the_value_counts_fast_path() -> None:
    s = ColumnSketch.categorical()
    s.update_counts(["de", "fr", "de", None], [10, 5, 2, 3], nulls=4)
    assert s.frequencies() == {"de": 12, "fr": 5}
    assert (s.count, s.nulls) == (17, 7)
    with pytest.raises(ValueError, match="negative"):
        s.update_counts(["x"], [-1])
    with pytest.raises(ValueError, match="categorical"):
        ColumnSketch.numeric().update_counts(["x"], [1])


def test_long_items_are_cut_and_unhashable_refused() -> None:
    s = categorical(["é" * 1000])
    assert list(s.frequencies()) == ["é" * MAX_ITEM_LENGTH]
    with pytest.raises(InvalidRequest, match="scalar"):
        categorical([[1, 2]])


def test_many_distinct_values_keep_the_heavy_ones() -> None:
    """Zipf over 50,000 ids: the sketch is past capacity, yet the top items are found
    and their estimates are within the sketch's error."""
    rng = np.random.default_rng(3)
    ids = rng.zipf(1.3, 300_000) % 50_000
    s = categorical(ids)
    uniq, counts = np.unique(ids, return_counts=True)
    top = uniq[np.argsort(-counts)[:20]]
    heavy = set(s.heavy_items())
    assert {str(i) for i in top} <= heavy
    truth = dict(zip(uniq.tolist(), counts.tolist(), strict=True))
    for item in top:
        assert abs(s.estimate(str(item)) - truth[item]) <= 0.01 * len(ids)
    assert s.count == len(ids)
    assert len(s.frequencies()) <= 0.75 * 2**FREQ_LG_MAX_K


def test_categorical_merge_equals_the_concatenation() -> None:
    rng = np.random.default_rng(4)
    a = rng.choice(list("abcdefg"), 5_000)
    b = rng.choice(list("cdefghij"), 7_000)
    merged = categorical(a)
    merged.merge(categorical(b))
    assert merged.frequencies() == categorical(np.concatenate([a, b])).frequencies()
    with pytest.raises(ValueError, match="cannot merge"):
        merged.merge(ColumnSketch.numeric())


# -- memory and forms ----------------------------------------------------------------------
def test_memory_stays_bounded() -> None:
    rng = np.random.default_rng(5)
    s = ColumnSketch.numeric()
    for _ in range(100):
        s.update(rng.normal(size=10_000))
    assert s.count == 1_000_000
    assert len(json.dumps(s.to_dict())) < 6_000
    c = ColumnSketch.categorical()
    ids = np.arange(200_000)
    for chunk in np.split(ids, 20):
        c.update_counts(chunk.tolist(), [1] * len(chunk))
    assert c.count == 200_000
    assert len(json.dumps(c.to_dict())) < 64_000


@pytest.mark.parametrize("kind", ["numeric", "categorical"])
def test_round_trip_through_json(kind: str) -> None:
    rng = np.random.default_rng(6)
    s = ColumnSketch(kind)
    if kind == "numeric":
        s.update(np.append(rng.normal(size=50_000), [np.nan, np.inf]))
    else:
        s.update(rng.choice(["a", "b", "c", None], 50_000))
    data = json.loads(json.dumps(s.to_dict(), allow_nan=False))
    back = ColumnSketch.from_dict(data)
    if kind == "numeric":  # frequent items serialize in hash order, which a reload changes
        assert back.to_dict() == s.to_dict()
    assert (back.kind, back.count, back.nulls, back.nonfinite) == (
        s.kind,
        s.count,
        s.nulls,
        s.nonfinite,
    )
    if kind == "numeric":
        qs = [0.1, 0.5, 0.9]
        assert (back.quantiles(qs) == s.quantiles(qs)).all()
        assert (back.mean, back.std) == (s.mean, s.std)
    else:
        assert back.frequencies() == s.frequencies()
    copy = s.copy()
    copy.merge(s)
    assert copy.count == 2 * s.count and s.count == back.count


def _valid(kind: str = "numeric") -> dict[str, Any]:
    s = ColumnSketch(kind)
    s.update([1.0, 2.0, 3.0] if kind == "numeric" else ["a", "b"])
    return s.to_dict()


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"kind": "text"}, "w.kind"),
        ({"count": -1}, "w.count"),
        ({"count": True}, "w.count"),
        ({"count": 4}, "w.count"),  # disagrees with the sketch
        ({"nulls": "0"}, "w.nulls"),
        ({"nonfinite": None}, "w.nonfinite"),
        ({"mean": float("nan")}, "w.mean"),
        ({"m2": -1.0}, "w.m2"),
        ({"sketch": 12}, "w.sketch"),
        ({"sketch": "not base64!"}, "w.sketch"),
        ({"sketch": "AAAA"}, "w.sketch"),
        ({"sketch": _valid("categorical")["sketch"]}, "w.sketch"),
    ],
)
def test_malformed_dicts_name_the_field(change: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationFailed) as info:
        ColumnSketch.from_dict({**_valid(), **change}, where="w")
    assert info.value.details[0]["field"] == field


def test_malformed_dict_shapes() -> None:
    with pytest.raises(ValidationFailed) as info:
        ColumnSketch.from_dict([1, 2], where="w")  # type: ignore[arg-type]
    assert info.value.details[0]["field"] == "w"
    broken = _valid("categorical")
    broken["sketch"] = broken["sketch"][:-8]
    with pytest.raises(ValidationFailed, match="sketch"):
        ColumnSketch.from_dict(broken)
