"""Opening the store: one engine per process, SQLite (WAL) by default, PostgreSQL by URL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url


def open_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine with the pragmas slipway relies on.

    SQLite: WAL so readers never block the writer, ``synchronous=FULL`` so a committed
    prediction record survives power loss, a busy timeout instead of instant
    ``database is locked``, and foreign keys on. PostgreSQL: ``synchronous_commit=on``.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30}, **kwargs)

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            # Let SQLAlchemy, not the driver, own transactions (pysqlite's default defers
            # BEGIN, which breaks SERIALIZABLE-style read-then-write in one transaction).
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin(conn: Any) -> None:
            # Writes (see transaction()) take the lock up front with IMMEDIATE, so two
            # writers queue on busy_timeout instead of one failing on lock upgrade.
            # Reads stay deferred: under WAL they never wait for a writer.
            immediate = conn.info.get(_IMMEDIATE)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        return engine
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


@contextmanager
def transaction(engine: Engine) -> Iterator[Connection]:
    """A write transaction: committed on success, rolled back on error.

    Use this, not ``engine.begin()``, for every write, and do not open a second
    connection inside it (on SQLite the second one would wait for this one's lock).
    """
    with engine.connect() as conn:
        conn.info[_IMMEDIATE] = True
        try:
            with conn.begin():
                yield conn
        finally:
            conn.info.pop(_IMMEDIATE, None)


def backend_name(engine: Engine) -> str:
    return engine.url.get_backend_name()
