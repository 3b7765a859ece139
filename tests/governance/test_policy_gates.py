"""Policies gate rollout start, promote by hand and the controller's automatic promote;
rollback is never gated. Then the API and CLI end to end on a real server."""

from __future__ import annotations

import asyncio
import json
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from slipway.audit import Actor
from slipway.errors import PolicyBlocked
from slipway.runtime import Runtime
from slipway.store.tables import audit_events
from tests.conftest import ServerProcess, make_server, pyfunc_runtime, ready_pyfunc_version
from tests.governance.test_policies import ROWS, SIGNATURE, _skops

ADMIN = Actor("admin")
DEV = Actor("dana")
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
# A policy that only reads the evaluation record, so pyfunc test models may pass it.
AUC_POLICY = """\
applies_to: {endpoints: [e]}
on: [%s]
checks:
  - {id: auc-floor, type: metric, metric: auc, op: ">=", value: 0.8}
"""
# Small samples so the canary analysis decides within a few hundred requests (as in
# tests/rollout/test_service.py).
FAST = {
    "checks": {
        name: {"min_samples": 40}
        for name in ("error_rate", "latency_p99", "contract_violation_rate")
    }
    | {"output_shift": {"min_samples": 60, "threshold": 0.3}, "agreement": {"min_samples": 60}},
    "inconclusive_wait": 100,
}


class World:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.loop = asyncio.new_event_loop()
        self.loop.run_until_complete(rt.writer.start())

    def version(self, auc: float) -> int:
        version = ready_pyfunc_version(
            self.rt,
            "m",
            "FaultyModel",
            actor=DEV,
            signature={"inputs": [{"name": "x", "type": "float"}], "classes": [0, 1]},
            example_rows=[{"x": 1.0}],
        )
        self.rt.evaluations.record("m", version.number, actor=DEV, metrics={"auc": auc})
        return int(version.number)

    def predict(self, n: int) -> None:
        async def many() -> None:
            for i in range(n):
                x = float(i % 10) + 0.5
                await self.rt.inference.predict("e", [{"x": x}], caller="t", route="plain")
            await self.rt.inference.mirrors.drain()

        self.loop.run_until_complete(many())

    def close(self) -> None:
        self.loop.run_until_complete(self.rt.writer.stop())
        self.loop.close()
        self.rt.close()


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    """Endpoint ``e`` serving version 1 (auc 0.9) of ``m``; no policy yet."""
    monkeypatch.syspath_prepend(str(ARTIFACTS))
    w = World(pyfunc_runtime(tmp_path / "home"))
    w.rt.models.create(name="m", owner="ml-team", actor=ADMIN)
    w.version(auc=0.9)
    w.rt.endpoints.deploy("e", model="m", version=1, actor=ADMIN)
    yield w
    w.close()


def _actions(rt: Runtime, action: str) -> list[dict[str, Any]]:
    with rt.engine.connect() as conn:
        rows = conn.execute(
            select(audit_events).where(audit_events.c.action == action).order_by(audit_events.c.seq)
        ).all()
    return [r._asdict() for r in rows]


def test_a_blocked_rollout_start_leaves_no_rollout_and_no_canary(world: World) -> None:
    rt = world.rt
    rt.policies.put("gate", AUC_POLICY % "rollout_start", actor=ADMIN)
    weak = world.version(auc=0.7)
    with pytest.raises(PolicyBlocked) as blocked:
        rt.rollouts.start("e", version=weak, actor=ADMIN, steps=[50])
    assert blocked.value.details == [{"field": "gate.auc-floor", "reason": "auc 0.7 < 0.8"}]
    assert rt.rollouts.list("e") == []
    endpoint = rt.endpoints.get("e")
    assert (endpoint.version, endpoint.canary_version) == (1, None)
    assert rt.pool.route("e").canary is None
    # A deploy is not a rollout start: this policy does not check it.
    assert rt.policies.applicable("e", "deploy") == []

    strong = world.version(auc=0.85)
    rollout = rt.rollouts.start("e", version=strong, actor=ADMIN, steps=[50])
    assert rollout.state == "pending"
    started = _actions(rt, "rollout.start")[-1]["after"]
    assert started["policy"]["policies"][0]["name"] == "gate"
    assert started["policy"]["policies"][0]["checks"][0]["reason"] == "auc 0.85 >= 0.8"


def test_a_blocked_promote_by_hand_leaves_the_rollout_running(world: World) -> None:
    rt = world.rt
    rt.policies.put("gate", AUC_POLICY % "promote", actor=ADMIN)
    weak = world.version(auc=0.7)
    rt.rollouts.start("e", version=weak, actor=ADMIN, steps=[50], step_duration_s=600)
    rt.check_rollouts()
    with pytest.raises(PolicyBlocked) as blocked:
        rt.rollouts.promote("e", actor=ADMIN, reason="ship it")
    assert blocked.value.details == [{"field": "gate.auc-floor", "reason": "auc 0.7 < 0.8"}]
    running = rt.rollouts.latest("e")
    assert (running.state, running.step) == ("running", 0)
    assert rt.endpoints.get("e").version == 1

    # New evidence lets it through, and the promote's audit event names the policy.
    rt.evaluations.record("m", weak, actor=DEV, metrics={"auc": 0.82})
    assert rt.rollouts.promote("e", actor=ADMIN).state == "promoted"
    assert rt.endpoints.get("e").version == weak
    promoted = _actions(rt, "rollout.promote")[-1]["after"]
    assert promoted["policy"]["allowed"] is True


def test_the_controller_pauses_instead_of_promoting_when_a_policy_blocks(world: World) -> None:
    rt = world.rt
    rt.policies.put("gate", AUC_POLICY % "promote", actor=ADMIN)
    weak = world.version(auc=0.7)
    rollout = rt.rollouts.start(
        "e", version=weak, actor=ADMIN, steps=[30, 100], step_duration_s=0.2, thresholds=FAST
    )
    rt.check_rollouts()
    for _ in range(10):
        world.predict(150)
        time.sleep(0.25)
        rt.check_rollouts()
        if rt.rollouts.get(rollout.id).state != "running":
            break
    paused = rt.rollouts.get(rollout.id)
    assert paused.state == "paused", (paused.decision, paused.last_analysis)
    assert paused.decision == "blocked by policy: gate.auc-floor: auc 0.7 < 0.8"
    # The step to 100 % is a promotion in all but name: it was refused, so the canary
    # stays at 30 % rather than serving every caller.
    assert (paused.step, paused.weight) == (0, 30)
    endpoint = rt.endpoints.get("e")
    assert (endpoint.version, endpoint.canary_version, endpoint.canary_weight) == (1, weak, 30)
    assert _actions(rt, "rollout.promote") == []
    assert _actions(rt, "policy.blocked")[-1]["actor"] == "rollout-controller"
    # Resuming by hand does not get past the gate either; new evidence does.
    rt.rollouts.resume("e", actor=ADMIN)  # back to 30 %: no more callers, not gated
    rt.rollouts.pause("e", actor=ADMIN)
    rt.evaluations.record("m", weak, actor=DEV, metrics={"auc": 0.81})
    assert rt.rollouts.resume("e", actor=ADMIN).state == "running"


def test_a_canary_at_100_percent_steps_back_when_a_policy_blocks(world: World) -> None:
    """An approval going stale while the canary already takes every caller: the
    controller pauses and hands the callers back to the primary."""
    rt = world.rt
    weak = world.version(auc=0.85)
    rollout = rt.rollouts.start(
        "e", version=weak, actor=ADMIN, steps=[40, 100], step_duration_s=0.2, thresholds=FAST
    )
    rt.check_rollouts()
    for _ in range(10):
        world.predict(150)
        time.sleep(0.25)
        rt.check_rollouts()
        if rt.rollouts.get(rollout.id).step == 1:
            break
    assert rt.endpoints.get("e").canary_weight == 100
    rt.policies.put("gate", AUC_POLICY % "promote", actor=ADMIN)
    rt.evaluations.record("m", weak, actor=DEV, metrics={"auc": 0.7})
    with pytest.raises(PolicyBlocked):
        rt.rollouts.promote("e", actor=ADMIN)
    for _ in range(10):
        world.predict(150)
        time.sleep(0.25)
        rt.check_rollouts()
        if rt.rollouts.get(rollout.id).state != "running":
            break
    paused = rt.rollouts.get(rollout.id)
    assert (paused.state, paused.step, paused.weight) == ("paused", 0, 40), paused.decision
    assert rt.endpoints.get("e").canary_weight == 40
    # Resuming runs step 1 (40 %) again; the step to 100 % meets the gate again.
    assert rt.rollouts.resume("e", actor=ADMIN).weight == 40


def test_a_canary_set_by_hand_passes_the_rollout_start_gates(world: World) -> None:
    rt = world.rt
    rt.policies.put("gate", AUC_POLICY % "rollout_start", actor=ADMIN)
    weak = world.version(auc=0.7)
    with pytest.raises(PolicyBlocked) as blocked:
        rt.plans.set_traffic(
            "e", canary=weak, weight=100, routing="random", shadows=[], actor=ADMIN
        )
    assert blocked.value.details == [{"field": "gate.auc-floor", "reason": "auc 0.7 < 0.8"}]
    assert rt.endpoints.get("e").canary_version is None
    # A shadow answers no caller: not gated.
    assert rt.plans.set_traffic(
        "e", canary=None, weight=0, routing="random", shadows=[weak], actor=ADMIN
    ).shadow_versions == (weak,)
    strong = world.version(auc=0.85)
    endpoint = rt.plans.set_traffic(
        "e", canary=strong, weight=10, routing="random", shadows=[], actor=ADMIN
    )
    assert (endpoint.canary_version, endpoint.canary_weight) == (strong, 10)
    assert _actions(rt, "endpoint.traffic")[-1]["after"]["policy"]["allowed"] is True


def test_a_stop_is_never_gated_but_a_new_fallback_version_is(world: World) -> None:
    rt = world.rt
    second = world.version(auc=0.95)
    rt.endpoints.deploy("e", model="m", version=second, actor=ADMIN)
    rt.policies.put("gate", AUC_POLICY.replace("0.8", "0.92") % "deploy", actor=ADMIN)
    weak = world.version(auc=0.5)
    # A fallback answers every caller: an ungated version may not serve that way.
    with pytest.raises(PolicyBlocked) as blocked:
        rt.plans.stop("e", actor=ADMIN, reason="incident", fallback=weak)
    assert blocked.value.details == [{"field": "gate.auc-floor", "reason": "auc 0.5 < 0.92"}]
    assert not rt.endpoints.get("e").stopped
    # Stopping, and falling back to the previous primary (which fails the policy now),
    # always work.
    assert rt.plans.stop("e", actor=ADMIN, reason="incident").stopped
    stopped = rt.plans.stop("e", actor=ADMIN, reason="incident", fallback=1)
    assert stopped.stopped and stopped.fallback_version == 1


def test_rollback_is_never_gated(world: World) -> None:
    rt = world.rt
    second = world.version(auc=0.95)
    rt.endpoints.deploy("e", model="m", version=second, actor=ADMIN)
    # Now version 1 would not pass: going back to it must work all the same.
    rt.policies.put("gate", AUC_POLICY.replace("0.8", "0.92") % "deploy", actor=ADMIN)
    with pytest.raises(PolicyBlocked):
        rt.endpoints.deploy("e", model="m", version=1, actor=ADMIN)
    assert rt.plans.rollback("e", actor=ADMIN, reason="incident").version == 1


# -- API and CLI on a real server -----------------------------------------------------

POLICY_FILE = textwrap.dedent("""\
    description: production endpoints
    applies_to:
      endpoints: ["prod-*"]
    on: [deploy, rollout_start, promote]
    checks:
      - {id: auc-floor, type: metric, metric: auc, op: ">=", value: 0.8}
      - {type: artifact}
""")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = make_server(tmp_path_factory.mktemp("policies-e2e") / "home")
    proc.init()
    proc.start()
    yield proc
    proc.stop()


@pytest.mark.e2e
def test_policies_through_the_api_and_the_cli(server: ServerProcess, tmp_path: Path) -> None:
    path = tmp_path / "production.yaml"
    path.write_text(POLICY_FILE)
    put = server.cli("policy", "put", "production", str(path))
    assert "production" in put.stdout and "auc-floor" in put.stdout  # the record and YAML

    with server.client() as client:
        shown = client.get_policy("production")
        assert (shown["revision"], shown["source"]) == (1, POLICY_FILE)
        client.create_model("churn", owner="ml-team")
        version = client.register_version(
            "churn",
            artifact=_skops(7),
            flavor="sklearn",
            signature=SIGNATURE,
            example_rows=ROWS,
            lineage={"metrics": {"auc": 0.7}},
        )
        assert version["status"] == "ready", version

    check = server.cli("policy", "check", "churn", "1", "--endpoint", "prod-churn", check=False)
    assert check.returncode == 1, check.stdout + check.stderr
    assert "auc 0.7 < 0.8" in check.stdout and "blocked: 1 check(s) failed" in check.stdout
    with server.client() as client:
        report = client.check_policy("churn", 1, endpoint="prod-churn")
    assert report["allowed"] is False
    assert [c["status"] for c in report["policies"][0]["checks"]] == ["fail", "pass"]

    headers = {"Authorization": f"Bearer {server.token}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=60) as http:
        deploy = {"model": "churn", "version": 1}
        response = http.post("/api/v1/endpoints/prod-churn/deploy", json=deploy)
        assert response.status_code == 409, response.text
        error = response.json()["error"]
        assert error["code"] == "policy_blocked"
        assert error["details"] == [{"field": "production.auc-floor", "reason": "auc 0.7 < 0.8"}]

        cli_deploy = server.cli(
            "endpoint", "deploy", "prod-churn", "--model", "churn", "--version", "1", check=False
        )
        assert cli_deploy.returncode == 1
        assert "policy_blocked" in cli_deploy.stderr
        assert "production.auc-floor: auc 0.7 < 0.8" in cli_deploy.stderr

        evaluation = {"metrics": {"auc": 0.84}, "slices": {"region=eu": {"auc": 0.8}}}
        recorded = http.post("/api/v1/models/churn/versions/1/evaluations", json=evaluation)
        assert recorded.status_code in (200, 201), recorded.text
        assert server.cli("policy", "check", "churn", "1", "-e", "prod-churn").returncode == 0
        response = http.post("/api/v1/endpoints/prod-churn/deploy", json=deploy)
        assert response.status_code == 200, response.text

        bad = http.put("/api/v1/policies/production", json={"source": "checks: [oops"})
        assert bad.status_code == 422 and bad.json()["error"]["details"][0]["field"] == "source"
        missing = http.post(
            "/api/v1/policies/check",
            json={"model": "churn", "version": 9, "endpoint": "prod-churn"},
        )
        assert missing.status_code == 404

    listed = server.cli("policy", "list", "--json")
    assert [p["name"] for p in json.loads(listed.stdout)] == ["production"]
    with server.client() as client:
        client.delete_policy("production")
        assert client.list_policies() == []
