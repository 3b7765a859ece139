"""Rollouts, traffic plans, rollback and the stop switch on the real services and store.

Requests go through the real inference service (routing, contract, model, durable
record, live windows, shadow copies); the controller's tick is called directly, so a
step takes a fraction of a second instead of minutes.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select

from slipway.audit import Actor
from slipway.errors import Conflict, EndpointStopped, ValidationFailed
from slipway.runtime import Runtime
from slipway.serving.inference import InferenceResult
from slipway.store.tables import audit_events, prediction_records
from tests.conftest import pyfunc_runtime, ready_pyfunc_version

ADMIN = Actor("admin")
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
SIGNATURE = {"inputs": [{"name": "x", "type": "float"}], "classes": [0, 1]}
# Small samples so a test decides within a few hundred requests.
FAST = {
    "checks": {
        name: {"min_samples": 40}
        for name in ("error_rate", "latency_p99", "contract_violation_rate")
    }
    # Small samples of two classes differ by chance: only a gross shift counts here.
    | {"output_shift": {"min_samples": 60, "threshold": 0.3}, "agreement": {"min_samples": 60}},
}


@dataclass
class World:
    runtime: Runtime
    rng: np.random.Generator
    loop: asyncio.AbstractEventLoop

    def version(self, **init: Any) -> int:
        version = ready_pyfunc_version(
            self.runtime,
            "m",
            "FaultyModel",
            init=init,
            actor=ADMIN,
            signature=SIGNATURE,
            example_rows=[{"x": 1.0}],
        )
        return int(version.number)

    def predict(self, n: int, endpoint: str = "e", key: str | None = None) -> list[Any]:
        """``n`` single-row requests; each answer (InferenceResult) or the error raised."""

        async def one() -> Any:
            x = float(self.rng.uniform(0, 10))
            try:
                return await self.runtime.inference.predict(
                    endpoint, [{"x": x}], caller="t", route="plain", routing_key=key
                )
            except Exception as exc:  # noqa: BLE001 - the test counts them
                return exc

        async def many() -> list[Any]:
            out = [await one() for _ in range(n)]
            await self.runtime.inference.mirrors.drain()
            return out

        return self.loop.run_until_complete(many())

    def tick(self) -> list[dict[str, Any]]:
        return self.runtime.check_rollouts()


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    monkeypatch.syspath_prepend(str(ARTIFACTS))
    rt: Runtime = pyfunc_runtime(tmp_path / "home")
    rt.models.create(name="m", owner="ml-team", actor=ADMIN, runbook_url="https://rb")
    loop = asyncio.new_event_loop()
    loop.run_until_complete(rt.writer.start())
    w = World(rt, np.random.default_rng(0), loop)
    w.version()  # v1, the primary
    rt.endpoints.deploy("e", model="m", version=1, actor=ADMIN)
    yield w
    loop.run_until_complete(rt.writer.stop())
    loop.close()
    rt.close()


def _versions(results: list[Any]) -> Counter[int]:
    return Counter(r.version for r in results if isinstance(r, InferenceResult))


def _actions(world: World) -> list[str]:
    with world.runtime.engine.connect() as conn:
        return list(
            conn.execute(select(audit_events.c.action).order_by(audit_events.c.seq)).scalars()
        )


def test_failing_canary_is_rolled_back_with_alert_and_audit(world: World) -> None:
    bad = world.version(error_rate=0.3, seed=1)
    rt = world.runtime
    rollout = rt.rollouts.start(
        "e", version=bad, actor=ADMIN, steps=[50], step_duration_s=600, thresholds=FAST
    )
    assert rollout.state == "pending" and rt.endpoints.get("e").canary_weight == 0
    world.tick()
    assert rt.rollouts.get(rollout.id).state == "running"
    assert rt.endpoints.get("e").canary_weight == 50
    world.predict(200)
    decisions = world.tick()
    after = rt.rollouts.get(rollout.id)
    assert after.state == "rolled_back", (decisions, after.last_analysis)
    assert "error rate" in (after.decision or "")
    assert rt.endpoints.get("e").canary_version is None
    # Nothing reaches the canary any more.
    assert _versions(world.predict(100)) == Counter({1: 100})
    firing = rt.alerts.list(endpoint="e", state="firing")
    assert [a.monitor for a in firing] == ["rollout"]
    assert firing[0].subject == "error_rate" and firing[0].version == bad
    assert "rollout.rollback" in _actions(world)


def test_flipped_canary_fails_agreement(world: World) -> None:
    flipped = world.version(flip=True)
    rt = world.runtime
    rt.rollouts.start(
        "e", version=flipped, actor=ADMIN, steps=[50], step_duration_s=600, thresholds=FAST
    )
    world.tick()
    world.predict(300)
    world.tick()
    after = rt.rollouts.latest("e")
    assert after.state == "rolled_back", after.last_analysis
    failed = {c["name"] for c in (after.last_analysis or {})["checks"] if c["status"] == "fail"}
    assert "agreement" in failed


def test_healthy_canary_is_promoted_step_by_step(world: World) -> None:
    good = world.version()
    rt = world.runtime
    rollout = rt.rollouts.start(
        "e",
        version=good,
        actor=ADMIN,
        steps=[30, 100],
        step_duration_s=0.2,
        thresholds={**FAST, "inconclusive_wait": 100},
    )
    world.tick()
    seen: Counter[int] = Counter()
    for _ in range(10):
        seen += _versions(world.predict(150))
        time.sleep(0.25)
        world.tick()
        if rt.rollouts.get(rollout.id).state == "promoted":
            break
    done = rt.rollouts.get(rollout.id)
    assert done.state == "promoted", json.dumps([done.decision, done.last_analysis])
    assert seen[good] and seen[1]
    endpoint = rt.endpoints.get("e")
    assert (endpoint.version, endpoint.previous_version, endpoint.canary_version) == (good, 1, None)
    assert _versions(world.predict(50)) == Counter({good: 50})
    actions = _actions(world)
    assert actions.count("rollout.step") == 2 and "rollout.promote" in actions


def test_no_data_pauses_and_manual_controls(world: World) -> None:
    good = world.version()
    rt = world.runtime
    strict = {**FAST, "inconclusive_wait": 0}
    rt.rollouts.start(
        "e", version=good, actor=ADMIN, steps=[10, 100], step_duration_s=0.05, thresholds=strict
    )
    world.tick()
    time.sleep(0.1)
    world.tick()
    paused = rt.rollouts.latest("e")
    assert paused.state == "paused" and "not enough data" in (paused.decision or "")
    with pytest.raises(Conflict):
        rt.rollouts.pause("e", actor=ADMIN)
    with pytest.raises(Conflict):  # the rollout owns the endpoint
        rt.endpoints.deploy("e", model="m", version=good, actor=ADMIN)
    with pytest.raises(Conflict):
        rt.rollouts.start("e", version=good, actor=ADMIN)
    assert rt.rollouts.resume("e", actor=ADMIN).state == "running"
    promoted = rt.rollouts.promote("e", actor=ADMIN, reason="looks fine")
    assert promoted.state == "promoted" and rt.endpoints.get("e").version == good
    assert rt.rollouts.active("e") is None


def test_abort_clears_the_canary(world: World) -> None:
    good = world.version()
    rt = world.runtime
    rt.rollouts.start("e", version=good, actor=ADMIN, steps=[50], step_duration_s=60)
    world.tick()
    assert rt.rollouts.abort("e", actor=ADMIN, reason="wrong build").state == "aborted"
    assert _versions(world.predict(40)) == Counter({1: 40})


def test_start_validates_its_input(world: World) -> None:
    rt = world.runtime
    good = world.version()
    for steps, field in (
        ([], "steps"),
        ([50, 20], "steps[1]"),
        ([0], "steps[0]"),
        ([150], "steps[0]"),
    ):
        with pytest.raises(ValidationFailed) as caught:
            rt.rollouts.start("e", version=good, actor=ADMIN, steps=steps)
        assert caught.value.details[0]["field"] == field
    with pytest.raises(ValidationFailed) as caught:
        rt.rollouts.start(
            "e",
            version=good,
            actor=ADMIN,
            thresholds={"checks": {"latency_p99": {"threshold": -1}}},
        )
    assert caught.value.details[0]["field"] == "checks.latency_p99.threshold"
    with pytest.raises(Conflict):
        rt.rollouts.start("e", version=1, actor=ADMIN)  # already the primary
    for kwargs, field in (({"version": 99}, "version"), ({"template": "nope"}, "template")):
        with pytest.raises(ValidationFailed) as caught:
            rt.rollouts.start("e", actor=ADMIN, **{"version": good, **kwargs})
        assert caught.value.details[0]["field"] == field
    rt.plans.set_traffic("e", canary=None, weight=0, routing="random", shadows=[good], actor=ADMIN)
    with pytest.raises(ValidationFailed) as caught:
        rt.rollouts.start("e", version=good, actor=ADMIN)
    assert "shadow" in caught.value.message
    rt.plans.set_traffic("e", canary=good, weight=5, routing="random", shadows=[], actor=ADMIN)
    with pytest.raises(Conflict) as refused:
        rt.rollouts.start("e", version=good, actor=ADMIN)
    assert "by hand" in refused.value.message


def test_a_stopped_endpoint_holds_its_rollout(world: World) -> None:
    good = world.version()
    rt = world.runtime
    strict = {**FAST, "inconclusive_wait": 0}
    rt.rollouts.start(
        "e", version=good, actor=ADMIN, steps=[10, 100], step_duration_s=0.05, thresholds=strict
    )
    world.tick()
    rt.plans.stop("e", actor=ADMIN, reason="incident")
    time.sleep(0.1)
    assert world.tick() == []  # not judged (it would pause for lack of data)
    assert rt.rollouts.latest("e").state == "running"


def test_controller_resumes_after_a_restart(world: World, tmp_path: Path) -> None:
    good = world.version()
    rt = world.runtime
    rollout = rt.rollouts.start(
        "e", version=good, actor=ADMIN, steps=[50, 100], step_duration_s=600
    )
    world.tick()
    rt.plans.stop("e", actor=ADMIN, reason="incident 7")
    again = Runtime.from_settings(rt.settings)
    try:
        again.endpoints.sync()
        route = again.pool.route("e")
        assert route.canary is not None and route.weight == 50
        with pytest.raises(EndpointStopped, match="incident 7"):  # the stop survives too
            route.pick()
        assert again.rollouts.get(rollout.id).state == "running"
        again.plans.resume("e", actor=ADMIN)
        assert again.rollouts.promote("e", actor=ADMIN).state == "promoted"
    finally:
        again.close()


def test_rollback_needs_no_artifact_and_stop_switch(world: World) -> None:
    rt = world.runtime
    second = world.version()
    rt.endpoints.deploy("e", model="m", version=second, actor=ADMIN)
    # The previous primary's artifact disappears: it is kept loaded, rollback still works.
    first = rt.versions.get("m", 1)
    for path in Path(rt.settings.resolved_artifact_url.removeprefix("file://")).rglob(
        first.artifact_sha256 + "*"
    ):
        path.unlink()
    endpoint = rt.plans.rollback("e", actor=ADMIN, reason="v2 misbehaves")
    assert (endpoint.version, endpoint.previous_version) == (1, second)
    assert _versions(world.predict(20)) == Counter({1: 20})

    with pytest.raises(ValidationFailed):
        rt.plans.stop("e", actor=ADMIN, reason=" ")
    rt.plans.stop("e", actor=ADMIN, reason="incident 42")
    stopped = world.predict(3)
    assert all(isinstance(r, EndpointStopped) for r in stopped)
    assert "incident 42" in stopped[0].message
    rt.plans.stop("e", actor=ADMIN, reason="incident 42", fallback=second)
    assert _versions(world.predict(5)) == Counter({second: 5})
    rt.plans.resume("e", actor=ADMIN)
    assert _versions(world.predict(5)) == Counter({1: 5})
    with pytest.raises(Conflict):
        rt.plans.resume("e", actor=ADMIN)
    assert {"endpoint.rollback", "endpoint.stop", "endpoint.resume"} <= set(_actions(world))


def test_canary_share_is_exact_and_sticky_keys_stick(world: World) -> None:
    rt = world.runtime
    canary = world.version()
    rt.plans.set_traffic("e", canary=canary, weight=10, routing="random", shadows=[], actor=ADMIN)
    route = rt.pool.route("e")
    picks = Counter(route.pick().version.number for _ in range(10_000))
    assert picks[canary] == 1000
    rt.plans.set_traffic("e", canary=canary, weight=30, routing="sticky", shadows=[], actor=ADMIN)
    route = rt.pool.route("e")
    by_key = {
        f"user-{i}": {route.pick(f"user-{i}").version.number for _ in range(5)} for i in range(200)
    }
    assert all(len(v) == 1 for v in by_key.values())
    share = sum(v == {canary} for v in by_key.values()) / len(by_key)
    assert 0.15 < share < 0.45


def test_raising_shadow_changes_no_answer(world: World) -> None:
    rt = world.runtime
    world.rng = np.random.default_rng(5)
    before = [r.output.predictions.tolist() for r in world.predict(100)]
    broken = world.version(error_rate=1.0)
    rt.plans.set_traffic(
        "e", canary=None, weight=0, routing="random", shadows=[broken], actor=ADMIN
    )
    world.rng = np.random.default_rng(5)
    after = world.predict(100)
    assert all(isinstance(r, InferenceResult) and r.version == 1 for r in after)
    assert [r.output.predictions.tolist() for r in after] == before
    with rt.engine.connect() as conn:
        shadows = conn.execute(
            select(prediction_records.c.outcome, prediction_records.c.mirror_of).where(
                prediction_records.c.arm == "shadow"
            )
        ).all()
    assert len(shadows) == 100 and {s.outcome for s in shadows} == {"error"}
    assert {s.mirror_of for s in shadows} == {r.record_id for r in after}
    rt.windows.flush(rt.engine, everything=True)
    now = time.time()
    from datetime import UTC, datetime, timedelta

    start = datetime.fromtimestamp(now, UTC) - timedelta(hours=1)
    end = start + timedelta(hours=2)
    shadow = rt.window_store.read("e", start, end, version=broken, shadow=True)
    assert shadow.requests == 100 and shadow.errors == 100
    live = rt.window_store.read("e", start, end)
    assert live.requests == 200 and live.errors == 0  # shadows kept apart
