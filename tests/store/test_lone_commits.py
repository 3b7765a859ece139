"""A lone request's record is committed on the event loop on SQLite, without ever
waiting there for the write lock; PostgreSQL commits stay on the writer thread."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import OperationalError

from slipway.ids import new_id
from slipway.serving.records import RecordWriter
from slipway.store import open_engine, transaction, upgrade
from slipway.store.engine import backend_name, lock_busy
from slipway.store.tables import prediction_records
from tests.store.conftest import a_record


def _stored(engine: Engine, rid: str) -> int:
    with engine.connect() as conn:
        query = select(func.count()).where(prediction_records.c.id == rid)
        return int(conn.execute(query).scalar_one())


def test_a_lone_record_commits_inline_on_sqlite_only(engine: Engine) -> None:
    async def scenario() -> RecordWriter:
        writer = RecordWriter(engine, alone=lambda: True)
        await writer.start()
        for rid in ids:
            await writer.write(a_record(rid))
        await writer.stop()
        return writer

    ids = [new_id() for _ in range(3)]
    writer = asyncio.run(scenario())
    assert [_stored(engine, rid) for rid in ids] == [1, 1, 1]
    assert writer.committed == 3
    assert writer.committed_inline == (3 if backend_name(engine) == "sqlite" else 0)


def test_records_of_concurrent_requests_commit_on_the_thread(tmp_path: Path) -> None:
    engine = _sqlite(tmp_path)
    busy = [False]

    async def scenario() -> RecordWriter:
        writer = RecordWriter(engine, alone=lambda: not busy[0])
        await writer.start()
        busy[0] = True  # other requests are running
        await writer.write(a_record(new_id()))
        await asyncio.gather(*(writer.write(a_record(new_id())) for _ in range(5)))
        busy[0] = False
        await writer.write(a_record(new_id()))
        await writer.stop()
        return writer

    writer = asyncio.run(scenario())
    assert writer.committed == 7
    assert writer.committed_inline == 1  # the last one, alone again
    engine.dispose()


def test_a_lone_commit_never_waits_on_the_event_loop_for_the_write_lock(
    tmp_path: Path,
) -> None:
    engine = _sqlite(tmp_path)
    rid = new_id()
    holder = sqlite3.connect(tmp_path / "slipway.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process is writing

    async def scenario() -> tuple[RecordWriter, float]:
        writer = RecordWriter(engine, alone=lambda: True)
        await writer.start()
        write = asyncio.create_task(writer.write(a_record(rid)))
        # The loop keeps running while the thread waits for the lock.
        started = time.monotonic()
        await asyncio.sleep(0.3)
        ticked = time.monotonic() - started
        assert not write.done()
        holder.execute("COMMIT")
        await write
        await writer.stop()
        return writer, ticked

    try:
        writer, ticked = asyncio.run(scenario())
    finally:
        holder.close()
    assert ticked < 2.0  # the busy timeout is 30 s: the loop was never held for it
    assert _stored(engine, rid) == 1
    assert writer.committed == 1 and writer.committed_inline == 0
    engine.dispose()


def test_a_no_wait_transaction_fails_at_once_and_restores_the_busy_timeout(
    tmp_path: Path,
) -> None:
    engine = _sqlite(tmp_path, busy_timeout_s=20.0)
    holder = sqlite3.connect(tmp_path / "slipway.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    started = time.monotonic()
    try:
        with pytest.raises(OperationalError) as caught, transaction(engine, wait_for_lock=False):
            pass
    finally:
        holder.execute("COMMIT")
        holder.close()
    assert time.monotonic() - started < 5.0
    assert lock_busy(caught.value)
    # The pooled connection waits for locks again, as every other writer expects.
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar_one() == 20_000
    engine.dispose()


def test_lock_busy_is_only_sqlites_locked_database() -> None:
    locked = sqlite3.OperationalError("database is locked")
    locked.sqlite_errorcode = 5  # type: ignore[attr-defined]
    assert lock_busy(OperationalError("BEGIN", None, locked))
    full = sqlite3.OperationalError("database or disk is full")
    full.sqlite_errorcode = 13  # type: ignore[attr-defined]
    assert not lock_busy(OperationalError("INSERT", None, full))
    assert not lock_busy(RuntimeError("database is locked"))


def _sqlite(tmp_path: Path, busy_timeout_s: float = 30.0) -> Engine:
    engine = open_engine(f"sqlite:///{tmp_path / 'slipway.db'}", busy_timeout_s=busy_timeout_s)
    upgrade(engine)
    return engine
