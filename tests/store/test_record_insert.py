"""The hot-path record insert (driver executemany, msgspec JSON) stores what a Core insert
stores, on SQLite and PostgreSQL; a non-finite number in an answer is stored as null."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, select

from slipway.serving.records import RecordInsert
from slipway.store.engine import transaction
from slipway.store.tables import prediction_records


def record(rid: str, **over: Any) -> dict[str, Any]:
    return {
        "id": rid,
        "created_at": datetime(2026, 11, 23, 4, 5, 6, 0, tzinfo=UTC),  # no microseconds
        "endpoint": "iris",
        "model": "iris",
        "version": 3,
        "version_id": "v" * 32,
        "caller": "tok",
        "route": "plain",
        "rows": 2,
        "inputs": [{"a": 0.1, "b": None, "c": 3, "d": True}, {"a": 1e-300, "b": "é", "c": -1}],
        "outputs": {"predictions": [1, 0], "probabilities": [[0.25, 0.75], [1.0, 0.0]]},
        "latency_ms": 0.123,
        "outcome": "ok",
        "arm": "primary",
        "mirror_of": None,
    } | over


def stored(engine: Engine, rid: str) -> dict[str, Any]:
    with engine.connect() as conn:
        row = conn.execute(select(prediction_records).where(prediction_records.c.id == rid)).one()
    return dict(row._mapping)


def test_what_the_fast_insert_stores_reads_back_as_a_core_insert_would(engine: Engine) -> None:
    fast, core = record("fast"), record("core")
    with transaction(engine) as conn:
        RecordInsert(engine).run(conn, [fast])
        conn.execute(prediction_records.insert(), [core])
    got, want = stored(engine, "fast"), stored(engine, "core")
    assert got | {"id": "core"} == want
    assert got["created_at"] == fast["created_at"] and got["created_at"].tzinfo is not None
    assert got["inputs"] == fast["inputs"] and got["outputs"] == fast["outputs"]


def test_a_non_finite_answer_is_stored_as_null_and_does_not_fail_the_commit(
    engine: Engine,
) -> None:
    # PostgreSQL refuses NaN in JSON: stored as stdlib JSON writes it, it failed the
    # whole group commit (every request in it answered 503).
    bad = record(
        "nan",
        outcome="output_contract_violation",
        outputs={"predictions": [1], "probabilities": [[math.nan, 0.5]]},
    )
    shadow = record("shadow", arm="shadow", mirror_of="nan", outputs={"predictions": [math.inf]})
    with transaction(engine) as conn:
        RecordInsert(engine).run(conn, [bad, shadow, record("ok")])
    assert stored(engine, "nan")["outputs"]["probabilities"] == [[None, 0.5]]
    assert stored(engine, "shadow")["outputs"]["predictions"] == [None]
    assert stored(engine, "ok")["outputs"] == record("ok")["outputs"]
