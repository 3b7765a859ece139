"""Overload and deadlines against a real server.

A model with a known capacity (100 ms per call, four at once: about 40 requests/s) is
offered several times that for 60 s. The server must stay up, health must answer, the
requests it accepts must keep their latency (bounded queue), the rest must get an
immediate 503 with Retry-After, and memory must stay bounded. A request whose deadline
passes while it waits is answered 504 and never run.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ServerProcess, make_server

pytestmark = pytest.mark.e2e

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
DURATION_S = 60.0
CLIENTS = 48
DELAY_S = 0.1
INFLIGHT, QUEUE = 4, 8
# How long the deadline test's model holds its endpoint's only slot.
OCCUPY_S = 2.0
CAPACITY_RPS = INFLIGHT / DELAY_S
# Each client paces itself so that together they offer about 6x capacity.
PACE_S = CLIENTS / (6 * CAPACITY_RPS)


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def deploy_slow_model(client: Any, name: str, delay_s: float, **limits: int) -> None:
    """Register and deploy, as ``name``, a pyfunc model answering after ``delay_s``."""
    client.create_model(name, owner="ml-team")
    version = client.register_version(
        name,
        artifact=json.dumps(
            {"class": "pyfunc_example:SlowModel", "init": {"delay_s": delay_s}}
        ).encode(),
        flavor="pyfunc",
        signature={"inputs": [{"name": "x", "type": "float"}]},
        example_rows=[{"x": 1.0}],
    )
    assert version["status"] == "ready", version
    client.deploy(name, model=name, version=1, **limits)


@pytest.fixture(scope="module")
def slow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = make_server(
        tmp_path_factory.mktemp("overload") / "home",
        PYTHONPATH=str(ARTIFACTS),
        SLIPWAY_PYFUNC_TRUSTED_MODULES="pyfunc_example",
        SLIPWAY_MAX_INFLIGHT=str(INFLIGHT),
        SLIPWAY_MAX_QUEUE=str(QUEUE),
        SLIPWAY_PREDICT_THREADS=str(INFLIGHT),
    )
    server.init()
    server.start()
    client = server.client()
    deploy_slow_model(client, "slow", DELAY_S)
    client.close()
    yield server
    server.stop()


def test_overload_sheds_fast_and_keeps_health_latency_and_memory(
    slow_server: ServerProcess,
) -> None:
    server = slow_server
    assert server.proc is not None
    headers = {"Authorization": f"Bearer {server.token}"}
    stop = threading.Event()
    statuses: Counter[int] = Counter()
    accepted_ms: list[float] = []
    shed_ms: list[float] = []
    retry_after: set[str] = set()
    lock = threading.Lock()

    def client() -> None:
        with httpx.Client(base_url=server.url, headers=headers, timeout=30) as http:
            while not stop.is_set():
                started = time.perf_counter()
                response = http.post("/v1/endpoints/slow/predict", json={"inputs": [{"x": 1.0}]})
                elapsed = (time.perf_counter() - started) * 1000
                time.sleep(max(0.0, PACE_S - elapsed / 1000))
                with lock:
                    statuses[response.status_code] += 1
                    if response.status_code == 200:
                        accepted_ms.append(elapsed)
                    elif response.status_code == 503:
                        shed_ms.append(elapsed)
                        retry_after.add(response.headers.get("retry-after", ""))

    health_ms: list[float] = []
    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for t in threads:
        t.start()
    try:
        deadline = time.monotonic() + DURATION_S
        warm_rss = 0.0
        while time.monotonic() < deadline:
            started = time.perf_counter()
            health = httpx.get(f"{server.url}/healthz", timeout=2)
            health_ms.append((time.perf_counter() - started) * 1000)
            assert health.status_code == 200
            if not warm_rss and time.monotonic() > deadline - DURATION_S + 10:
                warm_rss = _rss_mb(server.proc.pid)
            time.sleep(0.5)
        end_rss = _rss_mb(server.proc.pid)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)

    assert server.proc.poll() is None, "the server died under overload"
    capacity = CAPACITY_RPS * DURATION_S
    offered = sum(statuses.values())
    assert offered >= 4 * capacity, (offered, capacity, statuses)  # about 5x capacity
    assert set(statuses) <= {200, 503}, statuses
    # It kept working near capacity (the test's own clients share the machine's cores).
    assert statuses[200] >= 0.5 * capacity, statuses
    assert retry_after == {"1"}
    accepted_ms.sort()
    shed_ms.sort()
    # Accepted requests wait at most for the bounded queue ahead of them.
    bound_ms = (QUEUE / INFLIGHT + 1) * DELAY_S * 1000
    p50, p99 = accepted_ms[len(accepted_ms) // 2], accepted_ms[int(len(accepted_ms) * 0.99)]
    assert p99 < 3 * bound_ms, (p50, p99)
    assert shed_ms[len(shed_ms) // 2] < 250, "refusals must be immediate"
    # Every health check answered 200 within its 2 s timeout (asserted as it ran); on a
    # shared 2-core machine one may still take ~1 s, so the bound is on the 95th percentile.
    health_ms.sort()
    assert health_ms[int(len(health_ms) * 0.95)] < 500, health_ms[-5:]
    assert end_rss - warm_rss < 50, (warm_rss, end_rss)


def test_a_request_past_its_deadline_gets_504_and_is_not_run(
    slow_server: ServerProcess,
) -> None:
    # Its own endpoint: one slot, one queue place, and a model that holds the slot for
    # 2 s, so the late request surely waits however slowly a loaded machine sends it.
    client: Any = slow_server.client()
    deploy_slow_model(client, "slower", OCCUPY_S, max_inflight=1, max_queue=1)
    headers = {"Authorization": f"Bearer {slow_server.token}"}
    results: list[httpx.Response] = []

    def occupy() -> None:
        with httpx.Client(base_url=slow_server.url, headers=headers, timeout=30) as http:
            results.append(http.post("/v1/endpoints/slower/predict", json={"inputs": [{"x": 1}]}))

    busy = threading.Thread(target=occupy)
    busy.start()
    time.sleep(0.3)  # the occupier is in well before the late request; it runs 2 s
    started = time.monotonic()
    with httpx.Client(base_url=slow_server.url, headers=headers, timeout=30) as http:
        late = http.post(
            "/v1/endpoints/slower/predict",
            json={"inputs": [{"x": 2.0}]},
            headers={"X-Slipway-Timeout-Ms": "20"},
        )
        late_s = time.monotonic() - started
        bad = http.post(
            "/v1/endpoints/slower/predict",
            json={"inputs": [{"x": 2.0}]},
            headers={"X-Slipway-Timeout-Ms": "soon"},
        )
    busy.join(timeout=30)
    assert late.status_code == 504, late.text
    assert late.json()["error"]["code"] == "deadline_exceeded"
    assert late_s < OCCUPY_S, "the late request waited for the slot instead of giving up"
    assert bad.status_code == 422 and "X-Slipway-Timeout-Ms" in bad.text
    assert [r.status_code for r in results] == [200]
    recent = client.list_predictions("slower", limit=1000)
    client.close()
    inputs = [row for rec in recent["records"] for row in rec["inputs"]]
    assert {"x": 1.0} in inputs
    assert {"x": 2.0} not in inputs, "a request past its deadline was run"
