"""A worker's memory stays flat while an endpoint serves 1,000,000 rows.

Monitoring keeps sketches, not rows: whatever the traffic, the live windows of an
endpoint are a few kilobytes per feature. The server's resident memory is sampled once
warm (after 100,000 rows) and at the end; the growth must stay small and must not scale
with the rows served.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import msgspec
import numpy as np
import pytest

from tests.conftest import make_server

pytestmark = pytest.mark.e2e

ROWS = 1_000_000
PER_REQUEST = 2_000
WARM_ROWS = 100_000
# Allowed growth after warm-up; a server that kept rows would grow by >100 MB here.
MAX_GROWTH_MB = 40


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_memory_stays_flat_over_a_million_rows(
    tmp_path: Path, iris: Any, logreg: Any, e2e: Any
) -> None:
    # Windows are flushed often, as in a long-running server, and monitors judged.
    server = make_server(
        tmp_path / "home", SLIPWAY_MONITOR_FLUSH_S="1", SLIPWAY_MONITOR_INTERVAL_S="5"
    )
    server.init()
    server.start()
    try:
        client = server.client()
        e2e.register_logreg(client, "iris", iris, logreg)
        client.deploy("iris", model="iris", version=1)
        client.close()
        rng = np.random.default_rng(0)
        X = iris.X[rng.integers(0, len(iris.X), PER_REQUEST)]
        body = msgspec.json.encode({"inputs": e2e.rows_of(X)})
        headers = {"Authorization": f"Bearer {server.token}", "Content-Type": "application/json"}
        assert server.proc is not None
        warm = 0.0
        with httpx.Client(base_url=server.url, headers=headers, timeout=60) as http:
            for sent in range(PER_REQUEST, ROWS + 1, PER_REQUEST):
                response = http.post("/v1/endpoints/iris/predict", content=body)
                assert response.status_code == 200, response.text
                if sent == WARM_ROWS:
                    warm = _rss_mb(server.proc.pid)
            end = _rss_mb(server.proc.pid)
            summary = http.get("/api/v1/endpoints/iris/monitoring", params={"window": 3600})
        assert summary.json()["traffic"]["rows"] == ROWS
        assert end - warm < MAX_GROWTH_MB, f"RSS grew from {warm:.0f} MB to {end:.0f} MB"
    finally:
        server.stop()
