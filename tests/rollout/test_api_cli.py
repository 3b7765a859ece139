"""Controlled rollout at the edges: the shadow report on stored windows, then the HTTP
routes, the SDK and the ``slipway endpoint|rollout`` commands against one real server.

The server's model ``churn`` has three ready versions (classifiers of "no"/"yes"); each
test deploys it on an endpoint of its own, so the tests do not depend on each other.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from sqlalchemy import Engine, insert

from slipway.ids import new_id
from slipway.monitoring.profile import Profile
from slipway.monitoring.windows import Window, WindowStore
from slipway.rollout.shadow import shadow_report
from slipway.serving.endpoints import Endpoint
from slipway.store.tables import monitor_windows
from tests.cli.expect import as_json, assert_clean_failure
from tests.conftest import ServerProcess, make_server

T0 = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


# -- shadow_report on stored windows ----------------------------------------------------------
def window(
    predictions: np.ndarray | None,
    *,
    kind: str = "categorical",
    errors: int = 0,
    latency_ms: float = 10.0,
    agreement: dict[int, list[int]] | None = None,
) -> Window:
    """One request per predicted row (plus ``errors`` failed ones), latencies spread
    ±10% around ``latency_ms``."""
    n = 0 if predictions is None else len(predictions)
    w = Window(Profile.empty({}, prediction=kind if predictions is not None else None))
    if predictions is not None:
        w.profile.update({}, predictions=predictions)
    rng = np.random.default_rng(n)
    w.latency.update(latency_ms * rng.uniform(0.9, 1.1, n + errors))
    w.requests, w.rows, w.errors = n + errors, n, errors
    w.agreement = agreement or {}
    return w


def store(engine: Engine, version: int, at: datetime, w: Window, *, shadow: bool) -> None:
    with engine.begin() as conn:
        conn.execute(
            insert(monitor_windows).values(
                id=new_id(),
                endpoint="churn",
                version=version,
                version_id=f"v{version}",
                granularity="minute",
                bucket_start=at,
                data=w.to_dict(),
                created_at=at,
                shadow=shadow,
            )
        )


def endpoint(shadows: tuple[int, ...], version: int = 3) -> Endpoint:
    return Endpoint(
        name="churn",
        model="churn",
        version=version,
        version_id=f"v{version}",
        previous_version=None,
        generation=1,
        contract_mode="reject",
        latency_slo_ms=None,
        created_by="admin",
        created_at=T0,
        updated_at=T0,
        shadow_versions=shadows,
    )


def classes(n: int, yes: float) -> np.ndarray:
    return np.where(np.arange(n) < round(yes * n), "yes", "no")


def test_shadow_report_puts_each_shadow_beside_the_primary(engine: Engine) -> None:
    store(engine, 3, T0, window(classes(1000, 0.3), latency_ms=10), shadow=False)
    # v4 answered copies in two buckets, compared with the primary and with a canary (7).
    store(engine, 4, T0, window(classes(600, 0.3), agreement={3: [600, 570]}), shadow=True)
    later = window(classes(400, 0.3), errors=10, latency_ms=30, agreement={7: [400, 380]})
    store(engine, 4, T0 + timedelta(minutes=1), later, shadow=True)
    # v6 answered copies in the range but is no shadow any more; v5 is one, but silent.
    store(engine, 6, T0, window(classes(300, 0.9)), shadow=True)
    # Outside the range: left out.
    store(engine, 8, T0 - timedelta(hours=2), window(classes(300, 0.3)), shadow=True)

    report = shadow_report(WindowStore(engine), endpoint((4, 5)), T0, T0 + timedelta(hours=1))

    assert report["endpoint"] == "churn" and report["window_start"] == T0.isoformat()
    primary = report["primary"]
    assert (primary["version"], primary["requests"], primary["error_rate"]) == (3, 1000, 0.0)
    assert 9 <= primary["latency_p50_ms"] <= 11 and primary["latency_p99_ms"] <= 11.1
    v4, v5, v6 = report["shadows"]
    assert (v4["version"], v4["requests"], v4["errors"]) == (4, 1010, 10)
    assert v4["error_rate"] == pytest.approx(10 / 1010)
    assert v4["latency_p99_ms"] > 25  # the slow bucket shows in the tail
    assert (v4["compared"], v4["agreement"]) == (1000, pytest.approx(0.95))
    assert v4["output_shift"]["statistic"] == "js_distance"
    assert v4["output_shift"]["verdict"] == "ok" and v4["output_shift"]["score"] < 0.05
    assert v5 == {
        "version": 5,
        "requests": 0,
        "errors": 0,
        "error_rate": None,
        "latency_p50_ms": None,
        "latency_p99_ms": None,
        "agreement": None,
        "compared": 0,
        "output_shift": None,
    }
    assert v6["version"] == 6 and v6["output_shift"]["verdict"] == "insufficient"
    assert v6["output_shift"]["score"] > 0.4  # 90% "yes" against 30%: far apart
    json.dumps(report, allow_nan=False)


def test_shadow_report_without_comparable_predictions_is_still_json(engine: Engine) -> None:
    # A constant numeric primary and a different constant shadow: an infinite shift.
    store(engine, 3, T0, window(np.full(600, 1.0), kind="numeric"), shadow=False)
    store(engine, 4, T0, window(np.full(600, 2.0), kind="numeric"), shadow=True)
    # Classes against numbers: not comparable, so no shift rather than an error.
    store(engine, 5, T0, window(classes(600, 0.5)), shadow=True)
    # Every copy failed: no predictions at all.
    store(engine, 6, T0, window(None, errors=20), shadow=True)

    report = shadow_report(WindowStore(engine), endpoint(()), T0, T0 + timedelta(minutes=5))

    v4, v5, v6 = report["shadows"]
    assert v4["output_shift"] == {
        "statistic": "wasserstein_norm",
        "score": None,
        "verdict": "drift",
    }
    assert v5["output_shift"] is None
    assert (v6["requests"], v6["error_rate"], v6["output_shift"]) == (20, 1.0, None)
    json.dumps(report, allow_nan=False)


# -- against a real server ----------------------------------------------------------------
ROWS = [{"x0": float(a), "x1": float(b)} for a, b in np.random.default_rng(2).normal(0, 1, (50, 2))]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server for the module; its rollout controller ticks every 0.3 s."""
    proc = make_server(
        tmp_path_factory.mktemp("rollout") / "home", SLIPWAY_ROLLOUT_INTERVAL_S="0.3"
    )
    proc.init()
    proc.start()
    try:
        # Each registration smoke-tests its model in a sandbox process (seconds), so
        # the three run at once; which C gets which number does not matter here.
        with proc.client() as c, ThreadPoolExecutor(3) as pool:
            c.create_model("churn", owner="ml")
            list(pool.map(lambda C: register(c, C), (1.0, 0.1, 0.01)))
        yield proc
    finally:
        proc.stop()


def register(c: Any, C: float) -> None:
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(1)
    X = pd.DataFrame({"x0": rng.normal(0, 1, 300), "x1": rng.normal(0, 1, 300)})
    y = np.where(X["x0"] + X["x1"] + rng.normal(0, 0.5, 300) > 0, "yes", "no")
    model = LogisticRegression(C=C).fit(X.to_numpy(), y)
    version = c.register(model, name="churn", X_train=X, y_train=y)
    assert version["status"] == "ready", version


@pytest.fixture
def deployed(server: ServerProcess, request: pytest.FixtureRequest) -> str:
    """An endpoint of this test's own serving ``churn`` v1."""
    name: str = request.node.name.removeprefix("test_").replace("_", "-")[:60]
    with server.client() as c:
        c.deploy(name, model="churn", version=1)
    return name


def http(server: ServerProcess, token: str | None = None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token or server.token}"}
    return httpx.Client(base_url=server.url, headers=headers, timeout=30)


def wait_for(check: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.1)


def test_traffic_plan_set_and_shown(server: ServerProcess, deployed: str) -> None:
    cli = server.cli
    set_ = as_json(
        cli(
            *("endpoint", "traffic", deployed, "--canary", "2", "--weight", "30"),
            *("--shadow", "3", "--sticky", "--reason", "try v2", "--json"),
        )
    )
    assert set_["traffic"] == {
        "primary": 1,
        "canary": 2,
        "canary_weight": 30.0,
        "routing": "sticky",
        "shadows": [3],
    }
    shown = cli("endpoint", "show", deployed).stdout
    assert "v2 at 30% (sticky)" in shown and "v3" in shown and "stopped" in shown

    # Sticky: one routing key meets one version, every time.
    with http(server) as h:
        answers = {
            h.post(
                f"/v1/endpoints/{deployed}/predict",
                json={"inputs": ROWS[:1]},
                headers={"X-Slipway-Routing-Key": "customer-7"},
            ).json()["version"]
            for _ in range(5)
        }
    assert len(answers) == 1 and answers <= {1, 2}

    # The plan given replaces the plan: no --canary, no canary.
    cleared = as_json(cli("endpoint", "traffic", deployed, "--json"))["traffic"]
    assert (cleared["canary"], cleared["canary_weight"], cleared["shadows"]) == (None, 0.0, [])
    lonely = cli("endpoint", "traffic", deployed, "--weight", "5", check=False)
    assert "--weight" in assert_clean_failure(lonely, "invalid_field")


def test_stop_refuses_then_resume_answers(server: ServerProcess, deployed: str) -> None:
    stopped = as_json(server.cli("endpoint", "stop", deployed, "--reason", "bad scores", "--json"))
    assert stopped["stopped"] and stopped["stop_reason"] == "bad scores"
    assert "answers 503: bad scores" in server.cli("endpoint", "show", deployed).stdout
    with http(server) as h:
        refused = h.post(f"/v1/endpoints/{deployed}/predict", json={"inputs": ROWS[:2]})
        assert refused.status_code == 503, refused.text
        assert refused.json()["error"]["code"] == "endpoint_stopped"

        resumed = as_json(server.cli("endpoint", "resume", deployed, "--json"))
        assert not resumed["stopped"] and resumed["stopped_at"] is None
        answered = h.post(f"/v1/endpoints/{deployed}/predict", json={"inputs": ROWS[:2]})
        assert answered.status_code == 200 and answered.json()["version"] == 1

        again = h.post(f"/api/v1/endpoints/{deployed}/resume")  # no body: no reason
        assert again.status_code == 409 and "not stopped" in again.json()["error"]["message"]
        blank = h.post(f"/api/v1/endpoints/{deployed}/stop", json={"reason": " "})
        assert blank.status_code == 422 and blank.json()["error"]["details"][0]["field"] == "reason"


def test_stop_with_a_fallback_answers_with_it(server: ServerProcess, deployed: str) -> None:
    with server.client() as c:
        c.deploy(deployed, model="churn", version=2)
        stopped = c.stop_endpoint(deployed, reason="v2 misbehaves", fallback_version=3)
        assert stopped["fallback_version"] == 3
        assert c.predict(deployed, ROWS[:3])["version"] == 3
        resumed = c.resume_endpoint(deployed)
        assert (resumed["stopped"], resumed["fallback_version"]) == (False, None)
        assert c.predict(deployed, ROWS[:3])["version"] == 2


def test_rollback_to_the_previous_version(server: ServerProcess, deployed: str) -> None:
    with server.client() as c:
        c.deploy(deployed, model="churn", version=2)
    back = as_json(server.cli("endpoint", "rollback", deployed, "--reason", "v2 slow", "--json"))
    assert (back["version"], back["previous_version"], back["serving_version"]) == (1, 2, 1)
    with server.client() as c:
        assert c.predict(deployed, ROWS[:1])["version"] == 1
        events = c.audit_events(target=deployed, action="endpoint.rollback")
    assert events and events[-1]["reason"] == "v2 slow"


def test_shadow_report_through_the_api_and_cli(server: ServerProcess, deployed: str) -> None:
    with server.client() as c:
        c.set_traffic(deployed, shadows=[2])
        for row in ROWS[:20]:
            assert c.predict(deployed, [row])["version"] == 1  # shadows are never returned

        def shadowed() -> dict[str, Any] | None:
            report = c.shadow_report(deployed, window=3600)
            return report if report["shadows"][0]["requests"] == 20 else None

        report = wait_for(shadowed)
    assert report, "the shadow's copies were not counted"
    assert report["primary"]["version"] == 1 and report["primary"]["requests"] == 20
    [shadow] = report["shadows"]
    assert (shadow["version"], shadow["errors"], shadow["compared"]) == (2, 0, 20)
    assert shadow["agreement"] > 0.8
    assert shadow["output_shift"]["verdict"] == "insufficient"  # 20 rows: too few to judge

    text = server.cli("endpoint", "shadow-report", deployed, "--window", "1h").stdout
    assert "shadows" in text and "js_distance" in text
    bad = server.cli("endpoint", "shadow-report", deployed, "--window", "soon", check=False)
    assert "--window" in assert_clean_failure(bad, "invalid_field")


def test_templates_put_show_list_delete(server: ServerProcess, tmp_path: Path) -> None:
    cli = server.cli
    spec = tmp_path / "slow-ok.yaml"
    spec.write_text("description: latency may double\nchecks:\n  latency_p99:\n    threshold: 2\n")
    put = as_json(cli("rollout", "template", "put", "slow-ok", str(spec), "--json"))
    assert put["checks"]["latency_p99"]["threshold"] == 2.0
    assert put["checks"]["error_rate"]["threshold"] == 0.01  # the rest from default
    shown = cli("rollout", "template", "show", "slow-ok").stdout
    assert "latency may double" in shown and "output_shift" in shown
    with server.client() as c:
        names = [t["name"] for t in c.list_templates()]
    assert names[0] == "default" and "slow-ok" in names

    bad = tmp_path / "bad.yaml"
    bad.write_text("checks:\n  error_rate:\n    threshold: 3\n")
    refused = cli("rollout", "template", "put", "strict", str(bad), check=False)
    assert "checks.error_rate.threshold" in assert_clean_failure(refused, "invalid_field")
    assert "deleted template slow-ok" in cli("rollout", "template", "delete", "slow-ok").stdout
    with http(server) as h:
        read_only = h.put("/api/v1/analysis-templates/default", json={"inconclusive_wait": 2})
        assert read_only.status_code == 409, read_only.text
        assert h.get("/api/v1/analysis-templates/slow-ok").status_code == 404
        undeletable = h.delete("/api/v1/analysis-templates/default")
        assert undeletable.status_code == 409, undeletable.text


def test_rollout_start_status_pause_resume_abort(server: ServerProcess, deployed: str) -> None:
    cli = server.cli
    started = as_json(
        cli(
            *("rollout", "start", deployed, "--version", "2", "--steps", "10,50,100"),
            *("--step-duration", "10m", "--threshold", "latency_p99.threshold=2"),
            *("--threshold", "inconclusive_wait=3", "--sticky", "--reason", "v2", "--json"),
        )
    )
    assert (started["from_version"], started["to_version"]) == (1, 2)
    assert (started["steps"], started["step_duration_s"]) == ([10.0, 50.0, 100.0], 600.0)
    assert started["analysis"]["checks"]["latency_p99"]["threshold"] == 2.0
    assert started["analysis"]["inconclusive_wait"] == 3.0 and started["routing"] == "sticky"

    with server.client() as c:

        def noted() -> dict[str, Any] | None:
            data = c.get_rollout(deployed)
            return data if data["state"] == "running" and data["last_analysis"] else None

        running = wait_for(noted)
        analysis = c.rollout_analysis(deployed)
    assert running and (running["step"], running["weight"]) == (0, 10.0)
    assert analysis["rollout"] == started["id"] and analysis["verdict"] == "inconclusive"
    assert {c["name"] for c in analysis["checks"]} >= {"error_rate", "latency_p99"}
    status = cli("rollout", "status", deployed).stdout
    assert "1/3" in status and "10m" in status and "last analysis: inconclusive" in status
    assert "error_rate" in status and "too few requests" in status
    assert "analysis: inconclusive" in cli("rollout", "analysis", deployed).stdout

    with http(server) as h:
        busy = h.put(f"/api/v1/endpoints/{deployed}/traffic", json={"canary": 3, "weight": 5})
    assert busy.status_code == 409 and "under rollout" in busy.json()["error"]["message"]

    paused = cli("rollout", "pause", deployed, "--reason", "look first").stdout
    assert f"paused rollout {started['id']}" in paused and "paused" in paused
    assert "resumed" in cli("rollout", "resume", deployed).stdout
    aborted = as_json(cli("rollout", "abort", deployed, "--reason", "enough", "--json"))
    assert (aborted["state"], aborted["weight"], aborted["decision"]) == ("aborted", 0.0, "enough")
    with server.client() as c:
        traffic = c.get_endpoint(deployed)["traffic"]
    assert (traffic["primary"], traffic["canary"]) == (1, None)

    with server.client() as c:
        listed = c.list_rollouts(deployed, state="aborted")
    assert [r["id"] for r in listed] == [started["id"]]
    assert started["id"] in cli("rollout", "list", "--state", "aborted").stdout
    with http(server) as h:
        none = h.post(f"/api/v1/endpoints/{deployed}/rollout/pause")
    assert none.status_code == 409 and "no rollout under way" in none.json()["error"]["message"]


def test_rollout_promote_through_the_sdk(server: ServerProcess, deployed: str) -> None:
    with server.client() as c:
        started = c.start_rollout(deployed, version=3, steps=[50, 100])
        promoted = c.rollout_action(deployed, "promote", reason="looks fine")
        assert (promoted["id"], promoted["state"]) == (started["id"], "promoted")
        assert c.get_rollout(deployed)["state"] == "promoted"
        shown = c.get_endpoint(deployed)
        assert (shown["version"], shown["previous_version"]) == (3, 1)
        assert c.predict(deployed, ROWS[:1])["version"] == 3
        assert [r["id"] for r in c.list_rollouts(deployed)] == [started["id"]]


def test_validation_errors_name_the_field(server: ServerProcess, deployed: str) -> None:
    base = f"/api/v1/endpoints/{deployed}"
    with http(server) as h:
        cases = [
            ("PUT", "/traffic", {"canary": 2, "weight": 150}, "weight"),
            ("PUT", "/traffic", {"shadows": [2], "colour": "red"}, "colour"),
            ("PUT", "/traffic", {"routing": "round-robin"}, "routing"),
            ("PUT", "/traffic", {"shadows": [1, 2, 3, 4, 5, 6]}, "shadows"),
            ("PUT", "/traffic", {"canary": 9, "weight": 5}, "canary"),
            ("PUT", "/traffic", {"shadows": [1]}, "shadows[0]"),
            ("POST", "/stop", {"reason": ""}, "reason"),
            ("POST", "/stop", {"reason": "x", "fallback_version": 0}, "fallback_version"),
            ("POST", "/rollout", {"version": 2, "step_duration_s": 0}, "step_duration_s"),
            ("POST", "/rollout", {"version": 2, "steps": [50, 25]}, "steps[1]"),
            ("POST", "/rollout", {"version": 2, "thresholds": {"nope": 1}}, "nope"),
        ]
        for method, path, body, field in cases:
            answer = h.request(method, base + path, json=body)
            assert answer.status_code == 422, (path, body, answer.text)
            fields = [d["field"] for d in answer.json()["error"]["details"]]
            assert field in fields, (path, body, fields)
        assert h.get(f"{base}/shadow-report", params={"window": "1h"}).status_code == 422
        assert h.get(f"{base}/rollouts", params={"state": "done"}).status_code == 422
        assert h.get(f"{base}/rollout").json()["error"]["code"] == "not_found"
        assert h.get("/api/v1/endpoints/nowhere/rollout/analysis").status_code == 404
    bad_cli = server.cli(
        "rollout", "start", deployed, "--version", "2", "--step-duration", "soon", check=False
    )
    assert "--step-duration" in assert_clean_failure(bad_cli, "invalid_field")
    bad_threshold = server.cli(
        "rollout", "start", deployed, "--version", "2", "--threshold", "latency_p99", check=False
    )
    assert "--threshold" in assert_clean_failure(bad_threshold, "invalid_field")


def test_a_viewer_reads_but_cannot_change_the_plan(server: ServerProcess, deployed: str) -> None:
    with server.client() as c:
        c.create_principal("vera")
        c.create_grant("vera", "viewer")
        token = c.create_token("vera")["token"]
    base = f"/api/v1/endpoints/{deployed}"
    with http(server, token) as h:
        writes = [
            ("PUT", f"{base}/traffic", {"shadows": [2]}),
            ("POST", f"{base}/stop", {"reason": "mine now"}),
            ("POST", f"{base}/rollout", {"version": 2}),
            ("PUT", "/api/v1/analysis-templates/lax", {"inconclusive_wait": 0}),
        ]
        for method, path, body in writes:
            answer = h.request(method, path, json=body)
            assert answer.status_code == 403, (path, answer.text)
            assert answer.json()["error"]["code"] == "forbidden"
        assert h.get(f"{base}/shadow-report").status_code == 200
        assert h.get("/api/v1/analysis-templates/default").status_code == 200
    with server.client() as c:
        assert not c.get_endpoint(deployed)["stopped"]
