"""Where a real server runs its model calls: a short call of a request that is alone
runs on the event loop (no thread hand-off), calls made while other requests are
running go to the predict threads, and /metrics says which went where."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from slipway.serving.calls import CallPace
from tests.conftest import ServerProcess, make_server

pytestmark = pytest.mark.e2e

CLIENTS, EACH = 8, 10


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    # A generous budget: a logistic regression's call takes well under 1 ms, but a
    # loaded CI machine must not decide this test.
    proc = make_server(tmp_path / "home", SLIPWAY_INLINE_CALL_MS="50")
    proc.init()
    proc.start()
    yield proc
    proc.stop()


def _calls(http: httpx.Client) -> dict[str, float]:
    text = http.get("/metrics").text
    found = re.findall(r'^slipway_model_calls_total\{where="(\w+)"\} (\S+)$', text, re.M)
    return {where: float(value) for where, value in found}


def test_a_lone_request_calls_inline_and_concurrent_ones_use_threads(
    server: ServerProcess, iris: Any, logreg: Any, e2e: Any
) -> None:
    with server.client() as client:
        e2e.register_logreg(client, "iris", iris, logreg)
        client.deploy("iris", model="iris", version=1)
    row = {"inputs": e2e.rows_of(iris.X[:1])}
    headers = {"Authorization": f"Bearer {server.token}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=60) as http:
        start = _calls(http)
        # One request at a time: the first LEARN calls are timed on a thread, then
        # every call runs inline.
        lone = CallPace.LEARN + 10
        for _ in range(lone):
            assert http.post("/v1/endpoints/iris/predict", json=row).status_code == 200
        after_lone = _calls(http)
    assert after_lone["inline"] - start.get("inline", 0) == 10
    assert after_lone["thread"] - start.get("thread", 0) == CallPace.LEARN

    statuses: list[int] = []

    def client_loop() -> None:
        with httpx.Client(base_url=server.url, headers=headers, timeout=60) as http:
            statuses.extend(
                http.post("/v1/endpoints/iris/predict", json=row).status_code for _ in range(EACH)
            )

    threads = [threading.Thread(target=client_loop) for _ in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [200] * (CLIENTS * EACH)
    with httpx.Client(base_url=server.url, headers=headers, timeout=60) as http:
        end = _calls(http)
    inline = end["inline"] - after_lone["inline"]
    on_threads = end["thread"] - after_lone["thread"]
    # Requests overlapping others had their calls (micro-batched, so fewer calls than
    # requests) on the predict threads; a request that still found itself alone, at the
    # edges of the burst, may have run inline.
    assert on_threads >= 1
    assert inline + on_threads <= CLIENTS * EACH
