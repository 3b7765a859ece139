"""Opening the store: one engine per process, SQLite (WAL) by default, PostgreSQL by URL."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from slipway.errors import ValidationFailed

PG_CONNECT_TIMEOUT_S = 5

log = logging.getLogger("slipway.store")


def open_engine(url: str, *, busy_timeout_s: float = 30.0, **kwargs: Any) -> Engine:
    """Create an engine with the pragmas slipway relies on.

    SQLite: WAL so readers never block the writer, ``synchronous=FULL`` so a committed
    prediction record survives power loss, a busy timeout (``busy_timeout_s``, the
    ``store_busy_timeout_s`` setting) instead of instant ``database is locked``, and
    foreign keys on. PostgreSQL: ``synchronous_commit=on``.
    """
    if busy_timeout_s < 0:
        raise ValidationFailed.field("store_busy_timeout_s", f"must be >= 0, got {busy_timeout_s}")
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        busy_ms = int(busy_timeout_s * 1000)
        engine = create_engine(url, connect_args={"timeout": busy_timeout_s}, **kwargs)

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, record: Any) -> None:
            # Let SQLAlchemy, not the driver, own transactions (pysqlite's default defers
            # BEGIN, which breaks SERIALIZABLE-style read-then-write in one transaction).
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute(f"PRAGMA busy_timeout={busy_ms}")
            cur.close()
            record.info[_BUSY_MS] = busy_ms  # restored after a no-wait transaction

        @event.listens_for(engine, "begin")
        def _begin(conn: Any) -> None:
            # Writes (see transaction()) take the lock up front with IMMEDIATE, so two
            # writers queue on busy_timeout instead of one failing on lock upgrade.
            # Reads stay deferred: under WAL they never wait for a writer.
            immediate = conn.info.get(_IMMEDIATE)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        return engine
    if parsed.get_backend_name() == "postgresql":
        # A server that drops packets instead of refusing must fail a connect in seconds
        # (503, retried), not after the OS's TCP timeout of minutes.
        kwargs["connect_args"] = {"connect_timeout": PG_CONNECT_TIMEOUT_S} | kwargs.get(
            "connect_args", {}
        )
    engine = create_engine(url, pool_pre_ping=True, **kwargs)
    if parsed.get_backend_name() == "postgresql":

        @event.listens_for(engine, "connect")
        def _durable(dbapi_conn: Any, _record: Any) -> None:
            # A 200 is sent only after its record is committed: make sure a commit is
            # durable even where the server's default says otherwise.
            with dbapi_conn.cursor() as cur:
                cur.execute("SET synchronous_commit TO on")
            dbapi_conn.commit()

    return engine


_IMMEDIATE = "slipway_write_transaction"
_BUSY_MS = "slipway_busy_timeout_ms"


@contextmanager
def transaction(engine: Engine, *, wait_for_lock: bool = True) -> Iterator[Connection]:
    """A write transaction: committed on success, rolled back on error.

    Use this, not ``engine.begin()``, for every write, and do not open a second
    connection inside it (on SQLite the second one would wait for this one's lock).

    ``wait_for_lock=False``: on SQLite, fail at once with ``database is locked``
    (:func:`lock_busy`) instead of waiting up to the busy timeout when another
    connection holds the write lock; for a caller that must not block (the event loop).
    Other backends ignore it.
    """
    with engine.connect() as conn:
        busy_ms = None if wait_for_lock else conn.connection.info.get(_BUSY_MS)
        if busy_ms is not None:
            _set_busy_timeout(conn, 0)
        conn.info[_IMMEDIATE] = True
        try:
            with conn.begin():
                yield conn
        finally:
            conn.info.pop(_IMMEDIATE, None)
            if busy_ms is not None:
                _restore_busy_timeout(conn, busy_ms)


def _set_busy_timeout(conn: Connection, busy_ms: int) -> None:
    # On the driver's connection: through SQLAlchemy the PRAGMA would autobegin.
    conn.connection.driver_connection.execute(f"PRAGMA busy_timeout={busy_ms}")  # type: ignore[union-attr]


def _restore_busy_timeout(conn: Connection, busy_ms: int) -> None:
    try:
        _set_busy_timeout(conn, busy_ms)
    except Exception as exc:
        # A pooled connection left failing fast on every lock would turn the next
        # writer's brief wait into a 503: drop it, the pool opens a fresh one. Not
        # raised: the transaction's own outcome (committed or not) is what counts.
        log.warning("dropping a store connection whose busy timeout was not restored: %s", exc)
        conn.invalidate()


def backend_name(engine: Engine) -> str:
    return engine.url.get_backend_name()


# SQLite primary result codes that say the database cannot be used right now (locked
# by another process, disk full or failing) rather than that a statement is wrong:
# SQLITE_BUSY, SQLITE_LOCKED, SQLITE_IOERR, SQLITE_FULL, SQLITE_CANTOPEN, SQLITE_PROTOCOL.
_SQLITE_UNAVAILABLE = frozenset({5, 6, 10, 13, 14, 15})
_SQLITE_LOCK_BUSY = frozenset({5, 6})  # SQLITE_BUSY, SQLITE_LOCKED


def store_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` means the store is out of reach for now — down, unreachable,
    locked past the busy timeout, its connection lost, no pooled connection free — so
    the request may succeed if retried later (503), as opposed to a bug (500)."""
    if isinstance(exc, PoolTimeout):
        return True
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    if not isinstance(exc, OperationalError):
        return False
    if isinstance(exc.orig, sqlite3.Error):
        return _sqlite_code(exc) in _SQLITE_UNAVAILABLE
    # PostgreSQL (psycopg): OperationalError is connection failures and SQLSTATE classes
    # 08 (connection), 53 (resources), 57 (operator intervention, e.g. admin shutdown)
    # and 58 (system error).
    return True


def lock_busy(exc: BaseException) -> bool:
    """Whether ``exc`` is SQLite's ``database is locked``: another connection holds the
    write lock (the error a ``wait_for_lock=False`` transaction fails with)."""
    return isinstance(exc, OperationalError) and _sqlite_code(exc) in _SQLITE_LOCK_BUSY


def _sqlite_code(exc: DBAPIError) -> int | None:
    """The SQLite primary result code behind ``exc``, or None. Extended result codes
    keep the primary code in their low byte; an error raised by the sqlite3 module
    itself (or another driver's) has no code and is not the store's state."""
    code = getattr(exc.orig, "sqlite_errorcode", None)
    return None if code is None else code & 0xFF
