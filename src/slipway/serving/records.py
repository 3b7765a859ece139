"""Prediction records, committed in groups before the response is sent.

Each request hands its record to :meth:`RecordWriter.write` and waits. One writer task
gathers whatever is queued (up to ``batch_max``, waiting at most ``flush_ms`` for more),
inserts it in one transaction on a dedicated thread and then releases every waiter.
Many concurrent requests therefore share one commit (one fsync), and no request is
acknowledged before its record is durable. If the commit fails, every waiter gets
:class:`Unavailable` — a 503, never a 200 without a record.

One exception to the thread: on SQLite, the record of a request that is alone (no
other request running, ``alone``) is committed on the event loop, as a hand-written
endpoint would. With one client at a time the hand-off to the thread and back is pure
cost (1.2x the requests/s at concurrency 1 without it, ADR 0009); under load the
thread lets the loop go on with other requests while a group commits. That commit
never waits for SQLite's write lock (``wait_for_lock=False``): when another connection
holds it, the thread commits instead, waiting as usual, so the loop is held up by at
most one local commit. PostgreSQL commits always go to the thread: a network round
trip, and a lost server, must never stall the loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import msgspec
from sqlalchemy import Connection, Engine

from slipway.errors import Unavailable
from slipway.metrics import RECORD_COMMITS
from slipway.store.engine import backend_name, lock_busy, store_unavailable, transaction
from slipway.store.tables import prediction_records, quarantine

log = logging.getLogger("slipway.records")
_INLINE, _THREAD = RECORD_COMMITS.labels(where="inline"), RECORD_COMMITS.labels(where="thread")

# (prediction record or None, quarantined rows, waiter)
_Item = tuple[dict[str, Any] | None, list[dict[str, Any]], asyncio.Future[None]]


class RecordInsert:
    """The prediction-record INSERT, prepared once per engine and run through the
    driver's ``executemany``.

    SQLAlchemy's per-row parameter processing (a bind processor per column, stdlib JSON)
    was the largest store cost per request; here the statement is compiled once for the
    dialect and each record becomes one tuple (or dict): the JSON columns encoded with
    msgspec, the timestamp by the column type's own bind processor.

    JSON has no NaN or infinity, and PostgreSQL refuses them: a non-finite number in a
    model's answer (a withheld answer, a shadow's) is stored as null, as the API shows
    it, on every backend. (Stdlib JSON wrote ``NaN``, which made PostgreSQL refuse the
    whole group commit, and so every request in it, with a 503.)
    """

    _JSON = ("inputs", "outputs")

    def __init__(self, engine: Engine) -> None:
        compiled = prediction_records.insert().compile(dialect=engine.dialect)
        self.sql = str(compiled)
        self.positional = bool(compiled.positional)
        # The order of the columns in the statement (positional) or their names.
        self.columns: list[str] = (
            list(compiled.positiontup or []) if self.positional else list(compiled.params)
        )
        processors = {
            c.name: c.type.dialect_impl(engine.dialect).bind_processor(engine.dialect)
            for c in prediction_records.columns
            if c.name not in self._JSON
        }
        self.processors = {name: p for name, p in processors.items() if p is not None}
        # What a Core insert would fill in for a key the record leaves out.
        self.defaults: dict[str, Any] = {
            c.name: c.server_default.arg if c.server_default is not None else None  # type: ignore[attr-defined]
            for c in prediction_records.columns
            if c.server_default is not None or c.nullable
        }
        self._encode = msgspec.json.Encoder().encode

    def params(self, record: dict[str, Any]) -> tuple[Any, ...] | dict[str, Any]:
        values = self.defaults | record
        for name in self._JSON:
            values[name] = self._encode(values[name]).decode()
        for name, process in self.processors.items():
            values[name] = process(values[name])
        if self.positional:
            return tuple(values[name] for name in self.columns)
        return values

    def run(self, conn: Connection, records: list[dict[str, Any]]) -> None:
        conn.exec_driver_sql(self.sql, [self.params(r) for r in records])


class RecordWriter:
    """``alone`` tells whether no other request is running besides the one writing (by
    default, never: every commit on the thread)."""

    def __init__(
        self,
        engine: Engine,
        *,
        batch_max: int = 512,
        flush_ms: float = 0.0,
        alone: Callable[[], bool] = lambda: False,
    ) -> None:
        self.engine = engine
        self.alone = alone
        self._local = backend_name(engine) == "sqlite"
        self._records = RecordInsert(engine)
        self.batch_max = batch_max
        self.flush_s = flush_ms / 1000
        self._queue: asyncio.Queue[_Item | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="slipway-records")
        self.committed = 0
        self.committed_inline = 0  # commits made on the event loop (for tests and the curious)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="slipway-record-writer")

    async def stop(self) -> None:
        """Commit everything queued, then stop."""
        if self._task is not None:
            await self._queue.put(None)
            await self._task
            self._task = None
        self._executor.shutdown(wait=True)

    async def write(
        self, record: dict[str, Any] | None, quarantined: list[dict[str, Any]] | None = None
    ) -> None:
        """Wait until ``record`` and the request's ``quarantined`` rows are committed."""
        if self._task is None:
            raise Unavailable("prediction store is not accepting records")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        await self._queue.put((record, list(quarantined or []), future))
        await future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        stopping = False
        while not stopping:
            first = await self._queue.get()
            if first is None:
                break
            batch = [first]
            deadline = loop.time() + self.flush_s
            while len(batch) < self.batch_max:
                try:
                    item = self._queue.get_nowait()
                except asyncio.QueueEmpty:
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        # Adaptive: with no wait configured, commit what is here now;
                        # records arriving meanwhile form the next group by themselves.
                        break
                    try:
                        item = await asyncio.wait_for(self._queue.get(), remaining)
                    except TimeoutError:
                        break
                if item is None:
                    stopping = True
                    break
                batch.append(item)
            await self._commit(batch)

    async def _commit(self, batch: list[_Item]) -> None:
        rows = [record for record, _, _ in batch if record is not None]
        held = [row for _, rows_held, _ in batch for row in rows_held]
        try:
            if not self._committed_inline(len(batch), rows, held):
                await asyncio.get_running_loop().run_in_executor(
                    self._executor, self._insert, rows, held
                )
                _THREAD.inc()
        except Exception as exc:
            if store_unavailable(exc):  # an outage, not a bug: one line, no traceback
                lines = str(exc).splitlines()
                why = lines[0] if lines else type(exc).__name__
                log.warning("could not commit %d prediction records: %s", len(rows), why)
            else:
                log.exception("could not commit %d prediction records", len(rows))
            error = Unavailable("prediction store unavailable; the request was not recorded")
            for _, _, future in batch:
                if not future.done():
                    future.set_exception(error)
            return
        self.committed += len(rows)
        for _, _, future in batch:
            if not future.done():
                future.set_result(None)

    def _committed_inline(
        self, requests: int, rows: list[dict[str, Any]], held: list[dict[str, Any]]
    ) -> bool:
        """Commit a lone request's group here, on the event loop, if the module
        docstring's conditions hold; False when it is for the thread instead."""
        if requests != 1 or not self._local or not self.alone():
            return False
        try:
            self._insert(rows, held, wait_for_lock=False)
        except Exception as exc:
            if lock_busy(exc):
                return False  # another connection is writing: the thread waits for it
            raise
        self.committed_inline += 1
        _INLINE.inc()
        return True

    def _insert(
        self, rows: list[dict[str, Any]], held: list[dict[str, Any]], *, wait_for_lock: bool = True
    ) -> None:
        with transaction(self.engine, wait_for_lock=wait_for_lock) as conn:
            if rows:
                self._records.run(conn, rows)
            if held:
                conn.execute(quarantine.insert(), held)
