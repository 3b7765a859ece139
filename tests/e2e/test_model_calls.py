"""Where a real server runs its model calls: a short call of a request that is alone
runs on the event loop (no thread hand-off), micro-batched calls made while other
requests are running go to the predict threads, calls that are not micro-batched run
inline under load too, and /metrics says which went where."""

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


def _start(home: Path, **env: str) -> ServerProcess:
    # A generous budget: a logistic regression's call takes well under 1 ms, but a
    # loaded CI machine must not decide this test.
    proc = make_server(home, SLIPWAY_INLINE_CALL_MS="50", **env)
    proc.init()
    proc.start()
    return proc


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    proc = _start(tmp_path / "home")
    yield proc
    proc.stop()


@pytest.fixture
def unbatched_server(tmp_path: Path) -> Iterator[ServerProcess]:
    proc = _start(tmp_path / "home", SLIPWAY_BATCH_MAX_ROWS="0")
    yield proc
    proc.stop()


def _calls(server: ServerProcess, metric: str = "slipway_model_calls_total") -> dict[str, float]:
    """The model calls (or another counter labelled ``where``) so far, by where they ran."""
    headers = {"Authorization": f"Bearer {server.token}"}
    answer = httpx.get(f"{server.url}/metrics", headers=headers, timeout=60)
    answer.raise_for_status()
    found = re.findall(rf'^{metric}\{{where="(\w+)"\}} (\S+)$', answer.text, re.M)
    return {where: float(value) for where, value in found}


def test_a_lone_request_calls_inline_and_concurrent_ones_use_threads(
    server: ServerProcess, iris: Any, logreg: Any, e2e: Any
) -> None:
    row = _deploy(server, iris, logreg, e2e)
    # One request at a time: the first LEARN calls are timed on a thread, then every
    # call runs inline.
    after_lone = _one_at_a_time(server, row, CallPace.LEARN + 10)
    assert after_lone["inline"] == 10
    assert after_lone["thread"] == CallPace.LEARN
    # Their records too were committed on the event loop (SQLite), each before its 200;
    # one that met the server's own controllers holding the write lock went to the
    # writer thread instead, so "most", not "all".
    commits = _calls(server, "slipway_record_commits_total")
    assert commits["inline"] + commits["thread"] == CallPace.LEARN + 10
    assert commits["inline"] >= (CallPace.LEARN + 10) // 2

    _burst(server, row)
    end = _calls(server)
    inline = end["inline"] - after_lone["inline"]
    on_threads = end["thread"] - after_lone["thread"]
    # Requests overlapping others had their calls (micro-batched, so fewer calls than
    # requests) on the predict threads; a request that still found itself alone, at the
    # edges of the burst, may have run inline.
    assert on_threads >= 1
    assert inline + on_threads <= CLIENTS * EACH


def test_calls_that_are_not_micro_batched_run_inline_under_load(
    unbatched_server: ServerProcess, iris: Any, logreg: Any, e2e: Any
) -> None:
    server = unbatched_server
    row = _deploy(server, iris, logreg, e2e)
    learned = _one_at_a_time(server, row, CallPace.LEARN)  # learning the pace, on threads
    assert learned["thread"] == CallPace.LEARN and learned["inline"] == 0
    _burst(server, row)
    end = _calls(server)
    # One call per request, each on the event loop, however many overlapped.
    assert end["thread"] == CallPace.LEARN
    assert end["inline"] == CLIENTS * EACH


def _burst(server: ServerProcess, row: dict[str, Any]) -> None:
    """CLIENTS clients at once, EACH requests each; every answer a 200."""
    headers = {"Authorization": f"Bearer {server.token}"}
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


def _deploy(server: ServerProcess, iris: Any, logreg: Any, e2e: Any) -> dict[str, Any]:
    """Deploy a logistic regression as endpoint ``iris``; a one-row request body for it."""
    with server.client() as client:
        e2e.register_logreg(client, "iris", iris, logreg)
        client.deploy("iris", model="iris", version=1)
    return {"inputs": e2e.rows_of(iris.X[:1])}


def _one_at_a_time(server: ServerProcess, row: dict[str, Any], n: int) -> dict[str, float]:
    """``n`` requests, one after another, from a fresh server; then its calls so far."""
    assert not any(_calls(server).values()), "expects no model call before it"
    headers = {"Authorization": f"Bearer {server.token}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=60) as http:
        for _ in range(n):
            assert http.post("/v1/endpoints/iris/predict", json=row).status_code == 200
    return _calls(server)
