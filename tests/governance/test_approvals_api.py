"""Evaluations and approvals at the edges: the HTTP routes, the SDK and the ``slipway
approval ...`` / ``slipway model evaluate|evaluations`` commands, on one real server.

The people: dana (developer and approver) registers ``credit``'s versions, so she may
decide on approvals in general but not on her own versions; avery (approver) decides;
vic (viewer) reads; sam reads another model only.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

import slipway
from slipway.errors import Forbidden
from tests.api.conftest import check_error_response
from tests.cli.expect import as_json, assert_clean_failure
from tests.conftest import ServerProcess, make_server

pytestmark = pytest.mark.e2e

MODEL = "credit"
PEOPLE: dict[str, list[tuple[str, str, str | None]]] = {
    "dana": [("developer", "global", None), ("approver", "global", None)],
    "avery": [("approver", "global", None)],
    "vic": [("viewer", "global", None)],
    "sam": [("viewer", "model", "elsewhere")],
}
EVALUATION = {
    "metrics": {"auc": 0.9, "accuracy": 0.85},
    "slices": {"eu": {"auc": 0.88}, "us": {"auc": 0.91}},
    "baseline": {"auc": 0.5, "accuracy": 0.6},
}


@dataclass
class World:
    server: ServerProcess
    tokens: dict[str, str]

    def cli(self, who: str, *args: str, check: bool = True) -> Any:
        """``slipway ...`` as ``who``."""
        return dataclasses.replace(self.server, token=self.tokens[who]).cli(*args, check=check)

    def client(self, who: str) -> slipway.Client:
        return slipway.Client(self.server.url, self.tokens[who])

    def http(self, who: str) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.tokens[who]}"}
        return httpx.Client(base_url=self.server.url, headers=headers, timeout=30)


def _fitted(C: float) -> tuple[Any, np.ndarray, np.ndarray]:
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(3)
    X = rng.normal(0, 1, (200, 2))
    y = np.where(X[:, 0] + X[:, 1] > 0, "yes", "no")
    return LogisticRegression(C=C).fit(X, y), X, y


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    server = make_server(tmp_path_factory.mktemp("approvals") / "home")
    server.init()
    server.start()
    try:
        tokens: dict[str, str] = {"admin": server.token}
        with server.client() as admin:
            admin.create_model(MODEL, owner="risk-team")
            admin.create_model("elsewhere", owner="risk-team")
            for name, grants in PEOPLE.items():
                admin.create_principal(name)
                for role, kind, scope in grants:
                    admin.create_grant(name, role, scope_kind=kind, scope_name=scope)
                tokens[name] = admin.create_token(name)["token"]
        w = World(server, tokens)
        # New tokens reach the server's token snapshot within its refresh interval (1 s).
        deadline = time.monotonic() + 10
        for name in PEOPLE:
            with w.http(name) as http:
                while http.get("/api/v1/approvals").status_code == 401:
                    assert time.monotonic() < deadline, f"token of {name} never resolved"
                    time.sleep(0.1)
        yield w
    finally:
        server.stop()


@pytest.fixture(scope="module")
def registered(world: World) -> dict[str, Any]:
    """Version 1 of ``credit``, registered by dana with held-out data and an evaluation
    record."""
    model, X, y = _fitted(1.0)
    with world.client("dana") as dana:
        version = dana.register(
            model,
            name=MODEL,
            X_train=X,
            y_train=y,
            X_eval=X[:50],
            y_eval=y[:50],
            evaluation=EVALUATION,
        )
    assert version["status"] == "ready", version
    return version


def test_register_records_the_evaluation_as_the_evidence(
    world: World, registered: dict[str, Any]
) -> None:
    recorded = registered["evaluation"]
    assert recorded["metrics"] == EVALUATION["metrics"]
    assert recorded["slices"] == EVALUATION["slices"] and recorded["created_by"] == "dana"
    # Its dataset is the fingerprint of the evaluation data given to register().
    assert recorded["dataset"]["rows"] == 50
    assert recorded["dataset"] == registered["lineage"]["evaluation_data"]
    with world.client("vic") as vic:
        evidence = vic.get_evaluations(MODEL, registered["number"])
    assert evidence["current"] == recorded
    assert evidence["history"] == [recorded]


def test_request_approve_and_go_stale_through_the_cli(
    world: World, registered: dict[str, Any], tmp_path: Path
) -> None:
    number = str(registered["number"])
    requested = as_json(
        world.cli("dana", "approval", "request", MODEL, number, "--note", "for pricing", "--json")
    )
    approval_id = requested["id"]
    assert (requested["state"], requested["requested_by"]) == ("pending", "dana")
    assert requested["binding"]["evaluation_digest"] == registered["evaluation"]["digest"]

    # The queue, as the approver sees it.
    queue = as_json(world.cli("avery", "approval", "list", "--state", "pending", "--json"))
    assert [(a["id"], a["valid"]) for a in queue] == [(approval_id, False)]
    table = world.cli("avery", "approval", "list", "--state", "pending").stdout
    assert approval_id in table and "pending" in table and "dana" in table

    # Dana may decide on approvals, but not on her own version's.
    with world.http("dana") as http:
        answer = http.post(f"/api/v1/approvals/{approval_id}/approve", json={"rationale": "mine"})
    body = check_error_response(answer, 403, "forbidden")
    assert "separation of duties" in body["error"]["message"]
    refused = world.cli(
        "dana", "approval", "approve", approval_id, "--rationale", "mine", check=False
    )
    assert "separation of duties" in assert_clean_failure(refused, "forbidden")
    # A viewer may not decide at all.
    with world.http("vic") as http:
        answer = http.post(f"/api/v1/approvals/{approval_id}/approve", json={"rationale": "ok"})
    assert (
        "lacks approval:decide"
        in check_error_response(answer, 403, "forbidden")["error"]["message"]
    )

    # The rationale is required, by the CLI and by the server.
    missing = world.cli("avery", "approval", "approve", approval_id, check=False)
    assert missing.returncode != 0 and "--rationale" in missing.stderr
    empty = world.cli("avery", "approval", "approve", approval_id, "--rationale", "", check=False)
    assert "rationale" in assert_clean_failure(empty, "invalid_field")

    approved = as_json(
        world.cli(
            "avery",
            "approval",
            "approve",
            approval_id,
            "--rationale",
            "AUC 0.9 on every region",
            "--json",
        )
    )
    assert (approved["state"], approved["decided_by"], approved["valid"]) == (
        "approved",
        "avery",
        True,
    )
    assert approved["decider_roles"] == ["approver"]
    again = world.cli("avery", "approval", "reject", approval_id, "--rationale", "x", check=False)
    assert "already approved" in assert_clean_failure(again, "conflict")

    assert as_json(world.cli("avery", "approval", "list", "--state", "pending", "--json")) == []
    shown = as_json(world.cli("vic", "approval", "show", approval_id, "--json"))
    assert (shown["state"], shown["valid"], shown["stale_because"]) == ("approved", True, [])

    # New evidence: the approval no longer counts.
    evaluation = tmp_path / "eval.yaml"
    evaluation.write_text(
        "metrics: {auc: 0.87, accuracy: 0.84}\n"
        "slices:\n  eu: {auc: 0.8}\n"
        "baseline: {auc: 0.5}\n"
        "evaluated_at: 2024-06-01T12:00:00Z\n"
        f"dataset: {{sha256: {'b' * 64}, rows: 1000, columns: [x0, x1]}}\n"
    )
    printed = world.cli("dana", "model", "evaluate", MODEL, number, str(evaluation)).stdout
    assert "0.87" in printed and "eu" in printed and "(baseline)" in printed

    listed = world.cli("avery", "approval", "list", "--model", MODEL).stdout
    assert "stale: evaluation record changed" in listed
    (stale,) = as_json(world.cli("avery", "approval", "list", "--model", MODEL, "--json"))
    assert (stale["id"], stale["state"], stale["valid"]) == (approval_id, "approved", False)
    assert stale["stale_because"] == ["evaluation record changed"]

    evidence = as_json(world.cli("vic", "model", "evaluations", MODEL, number, "--json"))
    assert evidence["current"]["metrics"] == {"auc": 0.87, "accuracy": 0.84}
    assert evidence["current"]["evaluated_at"] == "2024-06-01T12:00:00+00:00"
    assert evidence["current"]["dataset"]["rows"] == 1000
    assert [r["digest"] for r in evidence["history"]] == [
        evidence["current"]["digest"],
        registered["evaluation"]["digest"],
    ]
    assert "recorded evaluations" in world.cli("vic", "model", "evaluations", MODEL, number).stdout

    with world.server.client() as admin:
        (event,) = admin.audit_events(action="approval.approve")
    assert (event["actor"], event["reason"]) == ("avery", "AUC 0.9 on every region")


def test_reject_through_the_sdk_and_scoped_readers(
    world: World, registered: dict[str, Any]
) -> None:
    # A second version, so this test does not depend on the approval above.
    model, X, y = _fitted(0.1)
    with world.client("dana") as dana:
        v2 = dana.register(model, name=MODEL, X_train=X, y_train=y)["number"]
        requested = dana.request_approval(MODEL, v2, note="smaller C")
    with world.client("avery") as avery:
        rejected = avery.reject(requested["id"], rationale="no evaluation on held-out data")
        assert avery.list_approvals(model=MODEL, version=v2) == [rejected]
    assert (rejected["state"], rejected["valid"]) == ("rejected", False)
    assert rejected["rationale"] == "no evaluation on held-out data"

    # sam reads another model only: the queue hides credit's approvals, and one by id is
    # refused.
    with world.client("sam") as sam:
        assert sam.list_approvals() == []
        with pytest.raises(Forbidden):
            sam.get_approval(requested["id"])
    with world.client("vic") as vic:
        assert vic.get_approval(requested["id"]) == rejected
        assert {a["id"] for a in vic.list_approvals(model=MODEL)} >= {requested["id"]}


def test_bad_input_names_the_field(world: World, registered: dict[str, Any]) -> None:
    base = f"/api/v1/models/{MODEL}/versions/{registered['number']}"
    with world.http("dana") as http:
        cases = [
            ({"metrics": {}}, "metrics"),
            ({"metrics": {"auc": "high"}}, "metrics.auc"),
            ({"metrics": {"auc": 0.9}, "slices": {"eu": {}}}, "slices.eu"),
            ({"metrics": {"auc": 0.9}, "evaluated_at": "2024-06-01T12:00:00"}, "evaluated_at"),
            ({"metrics": {"auc": 0.9}, "dataset": {"sha256": "x", "rows": 1}}, "dataset.sha256"),
            ({"metrics": {"auc": 0.9}, "surprise": 1}, "surprise"),
        ]
        for body, field in cases:
            answer = http.post(f"{base}/evaluations", json=body)
            error = check_error_response(answer, 422, "invalid_field")["error"]
            assert error["details"][0]["field"] == field, (body, error)
        answer = http.post(f"{base}/approvals", json={"note": 5})
        assert (
            check_error_response(answer, 422, "invalid_field")["error"]["details"][0]["field"]
            == "note"
        )
        check_error_response(
            http.post(f"/api/v1/models/{MODEL}/versions/99/approvals"), 404, "not_found"
        )
        check_error_response(
            http.get("/api/v1/approvals", params={"state": "maybe"}), 422, "invalid_field"
        )
        check_error_response(http.get(f"/api/v1/approvals/{'0' * 32}"), 404, "not_found")
    with world.http("avery") as http:
        for body in (None, {}, {"rationale": ""}):
            answer = http.post(f"/api/v1/approvals/{'0' * 32}/approve", json=body)
            error = check_error_response(answer, 422, "invalid_field")["error"]
            assert error["details"][0]["field"] == "rationale", (body, error)
        answer = http.post(f"/api/v1/approvals/{'0' * 32}/reject", json={"rationale": "why"})
        check_error_response(answer, 404, "not_found")
    bad_file = world.cli("dana", "model", "evaluate", MODEL, "1", "/nonexistent.yaml", check=False)
    assert "cannot read" in assert_clean_failure(bad_file, "bad_request")


def test_only_an_admin_may_lower_a_risk_tier(world: World) -> None:
    """Fewer approvals and shorter retention follow a lower tier: a developer may raise a
    model's tier but not lower it, nor create a model below the default tier."""
    with world.http("dana") as dana:
        low = dana.post(
            "/api/v1/models", json={"name": "tiers-low", "owner": "x", "risk_tier": "low"}
        )
        check_error_response(low, 403, "forbidden")
        assert "policy:manage" in low.json()["error"]["message"]
        created = dana.post("/api/v1/models", json={"name": "tiers", "owner": "x"})
        assert created.status_code == 201, created.text
        raised = dana.patch("/api/v1/models/tiers", json={"risk_tier": "high"})
        assert raised.status_code == 200 and raised.json()["risk_tier"] == "high"
        lowered = dana.patch("/api/v1/models/tiers", json={"risk_tier": "medium"})
        check_error_response(lowered, 403, "forbidden")
        same = dana.patch("/api/v1/models/tiers", json={"risk_tier": "high", "oncall": "x"})
        assert same.status_code == 200, same.text
    with world.http("admin") as admin:
        assert admin.patch("/api/v1/models/tiers", json={"risk_tier": "low"}).status_code == 200
