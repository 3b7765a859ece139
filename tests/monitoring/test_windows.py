"""Stored windows (monitoring/windows.py), on SQLite and on PostgreSQL."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, insert

from slipway.monitoring.windows import Window, WindowStore, _stored
from slipway.store import open_engine
from slipway.store.tables import monitor_windows

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def _rollup_at_once(engine: Engine, barrier: threading.Barrier) -> None:
    barrier.wait()
    WindowStore(engine).rollup(NOW)


def test_two_rollups_at_once_count_every_request_once(engine: Engine, store_url: str) -> None:
    """Two workers rolling up the same minute rows at the same moment (a controller
    handing over, or no leader at all) must not both write their merge."""
    other = open_engine(store_url)
    ten_hours_ago = int((NOW - timedelta(hours=10)).timestamp()) // 3600 * 3600
    try:
        for _ in range(5):
            with engine.begin() as conn:
                conn.execute(monitor_windows.delete())
                one = Window.empty()
                one.requests = 1
                rows = [
                    _stored("e", 1, "v1", "minute", ten_hours_ago + m * 60, one, NOW)
                    for m in range(120)  # two whole hours
                ]
                conn.execute(insert(monitor_windows), rows)
            barrier = threading.Barrier(2)
            threads = [
                threading.Thread(target=_rollup_at_once, args=(e, barrier)) for e in (engine, other)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=60)
            store = WindowStore(engine)
            assert store.read("e", NOW - timedelta(days=1), NOW).requests == 120
            assert len(store.series("e", NOW - timedelta(days=1), NOW)) == 2  # hours
    finally:
        other.dispose()
