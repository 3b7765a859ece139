"""The hash chain on both backends: append, link, read back, verify, filter, concurrency."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select, update

from slipway.audit import GENESIS, SYSTEM, Actor, append, event_hash
from slipway.audit.query import iter_events, list_events
from slipway.audit.verify import verify
from slipway.store import transaction
from slipway.store.tables import audit_events, audit_head
from tests.audit.conftest import append_events


def _head(engine: Engine) -> tuple[int, str]:
    with engine.connect() as conn:
        row = conn.execute(select(audit_head.c.seq, audit_head.c.hash)).one()
    return int(row.seq), str(row.hash)


def test_empty_log_starts_at_genesis(engine: Engine, tmp_path: Path) -> None:
    assert _head(engine) == (0, GENESIS)
    report = verify(engine, tmp_path / "audit")
    assert report.ok and report.events == 0 and report.unverified_tail == 0


def test_append_links_each_event_to_the_previous(engine: Engine) -> None:
    with transaction(engine) as conn:
        first = append(
            conn,
            Actor("alice", token_id="t1", request_id="r1"),
            "model.create",
            target_kind="model",
            target="iris",
            after={"owner": "ml", "score": 0.5},
            reason="new model",
        )
        second = append(conn, SYSTEM, "endpoint.deploy", target_kind="endpoint", target="iris")
    assert (first["seq"], second["seq"]) == (1, 2)
    assert first["prev_hash"] == GENESIS
    assert first["hash"] == event_hash(GENESIS, first)
    assert second["prev_hash"] == first["hash"]
    assert _head(engine) == (2, second["hash"])
    # What the store returns hashes to exactly what was hashed at append time.
    with engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(select(audit_events).order_by("seq")).mappings()]
    assert event_hash(GENESIS, rows[0]) == rows[0]["hash"]
    assert event_hash(rows[0]["hash"], rows[1]) == rows[1]["hash"]
    assert rows[0]["token_id"] == "t1" and rows[0]["after"] == {"owner": "ml", "score": 0.5}


def test_event_is_rolled_back_with_the_change(engine: Engine) -> None:
    append_events(engine, 3)
    before = _head(engine)
    with pytest.raises(RuntimeError), transaction(engine) as conn:
        append(conn, SYSTEM, "model.retire", target_kind="model", target="iris")
        raise RuntimeError("the change failed")
    assert _head(engine) == before
    assert verify(engine, Path("/nonexistent")).events == 3


def test_verify_finds_an_edit_on_each_backend(engine: Engine, tmp_path: Path) -> None:
    append_events(engine, 30)
    assert verify(engine, tmp_path).ok
    with transaction(engine) as conn:
        conn.execute(update(audit_events).where(audit_events.c.seq == 17).values(actor="mallory"))
    report = verify(engine, tmp_path)
    assert not report.ok
    assert report.first_bad_seq == 17
    assert "changed" in report.reason


def test_concurrent_appends_stay_one_chain(engine: Engine, tmp_path: Path) -> None:
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            for i in range(50):
                with transaction(engine) as conn:
                    append(conn, Actor(f"w{n}"), "test.append", target_kind="t", target=f"{i}")
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    report = verify(engine, tmp_path)
    assert report.ok, report
    assert report.events == 200 and _head(engine)[0] == 200


def test_list_events_filters(engine: Engine) -> None:
    append_events(engine, 40)
    everything = list_events(engine, limit=1000)
    assert [e["seq"] for e in everything] == list(range(1, 41))
    assert isinstance(everything[0]["created_at"], str)
    datetime.fromisoformat(everything[0]["created_at"])

    by_actor = list_events(engine, actor="user3", limit=1000)
    assert by_actor and all(e["actor"] == "user3" for e in by_actor)
    assert len(by_actor) == sum(1 for e in everything if e["actor"] == "user3")
    by_target = list_events(engine, target="model-2", action="endpoint.deploy")
    assert by_target and all(
        e["target"] == "model-2" and e["action"] == "endpoint.deploy" for e in by_target
    )
    assert [e["seq"] for e in list_events(engine, after_seq=35)] == [36, 37, 38, 39, 40]
    assert len(list_events(engine, limit=7)) == 7

    now = datetime.now(UTC)
    assert len(list_events(engine, since=now - timedelta(hours=1), limit=1000)) == 40
    assert list_events(engine, since=now + timedelta(hours=1)) == []
    assert list_events(engine, until=now - timedelta(hours=1)) == []
    naive = (now - timedelta(hours=1)).replace(tzinfo=None)  # taken as UTC
    assert len(list_events(engine, since=naive, limit=1000)) == 40


def test_iter_events_pages_through_everything(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    from slipway.audit import query

    monkeypatch.setattr(query, "EXPORT_PAGE", 7)
    append_events(engine, 30)
    assert [e["seq"] for e in iter_events(engine)] == list(range(1, 31))
    assert [e["seq"] for e in iter_events(engine, after_seq=25)] == [26, 27, 28, 29, 30]
    assert len(list(iter_events(engine, limit=10))) == 10
    assert all(e["actor"] == "user1" for e in iter_events(engine, actor="user1"))
