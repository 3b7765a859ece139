"""Telling "the store is out of reach" (503, retry later) from a bug (500).

``store_unavailable`` decides which answer a database error gets; the busy timeout
(``store_busy_timeout_s``) bounds how long a write waits for a lock another process holds.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest
from sqlalchemy import Column, Engine, Integer, MetaData, Table, select, text
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from slipway.errors import ValidationFailed
from slipway.ids import utcnow
from slipway.store import open_engine, transaction
from slipway.store.engine import store_unavailable
from slipway.store.tables import tokens
from tests.conftest import free_port

_things = Table("things", MetaData(), Column("id", Integer, primary_key=True))


def test_a_write_locked_out_past_the_busy_timeout_is_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    engine = open_engine(f"sqlite:///{path}", busy_timeout_s=0.2)
    _things.create(engine)
    locker = sqlite3.connect(path, isolation_level=None)
    try:
        locker.execute("BEGIN EXCLUSIVE")
        started = time.monotonic()
        with pytest.raises(OperationalError) as caught, transaction(engine) as conn:
            conn.execute(_things.insert().values(id=1))
        waited = time.monotonic() - started
        assert 0.15 <= waited < 5, waited  # waited for the lock, then gave up
        assert store_unavailable(caught.value), caught.value
        with engine.connect() as conn:  # WAL: reads go on while the writer is locked out
            assert conn.execute(select(_things)).all() == []
    finally:
        locker.close()
    with transaction(engine) as conn:  # the lock is gone: the next write goes through
        conn.execute(_things.insert().values(id=1))
    engine.dispose()


def test_statement_errors_are_bugs_not_outages(engine: Engine) -> None:
    with pytest.raises(DBAPIError) as no_table, engine.connect() as conn:
        conn.execute(text("SELECT * FROM no_such_table"))
    assert not store_unavailable(no_table.value), no_table.value
    row = {
        "id": "t1",
        "principal_id": "nobody",  # the foreign key fails (SQLite: foreign_keys=ON)
        "name": "",
        "token_sha256": "0" * 64,
        "scopes": [],
        "created_by": "test",
    }
    with pytest.raises(IntegrityError) as integrity, transaction(engine) as conn:
        conn.execute(tokens.insert().values(**row, created_at=utcnow()))
    assert not store_unavailable(integrity.value), integrity.value
    assert not store_unavailable(ValueError("not a database error"))


def test_an_unreachable_postgresql_is_unavailable() -> None:
    pytest.importorskip("psycopg")
    # Nothing listens on a port just found free: the connection is refused.
    engine = open_engine(f"postgresql+psycopg://slipway@127.0.0.1:{free_port()}/none")
    with pytest.raises(OperationalError) as caught, engine.connect():
        pass
    assert store_unavailable(caught.value), caught.value
    engine.dispose()


def test_no_free_pooled_connection_is_unavailable() -> None:
    assert store_unavailable(PoolTimeout("QueuePool limit reached"))


def test_a_negative_busy_timeout_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationFailed) as caught:
        open_engine(f"sqlite:///{tmp_path / 'x.db'}", busy_timeout_s=-1)
    assert caught.value.details[0]["field"] == "store_busy_timeout_s"
