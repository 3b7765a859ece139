"""Killed mid-load, slipway loses no acknowledged prediction.

Ten rounds: concurrent clients send predictions, each request carrying a unique marker
value; at a random moment the server is killed with SIGKILL and started again. After
every round:
- every acknowledged prediction (a 200) is in the store exactly once;
- nothing is stored that the test did not send;
- ``PRAGMA integrity_check`` says ok;
and at the end ``slipway audit verify`` passes. 127.0.0.1 only; bounded in time.
"""

from __future__ import annotations

import random
import signal
import sqlite3
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ServerProcess, make_server

pytestmark = pytest.mark.e2e

ROUNDS = 10
CLIENTS = 24
ACKED_PER_ROUND = 100  # each round kills after 100-200 acknowledged predictions
ROUND_SECONDS_MAX = 30  # a server that cannot acknowledge 100 in this fails the test
MIN_ACKED_TOTAL = ROUNDS * ACKED_PER_ROUND


def _wait_ready(server: ServerProcess, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{server.url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"server not ready:\n{server.log()[-3000:]}")


class Load:
    """Client threads that send predictions until the server goes away."""

    def __init__(self, server: ServerProcess, first_marker: int) -> None:
        self.server = server
        self.next_marker = first_marker
        self.sent: set[float] = set()
        self.acked: dict[float, str] = {}  # marker -> record id of the 200
        self.lock = threading.Lock()
        self.stop = threading.Event()

    def marker(self) -> float:
        with self.lock:
            self.next_marker += 1
            value = 5.0 + self.next_marker * 1e-6
            self.sent.add(value)
            return value

    def client(self) -> None:
        headers = {"Authorization": f"Bearer {self.server.token}"}
        with httpx.Client(base_url=self.server.url, headers=headers, timeout=10) as http:
            while not self.stop.is_set():
                marker = self.marker()
                row = {"sepal_length": marker, "sepal_width": 3.0}
                row |= {"petal_length": 1.4, "petal_width": 0.2}
                try:
                    response = http.post("/v1/endpoints/iris/predict", json={"inputs": [row]})
                except httpx.TransportError:
                    return  # killed: this request was never acknowledged
                if response.status_code == 200:
                    pid = response.json()["predictions"][0]["id"]
                    with self.lock:
                        self.acked[marker] = pid.rsplit("-", 1)[0]
                elif response.status_code != 503:
                    raise AssertionError(f"{response.status_code}: {response.text}")

    def run_until_killed(self, rng: random.Random) -> None:
        """Kill once a random number of predictions are acknowledged, then a random
        moment later: the count, not this machine's speed, sets how much is at stake
        (a fixed 0.4-1.5 s acknowledged ~50 per round on a loaded machine)."""
        threads = [threading.Thread(target=self.client) for _ in range(CLIENTS)]
        for t in threads:
            t.start()
        target = rng.randint(ACKED_PER_ROUND, 2 * ACKED_PER_ROUND)
        deadline = time.monotonic() + ROUND_SECONDS_MAX
        while len(self.acked) < target and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(rng.uniform(0, 0.1))
        assert self.server.proc is not None
        self.server.proc.send_signal(signal.SIGKILL)
        self.server.proc.wait(timeout=10)
        self.stop.set()
        for t in threads:
            t.join(timeout=20)


def _stored(home: Path) -> tuple[dict[str, list[float]], str]:
    """Record id -> the markers of its rows, and the integrity check's answer."""
    with sqlite3.connect(f"file:{home / 'slipway.db'}?mode=ro", uri=True) as conn:
        rows = conn.execute(
            "SELECT id, json_extract(inputs, '$[0].sepal_length') FROM prediction_records "
            "WHERE endpoint = 'iris'"
        ).fetchall()
        integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
    conn.close()
    stored: dict[str, list[float]] = {}
    for record_id, marker in rows:
        stored.setdefault(record_id, []).append(float(marker))
    return stored, integrity


def test_sigkill_under_load_loses_no_acknowledged_prediction(
    tmp_path: Path, iris: Any, logreg: Any, e2e: Any
) -> None:
    home = tmp_path / "home"
    server = make_server(home)
    server.init()
    server.start()
    client = server.client()
    e2e.register_logreg(client, "iris", iris, logreg)
    client.deploy("iris", model="iris", version=1)
    client.close()
    rng = random.Random(20261122)
    all_sent: set[float] = set()
    acked_total = 0
    try:
        for round_ in range(ROUNDS):
            _wait_ready(server)
            load = Load(server, first_marker=round_ * 100_000)
            load.run_until_killed(rng)
            all_sent |= load.sent
            acked_total += len(load.acked)

            stored, integrity = _stored(home)
            assert integrity == "ok", (round_, integrity)
            by_marker = Counter(m for markers in stored.values() for m in markers)
            for marker, record_id in load.acked.items():
                assert record_id in stored, (round_, "acknowledged but not stored", record_id)
                assert by_marker[marker] == 1, (round_, "stored more than once", marker)
            unknown = [m for m in by_marker if m not in all_sent]
            assert not unknown, (round_, "stored but never sent", unknown[:5])
            server.start()
        assert acked_total >= MIN_ACKED_TOTAL, acked_total
        _wait_ready(server)
        server.cli("audit", "verify")  # exits non-zero if the chain does not verify
    finally:
        server.stop()
