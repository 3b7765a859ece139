"""Per-endpoint serving limits: each endpoint may override the server's in-flight and
queue bounds, request timeout and micro-batching.

The service on both stores (set, clear, validation, audit, the generation bump another
worker follows); then their effect on real inference in process (shedding, deadlines,
batching), with models from tests/artifacts/pyfunc_example.py; then the route and the
``slipway endpoint limits`` command against a real server.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from slipway.audit import Actor
from slipway.errors import (
    DeadlineExceeded,
    NotFound,
    Overloaded,
    SlipwayError,
    ValidationFailed,
)
from slipway.runtime import Runtime
from slipway.serving.admission import Admission
from slipway.serving.inference import InferenceResult
from slipway.settings import Settings
from slipway.store.tables import audit_events
from tests.cli.expect import as_json, assert_clean_failure
from tests.conftest import ServerProcess, make_server, pyfunc_runtime, ready_pyfunc_version

ADMIN = Actor("admin")
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
SIGNATURE = {"inputs": [{"name": "x", "type": "float"}], "classes": [0, 1]}
NO_OVERRIDES = {
    "max_inflight": None,
    "max_queue": None,
    "request_timeout_s": None,
    "batch_max_rows": None,
    "batch_wait_ms": None,
}


@dataclass
class World:
    runtime: Runtime
    loop: asyncio.AbstractEventLoop

    def version(self, cls: str, **init: Any) -> int:
        """A ready version of ``m`` answering with ``pyfunc_example:<cls>(**init)``."""
        version = ready_pyfunc_version(
            self.runtime,
            "m",
            cls,
            init=init,
            actor=ADMIN,
            signature=SIGNATURE,
            example_rows=[{"x": 1.0}],
        )
        return int(version.number)

    def concurrently(
        self, endpoint: str, n: int, deadline: float | None = None
    ) -> list[InferenceResult | SlipwayError]:
        """``n`` single-row requests to ``endpoint`` at once: each answer or error."""

        async def one() -> InferenceResult | SlipwayError:
            try:
                return await self.runtime.inference.predict(
                    endpoint, [{"x": 7.0}], caller="t", route="plain", deadline=deadline
                )
            except SlipwayError as exc:
                return exc

        async def many() -> list[InferenceResult | SlipwayError]:
            return list(await asyncio.gather(*(one() for _ in range(n))))

        return self.loop.run_until_complete(many())

    def audit(self, action: str) -> list[Any]:
        with self.runtime.engine.connect() as conn:
            query = select(audit_events).where(audit_events.c.action == action)
            return list(conn.execute(query.order_by(audit_events.c.seq)))


def _world(home: Path, database_url: str = "") -> World:
    rt: Runtime = pyfunc_runtime(home, database_url)
    loop = asyncio.new_event_loop()
    loop.run_until_complete(rt.writer.start())
    return World(rt, loop)


def _close(world: World) -> None:
    world.loop.run_until_complete(world.runtime.writer.stop())
    world.loop.close()
    world.runtime.close()


@pytest.fixture
def world(store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    """Model ``m`` v1 (instant) deployed on endpoint ``e``; once per store."""
    monkeypatch.syspath_prepend(str(ARTIFACTS))
    w = _world(tmp_path / "home", store_url)
    w.runtime.models.create(name="m", owner="ml-team", actor=ADMIN, runbook_url="https://rb")
    w.version("ThresholdModel")
    w.runtime.endpoints.deploy("e", model="m", version=1, actor=ADMIN)
    yield w
    _close(w)


@pytest.fixture
def local(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    """A world on SQLite for behaviour in process (the store's role there is the same)."""
    monkeypatch.syspath_prepend(str(ARTIFACTS))
    w = _world(tmp_path / "home")
    w.runtime.models.create(name="m", owner="ml-team", actor=ADMIN, runbook_url="https://rb")
    yield w
    _close(w)


# -- the service, on SQLite and PostgreSQL ----------------------------------------------


def test_limits_are_set_cleared_audited_and_served(world: World) -> None:
    rt = world.runtime
    before = rt.endpoints.get("e")
    assert before.to_dict()["limits"] == NO_OVERRIDES
    assert rt.inference.limits("e") == rt.inference.defaults  # the server's settings

    changed = rt.endpoints.set_limits(
        "e", actor=ADMIN, reason="slow model", max_inflight=2, request_timeout_s=1.5
    )

    assert changed.to_dict()["limits"] == {
        **NO_OVERRIDES,
        "max_inflight": 2,
        "request_timeout_s": 1.5,
    }
    assert changed.generation == before.generation + 1
    # This process serves with them at once: its route carries them.
    assert rt.pool.route("e").limits == changed.limits
    served = rt.inference.limits("e")
    assert (served.max_inflight, served.request_timeout_s) == (2, 1.5)
    assert served.max_queue == rt.inference.defaults.max_queue  # not overridden
    (event,) = world.audit("endpoint.limits")
    assert (event.actor, event.target, event.reason) == ("admin", "e", "slow model")
    assert event.before == NO_OVERRIDES
    assert event.after == {
        **NO_OVERRIDES,
        "max_inflight": 2,
        "request_timeout_s": 1.5,
        "generation": changed.generation,
    }

    # None hands one limit back to the server; the others stay.
    cleared = rt.endpoints.set_limits("e", actor=ADMIN, max_inflight=None, max_queue=3)

    assert cleared.limits.to_dict() == {**NO_OVERRIDES, "request_timeout_s": 1.5, "max_queue": 3}
    assert cleared.generation == changed.generation + 1
    assert rt.inference.limits("e").max_inflight == rt.inference.defaults.max_inflight
    assert rt.inference.limits("e").max_queue == 3
    assert world.audit("endpoint.limits")[-1].before["max_inflight"] == 2

    # Setting what is already set changes nothing: no new generation, no event.
    same = rt.endpoints.set_limits("e", actor=ADMIN, max_queue=3)
    assert same.generation == cleared.generation
    assert len(world.audit("endpoint.limits")) == 2
    # A redeploy keeps the endpoint's limits.
    assert rt.endpoints.deploy("e", model="m", version=1, actor=ADMIN).limits == cleared.limits


# (limits given, the field the error names, part of its reason)
BAD_LIMITS: list[tuple[dict[str, Any], str, str]] = [
    ({"max_inflight": 0}, "max_inflight", "integer from 1 to 10000"),
    ({"max_inflight": 2.5}, "max_inflight", "integer from 1 to 10000"),
    ({"max_inflight": True}, "max_inflight", "integer"),
    ({"max_queue": -1}, "max_queue", "integer from 0 to 100000"),
    ({"max_queue": "8"}, "max_queue", "integer"),
    ({"request_timeout_s": 0}, "request_timeout_s", "number of seconds in (0, 600]"),
    ({"request_timeout_s": 601}, "request_timeout_s", "(0, 600]"),
    ({"request_timeout_s": float("nan")}, "request_timeout_s", "(0, 600]"),
    ({"batch_max_rows": 10_001}, "batch_max_rows", "integer from 0 to 10000"),
    ({"batch_wait_ms": -0.5}, "batch_wait_ms", "number of milliseconds in [0, 1000]"),
    ({"max_inflight": 4, "timeout": 2}, "timeout", "unknown limit"),
    ({}, "limits", "give at least one of"),
]


def test_bad_limits_name_the_field_and_change_nothing(world: World) -> None:
    rt = world.runtime
    generation = rt.endpoints.get("e").generation

    for limits, field, reason in BAD_LIMITS:
        with pytest.raises(ValidationFailed) as caught:
            rt.endpoints.set_limits("e", actor=ADMIN, **limits)
        (detail,) = caught.value.details
        assert detail["field"] == field and reason in detail["reason"], limits

    assert rt.endpoints.get("e").generation == generation
    assert rt.endpoints.get("e").limits.to_dict() == NO_OVERRIDES
    assert world.audit("endpoint.limits") == []


def test_limits_of_an_unknown_endpoint_are_not_found(world: World) -> None:
    with pytest.raises(NotFound):
        world.runtime.endpoints.set_limits("nope", actor=ADMIN, max_inflight=2)


def test_deploy_sets_limits_in_its_own_transaction(world: World) -> None:
    rt = world.runtime

    created = rt.endpoints.deploy(
        "f", model="m", version=1, actor=ADMIN, limits={"max_queue": 4, "batch_max_rows": 0}
    )

    assert created.limits.to_dict() == {**NO_OVERRIDES, "max_queue": 4, "batch_max_rows": 0}
    assert rt.pool.route("f").limits == created.limits
    deployed = [e for e in world.audit("endpoint.deploy") if e.target == "f"]
    assert deployed[-1].after["limits"] == {"max_queue": 4, "batch_max_rows": 0}
    assert world.audit("endpoint.limits") == []  # part of the deploy, not an event apart

    # A redeploy naming one limit changes that one only.
    redeployed = rt.endpoints.deploy(
        "f", model="m", version=1, actor=ADMIN, limits={"max_queue": None}
    )
    assert redeployed.limits.to_dict() == {**NO_OVERRIDES, "batch_max_rows": 0}

    # A bad limit refuses the whole deploy before anything is written.
    with pytest.raises(ValidationFailed) as caught:
        rt.endpoints.deploy("g", model="m", version=1, actor=ADMIN, limits={"max_queue": -2})
    assert caught.value.details[0]["field"] == "max_queue"
    with pytest.raises(NotFound):
        rt.endpoints.get("g")


def test_another_worker_serves_with_the_limits_after_its_sync(
    world: World, store_url: str, tmp_path: Path
) -> None:
    rt = world.runtime
    other = _world(tmp_path / "home", store_url)  # a second worker on the same store
    try:
        other.runtime.endpoints.sync()
        assert other.runtime.inference.limits("e") == other.runtime.inference.defaults

        rt.endpoints.set_limits("e", actor=ADMIN, max_inflight=3, batch_wait_ms=2.0)
        other.runtime.endpoints.sync()

        served = other.runtime.inference.limits("e")
        assert (served.max_inflight, served.batch_wait_ms) == (3, 2.0)
    finally:
        _close(other)


def test_server_settings_are_held_to_the_same_ranges(tmp_path: Path) -> None:
    with pytest.raises(ValidationFailed) as caught:
        Settings({"home": str(tmp_path), "max_queue": -1}, environ={})
    assert caught.value.details[0]["field"] == "SLIPWAY_MAX_QUEUE"
    with pytest.raises(ValidationFailed, match="SLIPWAY_REQUEST_TIMEOUT_S"):
        Settings({"home": str(tmp_path)}, environ={"SLIPWAY_REQUEST_TIMEOUT_S": "0"})


# -- in process: what the limits do to requests ------------------------------------------


def test_a_small_endpoint_sheds_while_its_neighbour_on_defaults_does_not(local: World) -> None:
    rt = local.runtime
    local.version("FaultyModel", delay_s=0.2)
    rt.endpoints.deploy("small", model="m", version=1, actor=ADMIN)
    rt.endpoints.set_limits("small", actor=ADMIN, max_inflight=1, max_queue=1)
    rt.endpoints.deploy("roomy", model="m", version=1, actor=ADMIN)

    small = local.concurrently("small", 3)
    roomy = local.concurrently("roomy", 3)

    # One runs, one waits its turn, the third is refused at once.
    assert sum(isinstance(r, InferenceResult) for r in small) == 2
    (shed,) = [r for r in small if not isinstance(r, InferenceResult)]
    assert isinstance(shed, Overloaded) and "'small'" in shed.message
    assert all(isinstance(r, InferenceResult) for r in roomy)


def test_the_endpoint_timeout_refuses_a_request_left_waiting(local: World) -> None:
    rt = local.runtime
    local.version("FaultyModel", delay_s=0.3)
    rt.endpoints.deploy(
        "hasty",
        model="m",
        version=1,
        actor=ADMIN,
        limits={"max_inflight": 1, "request_timeout_s": 0.1},
    )

    answers = local.concurrently("hasty", 2)

    assert isinstance(answers[0], InferenceResult)
    assert isinstance(answers[1], DeadlineExceeded)
    # A deadline the caller gives (the X-Slipway-Timeout-Ms header) replaces it.
    patient = local.concurrently("hasty", 2, deadline=time.monotonic() + 5)
    assert all(isinstance(r, InferenceResult) for r in patient)


def test_batch_max_rows_one_keeps_every_request_in_its_own_call(local: World) -> None:
    import pyfunc_example  # tests/artifacts, on the path for this test

    rt = local.runtime
    single = local.version("RecordingModel", tag="single", delay_s=0.05)
    merged = local.version("RecordingModel", tag="merged", delay_s=0.05)
    rt.endpoints.deploy(
        "single", model="m", version=single, actor=ADMIN, limits={"batch_max_rows": 1}
    )
    rt.endpoints.deploy("merged", model="m", version=merged, actor=ADMIN)
    assert rt.inference.defaults.batch_max_rows > 1  # the server merges by default
    pyfunc_example.CALLS.clear()  # forget the warm-up calls

    answers = local.concurrently("single", 6) + local.concurrently("merged", 6)

    assert all(isinstance(r, InferenceResult) for r in answers)
    assert pyfunc_example.CALLS["single"] == [1] * 6
    # On server defaults, requests arriving together share calls.
    calls = pyfunc_example.CALLS["merged"]
    assert sum(calls) == 6 and len(calls) < 6


def test_admission_follows_bounds_changed_under_load() -> None:
    admission = Admission(max_inflight=1, max_queue=10)
    order: list[str] = []

    async def request(name: str, hold: asyncio.Event, bound: int) -> None:
        async with admission.slot("e", max_inflight=bound):
            order.append(name)
            await hold.wait()

    async def scenario() -> None:
        first_done, rest_done = asyncio.Event(), asyncio.Event()
        first = asyncio.create_task(request("first", first_done, 1))
        waiters = [asyncio.create_task(request(f"w{i}", rest_done, 1)) for i in range(2)]
        await asyncio.sleep(0.01)
        assert admission.load("e") == (1, 2)
        # A request bringing a raised bound (3) lets the waiters in, ahead of itself.
        late = asyncio.create_task(request("late", rest_done, 3))
        await asyncio.sleep(0.01)
        assert sorted(order) == ["first", "w0", "w1"]
        assert admission.load("e") == (3, 1)
        # Lowered to 1: a finished request frees no slot until the running ones are
        # down to the bound.
        lowered = asyncio.create_task(request("lowered", rest_done, 1))
        await asyncio.sleep(0.01)
        first_done.set()
        await first
        await asyncio.sleep(0.01)
        assert admission.load("e") == (2, 2) and len(order) == 3
        rest_done.set()
        await asyncio.gather(*waiters, late, lowered)
        assert order[3:] == ["late", "lowered"] and admission.load("e") == (0, 0)

    asyncio.run(scenario())


# -- the route and the command, against a real server -------------------------------------


@pytest.fixture(scope="module")
def limits_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server with ``slow`` (300 ms per call) deployed on endpoint ``slow``."""
    proc = make_server(
        tmp_path_factory.mktemp("limits") / "home",
        PYTHONPATH=str(ARTIFACTS),
        SLIPWAY_PYFUNC_TRUSTED_MODULES="pyfunc_example",
    )
    proc.init()
    proc.start()
    try:
        with proc.client() as c:
            c.create_model("slow", owner="ml-team")
            version = c.register_version(
                "slow",
                artifact=json.dumps(
                    {"class": "pyfunc_example:FaultyModel", "init": {"delay_s": 0.3}}
                ).encode(),
                flavor="pyfunc",
                signature=SIGNATURE,
                example_rows=[{"x": 1.0}],
            )
            assert version["status"] == "ready", version
            c.deploy("slow", model="slow", version=1, max_queue=8)
        yield proc
    finally:
        proc.stop()


def test_limits_command_sets_shows_and_clears(limits_server: ServerProcess) -> None:
    cli = limits_server.cli

    set_ = as_json(
        cli(
            *("endpoint", "limits", "slow", "--max-inflight", "1", "--timeout", "0.1"),
            *("--batch-wait-ms", "2", "--reason", "one at a time", "--json"),
        )
    )

    expected = {
        "max_inflight": 1,
        "max_queue": 8,  # from the deploy
        "request_timeout_s": 0.1,
        "batch_max_rows": None,
        "batch_wait_ms": 2.0,
    }
    assert set_["limits"] == expected
    with limits_server.client() as c:
        shown = c.get_endpoint("slow")
    assert shown["limits"] == expected
    assert shown["effective_limits"]["max_inflight"] == 1
    assert shown["effective_limits"]["batch_max_rows"] == 64  # the server's setting
    table = cli("endpoint", "show", "slow").stdout
    assert "max_inflight=1, max_queue=8, request_timeout_s=0.1, batch_wait_ms=2" in table

    cleared = as_json(
        cli(
            "endpoint",
            "limits",
            "slow",
            "--clear",
            "batch-wait-ms",
            "--clear",
            "max_queue",
            "--json",
        )
    )
    assert cleared["limits"] == {**expected, "max_queue": None, "batch_wait_ms": None}
    assert cleared["generation"] == set_["generation"] + 1

    bad = cli("endpoint", "limits", "slow", "--max-queue", "-1", check=False)
    assert "max_queue" in assert_clean_failure(bad, "invalid_field")
    unknown = cli("endpoint", "limits", "slow", "--clear", "speed", check=False)
    assert "--clear" in assert_clean_failure(unknown, "invalid_field")


def test_the_endpoint_timeout_applies_over_http_and_the_header_replaces_it(
    limits_server: ServerProcess,
) -> None:
    with limits_server.client() as c:
        c.set_endpoint_limits("slow", max_inflight=1, request_timeout_s=0.1)
    headers = {"Authorization": f"Bearer {limits_server.token}"}

    def post(timeout_ms: str | None) -> int:
        extra = {"X-Slipway-Timeout-Ms": timeout_ms} if timeout_ms else {}
        with httpx.Client(base_url=limits_server.url, headers=headers, timeout=10) as http:
            response = http.post(
                "/v1/endpoints/slow/predict", json={"inputs": [{"x": 1.0}]}, headers=extra
            )
            return response.status_code

    with ThreadPoolExecutor(2) as pool:
        # The second waits behind the first (300 ms) past the endpoint's 100 ms.
        hasty = sorted(pool.map(post, [None, None]))
        # Asking for 5 s, both run.
        patient = list(pool.map(post, ["5000", "5000"]))

    assert hasty == [200, 504]
    assert patient == [200, 200]
    with httpx.Client(base_url=limits_server.url, headers=headers) as http:
        refused = http.put("/api/v1/endpoints/slow/limits", json={"request_timeout_s": 0})
    assert refused.status_code == 422
    assert refused.json()["error"]["details"][0]["field"] == "request_timeout_s"
