"""``slipway server --workers N``: processes sharing one port and one store.

A deploy made through one worker reaches the other within its sync interval; every
acknowledged prediction has its record, whichever worker answered; SIGTERM drains both
and the server exits cleanly within the grace period.
"""

from __future__ import annotations

import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import make_server

pytestmark = pytest.mark.e2e


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False)
    return [int(p) for p in out.stdout.split()]


def test_two_workers_share_the_store_and_drain_on_sigterm(
    tmp_path: Path, iris: Any, logreg: Any, e2e: Any
) -> None:
    home = tmp_path / "home"
    server = make_server(home)
    server.server_args = ("--workers", "2")
    server.init()
    server.start()
    try:
        assert server.proc is not None
        deadline = time.monotonic() + 30
        while len(_children(server.proc.pid)) < 2:
            assert time.monotonic() < deadline, server.log()[-2000:]
            time.sleep(0.2)
        client = server.client()
        e2e.register_logreg(client, "iris", iris, logreg)
        client.deploy("iris", model="iris", version=1)
        client.close()

        headers = {"Authorization": f"Bearer {server.token}"}
        body = {"inputs": e2e.rows_of(iris.X[:3])}

        def predict(_: int) -> str:
            # A fresh connection each time, so the kernel spreads them over the workers.
            with httpx.Client(base_url=server.url, headers=headers, timeout=30) as http:
                # Bounded by time, not tries: the suite may share the cores.
                for _attempt in range(300):
                    response = http.post("/v1/endpoints/iris/predict", json=body)
                    if response.status_code == 200:
                        return str(response.json()["predictions"][0]["id"])
                    # The worker that did not take the deploy loads it within ~1 s.
                    assert response.status_code in (404, 503), response.text
                    time.sleep(0.1)
            raise AssertionError("never answered")

        with ThreadPoolExecutor(16) as pool:
            ids = list(pool.map(predict, range(300)))
        stored = e2e.record_ids_in_store(home, "iris")
        assert {e2e.record_id(i) for i in ids} <= stored

        started = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        code = server.proc.wait(timeout=40)
        assert time.monotonic() - started < 35
        assert code == 0, server.log()[-3000:]
    finally:
        server.stop()
