"""The store goes away under load: 503s, never a 200 without its record, then recovery.

Two outages, each while client threads send single-row predictions continuously:
- SQLite locked: another connection holds ``BEGIN EXCLUSIVE`` on the store file for a
  few seconds longer than the store's busy timeout (``store_busy_timeout_s``);
- PostgreSQL unreachable: a TCP proxy in front of the shared PostgreSQL closes every
  connection and turns new ones away (the database itself keeps running for the other
  tests), then lets them through again.

What the product answers, and what is checked:
- a prediction whose record cannot be committed is answered 503 ``unavailable`` with
  Retry-After: it was not recorded, so it is not acknowledged. Never a 200, never a 500.
  (504 is for a request whose deadline passed before its model ran; this load stays
  far below the endpoint's bounds, so it never sees one.) A request that waits for the
  lock and gets it within the busy timeout is simply a slow 200;
- no 200 is answered while the store cannot commit;
- once the store is back the server answers 200 again within seconds, by itself;
- every acknowledged prediction is stored exactly once and nothing unsent is stored;
- ``/healthz`` answers 200 throughout and the server process stays up.

127.0.0.1 only; every wait is bounded.
"""

from __future__ import annotations

import socket
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.engine import make_url

from slipway.store.tables import prediction_records
from tests.conftest import ServerProcess, make_server

pytestmark = pytest.mark.e2e

CLIENTS = 8
BUSY_TIMEOUT_S = 1.0  # the SQLite server's store_busy_timeout_s
OUTAGE_S = BUSY_TIMEOUT_S + 4.0
# A commit that finished just before the outage began may still be on its way back.
IN_FLIGHT_MARGIN_S = 1.5
RECOVERY_LIMIT_S = 15.0


@dataclass(frozen=True)
class Answer:
    marker: float
    started: float  # time.monotonic() when the request was sent
    finished: float  # ... and when its answer arrived
    status: int
    code: str  # the error code of a non-200, "" for a 200
    retry_after: str | None
    record_id: str  # of a 200, "" otherwise


class Load:
    """Client threads sending single-row predictions, each with a unique marker value
    in ``sepal_length``, and a thread polling ``/healthz``."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.answers: list[Answer] = []
        self.sent: set[float] = set()
        self.health: list[tuple[float, int | str]] = []
        self._next = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def _marker(self) -> float:
        with self._lock:
            self._next += 1
            value = 5.0 + self._next * 1e-6
            self.sent.add(value)
            return value

    def _client(self) -> None:
        headers = {"Authorization": f"Bearer {self.server.token}"}
        # Generous: a request may wait out the busy timeout before it is answered.
        with httpx.Client(base_url=self.server.url, headers=headers, timeout=30) as http:
            while not self._stop.is_set():
                marker = self._marker()
                row = {"sepal_length": marker, "sepal_width": 3.0}
                row |= {"petal_length": 1.4, "petal_width": 0.2}
                started = time.monotonic()
                try:
                    response = http.post("/v1/endpoints/iris/predict", json={"inputs": [row]})
                except httpx.TransportError as exc:  # a hang or a dropped connection
                    answer = Answer(marker, started, time.monotonic(), 0, repr(exc), None, "")
                else:
                    answer = self._answer(marker, started, response)
                with self._lock:
                    self.answers.append(answer)
                if answer.status != 200:
                    time.sleep(0.05)  # as a client honouring Retry-After would, briefly

    @staticmethod
    def _answer(marker: float, started: float, response: httpx.Response) -> Answer:
        finished = time.monotonic()
        record_id, code = "", ""
        if response.status_code == 200:
            prediction_id = response.json()["predictions"][0]["id"]
            record_id = prediction_id.rsplit("-", 1)[0]
        else:
            try:
                code = response.json()["error"]["code"]
            except (ValueError, KeyError, TypeError):
                code = f"not the error shape: {response.text[:200]!r}"
        retry_after = response.headers.get("retry-after")
        return Answer(marker, started, finished, response.status_code, code, retry_after, record_id)

    def _poll_health(self) -> None:
        with httpx.Client(base_url=self.server.url, timeout=5) as http:
            while not self._stop.is_set():
                status: int | str
                try:
                    status = http.get("/healthz").status_code
                except httpx.TransportError as exc:
                    status = type(exc).__name__
                self.health.append((time.monotonic(), status))
                time.sleep(0.1)

    def start(self) -> None:
        self._threads = [threading.Thread(target=self._client) for _ in range(CLIENTS)]
        self._threads.append(threading.Thread(target=self._poll_health))
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)
        assert not any(t.is_alive() for t in self._threads), "a client thread hung"

    def snapshot(self) -> list[Answer]:
        with self._lock:
            return list(self.answers)

    def wait_for(self, what: str, ok: Callable[[Answer], bool], timeout: float) -> Answer:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [a for a in self.snapshot() if ok(a)]
            if found:
                return min(found, key=lambda a: a.finished)
            if not any(t.is_alive() for t in self._threads[:CLIENTS]):
                break  # every client died (the exception is printed by the thread)
            time.sleep(0.05)
        raise AssertionError(f"no {what} within {timeout} s: {self.summary()}")

    def summary(self) -> str:
        return str(Counter((a.status, a.code) for a in self.snapshot()))


def _register_and_deploy(server: ServerProcess, e2e: Any, iris: Any, logreg: Any) -> None:
    with server.client() as client:
        e2e.register_logreg(client, "iris", iris, logreg)
        client.deploy("iris", model="iris", version=1)


def _outage(
    server: ServerProcess,
    load: Load,
    go_down: Callable[[], object],
    come_back: Callable[[], object],
) -> tuple[float, float]:
    """Take the store away for OUTAGE_S under load; returns (down, back) monotonic times."""
    load.wait_for("200 before the outage", lambda a: a.status == 200, timeout=20)
    time.sleep(1.0)  # steady traffic before the outage
    go_down()
    down = time.monotonic()
    load.wait_for("503 during the outage", lambda a: a.status == 503, timeout=OUTAGE_S + 5)
    # The control API too: a write that cannot be committed is a 503, not a 500.
    refused = _create_model(server)
    assert refused.status_code == 503, refused.text
    assert refused.json()["error"]["code"] == "unavailable" and "retry-after" in refused.headers
    assert time.monotonic() < down + OUTAGE_S, "the outage ended before it was observed"
    time.sleep(max(0.0, down + OUTAGE_S - time.monotonic()))
    back = time.monotonic()
    come_back()
    load.wait_for(
        "200 after the store came back",
        lambda a: a.status == 200 and a.started >= back,
        timeout=RECOVERY_LIMIT_S,
    )
    # ...and was rolled back: the same write now succeeds (not 409: it did not exist).
    created = _create_model(server)
    assert created.status_code == 201, created.text
    time.sleep(1.0)  # steady traffic after recovery
    return down, back


def _create_model(server: ServerProcess) -> httpx.Response:
    return httpx.post(
        f"{server.url}/api/v1/models",
        headers={"Authorization": f"Bearer {server.token}"},
        json={"name": "made-during-outage", "owner": "ops"},
        timeout=30,
    )


def _check_answers(load: Load, down: float, back: float) -> None:
    answers = load.snapshot()
    unexpected = [a for a in answers if a.status not in (200, 503)]
    assert not unexpected, f"only 200 or 503 are acceptable answers: {unexpected[:5]}"
    refused = [a for a in answers if a.status == 503]
    assert refused, load.summary()
    # The store was unavailable, not the endpoint overloaded: the clients stay far below
    # max_inflight, so every 503 is the record that could not be written.
    assert {a.code for a in refused} == {"unavailable"}, load.summary()
    assert all(a.retry_after for a in refused), "a 503 without Retry-After"
    # No commit can complete while the store is away, so no 200 can be answered then.
    during = [
        a for a in answers if a.status == 200 and down + IN_FLIGHT_MARGIN_S < a.finished < back
    ]
    assert not during, f"200s answered while the store could not commit: {during[:5]}"
    before = [a for a in answers if a.status == 200 and a.finished < down]
    after = [a for a in answers if a.status == 200 and a.started > back]
    assert before and after, load.summary()


def _check_stored(load: Load, url: str) -> None:
    """Every acknowledged prediction stored exactly once; nothing stored that was not sent."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                select(prediction_records.c.id, prediction_records.c.inputs).where(
                    prediction_records.c.endpoint == "iris"
                )
            ).all()
    finally:
        engine.dispose()
    record_of = {float(inputs[0]["sepal_length"]): record_id for record_id, inputs in rows}
    per_marker = Counter(float(inputs[0]["sepal_length"]) for _, inputs in rows)
    acked = [a for a in load.snapshot() if a.status == 200]
    missing = [a for a in acked if record_of.get(a.marker) != a.record_id]
    assert not missing, f"{len(missing)} acknowledged but not stored, e.g. {missing[:3]}"
    twice = [m for m, n in per_marker.items() if n > 1]
    assert not twice, f"stored more than once: {twice[:5]}"
    unknown = [m for m in per_marker if m not in load.sent]
    assert not unknown, f"stored but never sent: {unknown[:5]}"


def _check_health(load: Load, server: ServerProcess) -> None:
    assert server.proc is not None and server.proc.poll() is None, server.log()[-3000:]
    bad = [(t, status) for t, status in load.health if status != 200]
    assert not bad, f"/healthz failed during the outage: {bad[:5]}"
    assert len(load.health) >= 10, load.health
    ready = httpx.get(f"{server.url}/readyz", timeout=5)
    assert ready.status_code == 200, ready.text


@contextmanager
def _running(server: ServerProcess) -> Iterator[ServerProcess]:
    server.init()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_sqlite_locked_answers_503_then_recovers(
    tmp_path: Path, iris: Any, logreg: Any, e2e: Any
) -> None:
    server = make_server(tmp_path / "home", SLIPWAY_STORE_BUSY_TIMEOUT_S=str(BUSY_TIMEOUT_S))
    with _running(server):
        _register_and_deploy(server, e2e, iris, logreg)
        database = server.home / "slipway.db"
        locker = sqlite3.connect(database, timeout=10, isolation_level=None)
        load = Load(server)
        load.start()
        try:
            down, back = _outage(
                server,
                load,
                go_down=lambda: locker.execute("BEGIN EXCLUSIVE"),
                come_back=lambda: locker.execute("ROLLBACK"),
            )
        finally:
            load.stop()
            locker.close()
        _check_answers(load, down, back)
        _check_health(load, server)
    _check_stored(load, f"sqlite:///{database}")


class CuttableProxy:
    """A TCP proxy on 127.0.0.1 in front of ``target`` that can be cut.

    Cut: every open connection is closed (both sides, so the database ends those
    sessions too) and new connections are accepted and closed at once, which a client
    sees as the server going away. The listening port stays bound throughout, so
    nothing else can take it while the proxy is cut.
    """

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.port: int = self.listener.getsockname()[1]
        self.open = threading.Event()
        self.open.set()
        self._closed = threading.Event()
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._acceptor = threading.Thread(target=self._accept, daemon=True)
        self._acceptor.start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if not self.open.is_set():
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=3)
            except OSError:
                client.close()
                continue
            client.settimeout(None)
            upstream.settimeout(None)
            with self._lock:
                # Checked again under the lock: a cut that came meanwhile has already
                # dropped the open sockets and would miss these two.
                if not self.open.is_set():
                    client.close()
                    upstream.close()
                    continue
                self._sockets |= {client, upstream}
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            self._drop(src, dst)

    def _drop(self, *socks: socket.socket) -> None:
        for sock in socks:
            try:
                sock.shutdown(socket.SHUT_RDWR)  # wakes the pump blocked in recv on it
            except OSError:
                pass
            sock.close()
            with self._lock:
                self._sockets.discard(sock)

    def cut(self) -> None:
        with self._lock:
            self.open.clear()
            open_sockets = list(self._sockets)
        self._drop(*open_sockets)

    def restore(self) -> None:
        self.open.set()

    def close(self) -> None:
        self._closed.set()
        self._acceptor.join(timeout=5)
        self.listener.close()
        self.cut()


@pytest.mark.postgres
def test_postgres_unreachable_answers_503_then_recovers(
    tmp_path: Path, iris: Any, logreg: Any, e2e: Any, postgres_url: str
) -> None:
    direct = make_url(postgres_url)
    proxy = CuttableProxy((direct.host or "127.0.0.1", direct.port or 5432))
    via_proxy = direct.set(host="127.0.0.1", port=proxy.port)
    server = make_server(
        tmp_path / "home", SLIPWAY_DATABASE_URL=via_proxy.render_as_string(hide_password=False)
    )
    try:
        with _running(server):
            _register_and_deploy(server, e2e, iris, logreg)
            load = Load(server)
            load.start()
            try:
                down, back = _outage(server, load, go_down=proxy.cut, come_back=proxy.restore)
            finally:
                load.stop()
            _check_answers(load, down, back)
            _check_health(load, server)
    finally:
        proxy.close()
    _check_stored(load, postgres_url)
