"""Two server processes on one store: only the holder of the controller lease runs the
shared jobs, and when it stops the other takes over within one renewal interval."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.conftest import ServerProcess, make_server

pytestmark = pytest.mark.e2e

SHARED_JOBS = (
    "audit_checkpoint",
    "window_rollup",
    "alert_delivery",
    "monitor_evaluation",
    "retention_purge",
    "rollout_controller",
)
# Quick rounds, so a few seconds show who runs them.
FAST = {
    "SLIPWAY_ROLLOUT_INTERVAL_S": "0.2",
    "SLIPWAY_MONITOR_INTERVAL_S": "0.5",
    "SLIPWAY_RETENTION_INTERVAL_S": "0.5",
}
RENEW_S = 5.0  # slipway.api.app.LEASE_RENEW_S


def controllers(server: ServerProcess) -> tuple[bool, dict[str, float]]:
    """Whether ``server`` leads, and the rounds of each shared job it has run."""
    text = httpx.get(
        f"{server.url}/metrics", headers={"Authorization": f"Bearer {server.token}"}, timeout=10
    ).text
    leader = re.search(r"^slipway_controller_leader (\S+)$", text, re.M)
    assert leader, text[-2000:]
    runs = {
        job: float(count)
        for job, count in re.findall(
            r'^slipway_controller_runs_total\{job="([a-z_]+)"\} (\S+)$', text, re.M
        )
    }
    assert set(runs) == set(SHARED_JOBS), runs
    return float(leader.group(1)) == 1.0, runs


def wait_for(what: str, check: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.1)


def test_only_the_lease_holder_runs_the_shared_jobs(tmp_path: Path) -> None:
    first = make_server(tmp_path / "home", **FAST)
    first.init()
    first.start()
    second = make_server(tmp_path / "home", **FAST)
    second.token = first.token
    second.log_path = tmp_path / "home" / "server-2.log"
    try:
        # Alone, it leads from the start (taken during startup, before /healthz).
        assert controllers(first)[0], first.log()[-3000:]
        second.start()
        # Long enough for the second server to have run every job of interval <= 2 s.
        since = controllers(first)[1]["rollout_controller"]
        wait_for(
            "the leader ran the rollout controller 15 more times (3 s)",
            lambda: controllers(first)[1]["rollout_controller"] >= since + 15,
            timeout=20,
        )
        leads, runs = controllers(second)
        assert not leads
        assert set(runs.values()) == {0.0}, runs
        assert controllers(first)[0]

        # A stopped leader gives the lease up: the other takes over at its next renewal.
        stopped = time.monotonic()
        assert first.stop() == 0, first.log()[-3000:]
        wait_for("the second server leads", lambda: controllers(second)[0], RENEW_S + 5)
        took = time.monotonic() - stopped
        wait_for(
            "the new leader ran the rollout controller",
            lambda: controllers(second)[1]["rollout_controller"] >= 1,
            timeout=5,
        )
        assert "now leads the controllers" in second.log()
        assert took < RENEW_S + 5  # released: no wait for the lease to expire (15 s)
        assert "Traceback" not in first.log() + second.log()
    finally:
        second.stop()
        first.stop()
