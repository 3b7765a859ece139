"""Leases in the store: at most one holder of a name at a time, for a limited time.

The server's controllers (rollouts, monitors, alert delivery, retention, window rollup,
audit checkpoints) act on the shared store for every worker and replica, so one process
at a time runs them: the holder of the ``controllers`` lease. A holder renews well
within the time to live; a holder that dies or loses the store stops renewing and
another takes the lease once it has expired::

    lease = Lease(engine, "controllers", holder_id(), ttl_s=15)
    lease.acquire_or_renew()   # True: free, expired or already ours -> now ours
    lease.held                 # True until ttl_s after that call began, unless renewed
    lease.release()            # on shutdown: free at once for the next worker

Taking, renewing and refusing are one statement (``INSERT ... ON CONFLICT DO UPDATE
... WHERE``): on PostgreSQL two callers racing for a free or expired lease serialize on
the row (or on the unique key when none exists yet) and exactly one wins; on SQLite the
write transaction's lock (BEGIN IMMEDIATE) serializes them.

Expiry is judged by the callers' UTC clocks, which must agree to well within the time
to live (NTP does). A lease is not a fence: a holder stalled past its time to live may
finish a job while its successor starts one, so what the jobs write stays safe on its
own (conditional updates, row and advisory locks); the lease removes duplicate work.
"""

from __future__ import annotations

import os
import secrets
import socket
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import Engine, case, delete, select
from sqlalchemy.dialects import postgresql, sqlite

from slipway.ids import utcnow
from slipway.store.engine import backend_name, transaction
from slipway.store.tables import leases

__all__ = ["Lease", "holder_id"]


def holder_id() -> str:
    """Who this process is, for a lease: ``host:pid:random`` (the suffix tells a
    restarted process from its predecessor that had the same pid)."""
    return f"{socket.gethostname()[:200]}:{os.getpid()}:{secrets.token_hex(4)}"


class Lease:
    def __init__(
        self,
        engine: Engine,
        name: str,
        holder: str,
        ttl_s: float,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        if ttl_s <= 0:
            raise ValueError(f"ttl_s must be positive, got {ttl_s}")
        self.engine = engine
        self.name = name
        self.holder = holder
        self.ttl_s = ttl_s
        self.clock = clock
        # time.monotonic() until which the lease is ours: our own clock, so a stalled
        # renewal or a store gone away ends our leadership no later than the lease
        # expires in the store for everyone else.
        self._held_until = 0.0

    @property
    def held(self) -> bool:
        """Whether the last :meth:`acquire_or_renew` won and its time to live has not
        run out since (no store access)."""
        return time.monotonic() < self._held_until

    def acquire_or_renew(self) -> bool:
        """Take the lease if it is free, expired or already ours, for ``ttl_s`` from now;
        returns whether we hold it. A store error propagates, and we no longer hold it."""
        started = time.monotonic()
        now = self.clock()
        insert = postgresql.insert if backend_name(self.engine) == "postgresql" else sqlite.insert
        row = insert(leases).values(
            name=self.name,
            holder=self.holder,
            acquired_at=now,
            expires_at=now + timedelta(seconds=self.ttl_s),
        )
        ours = leases.c.holder == row.excluded.holder
        upsert = row.on_conflict_do_update(
            index_elements=[leases.c.name],
            set_={
                "holder": row.excluded.holder,
                # A renewal keeps the time the lease was first taken.
                "acquired_at": case((ours, leases.c.acquired_at), else_=row.excluded.acquired_at),
                "expires_at": row.excluded.expires_at,
            },
            # Taken over only once expired, as judged by the taker's clock.
            where=ours | (leases.c.expires_at <= row.excluded.acquired_at),
        )
        try:
            with transaction(self.engine) as conn:
                won = conn.execute(upsert.returning(leases.c.holder)).first() is not None
        except Exception:
            self._held_until = 0.0
            raise
        self._held_until = started + self.ttl_s if won else 0.0
        return won

    def release(self) -> bool:
        """Give the lease up if we hold it, so another process may take it at once;
        returns whether we held it."""
        self._held_until = 0.0
        with transaction(self.engine) as conn:
            gone = conn.execute(
                delete(leases).where(leases.c.name == self.name, leases.c.holder == self.holder)
            ).rowcount
        return bool(gone)

    def current_holder(self) -> str | None:
        """Who holds the lease now (None: free or expired)."""
        with self.engine.connect() as conn:
            return conn.execute(
                select(leases.c.holder).where(
                    leases.c.name == self.name, leases.c.expires_at > self.clock()
                )
            ).scalar_one_or_none()
