"""The lease in the store (store/leases.py), on SQLite and on PostgreSQL."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, select, text

from slipway.store import open_engine
from slipway.store.leases import Lease, holder_id
from slipway.store.tables import leases

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


class Clock:
    """A UTC clock the test moves by hand."""

    def __init__(self, at: datetime = T0) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


def row(engine: Engine, name: str = "controllers") -> dict[str, object] | None:
    with engine.connect() as conn:
        found = conn.execute(select(leases).where(leases.c.name == name)).first()
    return dict(found._mapping) if found else None


def holder_of(engine: Engine, name: str) -> str | None:
    found = row(engine, name)
    return str(found["holder"]) if found else None


def test_the_first_asker_takes_it_and_the_second_is_refused(engine: Engine) -> None:
    clock = Clock()
    a = Lease(engine, "controllers", "a", 15, clock=clock)
    b = Lease(engine, "controllers", "b", 15, clock=clock)
    assert a.acquire_or_renew() and a.held
    assert not b.acquire_or_renew() and not b.held
    assert row(engine) == {
        "name": "controllers",
        "holder": "a",
        "acquired_at": T0,
        "expires_at": T0 + timedelta(seconds=15),
    }
    assert a.current_holder() == b.current_holder() == "a"
    # Another name is another lease.
    assert Lease(engine, "other", "b", 15, clock=clock).acquire_or_renew()


def test_renewing_keeps_it_and_pushes_the_expiry(engine: Engine) -> None:
    clock = Clock()
    a = Lease(engine, "controllers", "a", 15, clock=clock)
    b = Lease(engine, "controllers", "b", 15, clock=clock)
    assert a.acquire_or_renew()
    clock.at = T0 + timedelta(seconds=10)
    assert a.acquire_or_renew()
    clock.at = T0 + timedelta(seconds=20)  # past the first expiry, not the renewed one
    assert not b.acquire_or_renew()
    assert row(engine) == {
        "name": "controllers",
        "holder": "a",
        "acquired_at": T0,  # when it was taken, not last renewed
        "expires_at": T0 + timedelta(seconds=25),
    }


def test_an_expired_lease_goes_to_the_next_asker(engine: Engine) -> None:
    clock = Clock()
    a = Lease(engine, "controllers", "a", 15, clock=clock)
    b = Lease(engine, "controllers", "b", 15, clock=clock)
    assert a.acquire_or_renew()
    clock.at = T0 + timedelta(seconds=15)
    assert a.current_holder() is None
    assert b.acquire_or_renew()
    assert row(engine) == {
        "name": "controllers",
        "holder": "b",
        "acquired_at": T0 + timedelta(seconds=15),
        "expires_at": T0 + timedelta(seconds=30),
    }
    # The old holder cannot renew what it lost; it asks again like anyone else.
    assert not a.acquire_or_renew() and not a.held


def test_release_frees_it_at_once_and_only_for_its_holder(engine: Engine) -> None:
    clock = Clock()
    a = Lease(engine, "controllers", "a", 15, clock=clock)
    b = Lease(engine, "controllers", "b", 15, clock=clock)
    assert a.acquire_or_renew()
    assert not b.release()  # not b's to give away
    assert not b.acquire_or_renew()
    assert a.release() and not a.held
    assert row(engine) is None
    assert b.acquire_or_renew()
    assert not a.release()


def test_held_ends_with_the_ttl_when_not_renewed(engine: Engine) -> None:
    lease = Lease(engine, "controllers", "a", 0.2)
    assert lease.acquire_or_renew() and lease.held
    time.sleep(0.3)
    assert not lease.held  # no renewal: no longer ours, whatever the store says


def test_a_store_error_means_not_held(engine: Engine) -> None:
    lease = Lease(engine, "controllers", "a", 15)
    assert lease.acquire_or_renew()
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE leases"))
    with pytest.raises(Exception, match="leases"):
        lease.acquire_or_renew()
    assert not lease.held


def test_ttl_must_be_positive(engine: Engine) -> None:
    with pytest.raises(ValueError, match="ttl_s"):
        Lease(engine, "controllers", "a", 0)


def test_holder_ids_name_the_process_and_differ() -> None:
    first, second = holder_id(), holder_id()
    assert first != second
    assert first.rsplit(":", 2)[1] == second.rsplit(":", 2)[1] != ""


def _race(engines: list[Engine], name: str, clock: Clock) -> list[bool]:
    """Every engine asks for ``name`` at the same moment, from its own thread."""
    barrier = threading.Barrier(len(engines))
    won: list[bool] = [False] * len(engines)
    errors: list[BaseException] = []

    def ask(i: int) -> None:
        lease = Lease(engines[i], name, f"worker-{i}", 15, clock=clock)
        barrier.wait()
        try:
            won[i] = lease.acquire_or_renew()
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(engines))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    return won


def test_two_workers_asking_at_once_exactly_one_wins(engine: Engine, store_url: str) -> None:
    other = open_engine(store_url)
    try:
        engines = [engine, other]
        clock = Clock()
        for round_ in range(10):
            # A lease nobody held yet (the INSERT races) ...
            name = f"fresh-{round_}"
            won = _race(engines, name, clock)
            assert sum(won) == 1, won
            assert holder_of(engine, name) == f"worker-{won.index(True)}"
        for round_ in range(10):
            # ... and an expired one held by a third process (the UPDATE races).
            name = f"expired-{round_}"
            assert Lease(engine, name, "gone", 15, clock=Clock(T0)).acquire_or_renew()
            won = _race(engines, name, Clock(T0 + timedelta(seconds=16)))
            assert sum(won) == 1, won
            assert holder_of(engine, name) == f"worker-{won.index(True)}"
    finally:
        other.dispose()
