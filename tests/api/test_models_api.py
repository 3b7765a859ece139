"""/api/v1/models: create, list (with filters), show, update, retire; nothing hard-deleted."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from slipway import errors


@pytest.fixture(scope="module")
def http(shared_server: Any) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {shared_server.token}"}
    with httpx.Client(base_url=shared_server.url, headers=headers, timeout=120) as client:
        yield client


def _create(http: httpx.Client, name: str, **fields: Any) -> dict[str, Any]:
    response = http.post("/api/v1/models", json={"name": name, "owner": "team", **fields})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def _names(http: httpx.Client, **params: str) -> list[str]:
    response = http.get("/api/v1/models", params=params)
    assert response.status_code == 200, response.text
    return [m["name"] for m in response.json()["models"]]


def test_create_returns_the_model_with_defaults(http: httpx.Client) -> None:
    model = _create(http, "credit-risk", tags=["b", "a", "b"])
    assert model["name"] == "credit-risk"
    assert model["owner"] == "team"
    assert model["status"] == "active"
    assert model["risk_tier"] == "medium"
    assert model["tags"] == ["a", "b"]  # sorted, deduplicated
    assert model["created_by"] == "admin"
    assert model["id"] and model["created_at"] and model["updated_at"]
    for key in ("description", "oncall", "runbook_url", "intended_use", "limitations"):
        assert model[key] == ""


def test_create_keeps_every_inventory_field(http: httpx.Client) -> None:
    fields = {
        "owner": "fraud-team",
        "description": "flags card fraud",
        "oncall": "#fraud-oncall",
        "runbook_url": "https://runbooks.example/fraud",
        "risk_tier": "high",
        "intended_use": "score card transactions",
        "limitations": "EU cards only",
        "tags": ["fraud"],
    }
    created = http.post("/api/v1/models", json={"name": "fraud", **fields}).json()
    shown = http.get("/api/v1/models/fraud").json()
    for key, value in fields.items():
        assert created[key] == value
        assert shown[key] == value
    assert shown["versions"] == []


def test_list_and_filters(http: httpx.Client) -> None:
    _create(http, "churn-eu", owner="growth", tags=["churn", "eu"])
    _create(http, "churn-us", owner="growth", tags=["churn", "us"])
    _create(http, "pricing", owner="finance", tags=["eu"])
    every = _names(http)
    assert every == sorted(every)
    assert {"churn-eu", "churn-us", "pricing"} <= set(every)
    assert _names(http, name="churn") == ["churn-eu", "churn-us"]
    assert _names(http, tag="eu") == ["churn-eu", "pricing"]
    assert _names(http, owner="growth") == ["churn-eu", "churn-us"]
    assert _names(http, owner="growth", tag="us") == ["churn-us"]
    assert _names(http, owner="nobody") == []
    assert _names(http, status="active", name="pricing") == ["pricing"]
    assert _names(http, status="retired", name="pricing") == []


@pytest.mark.parametrize("pattern", ["%", "_", "churn%", "churn_eu"])
def test_name_filter_treats_sql_wildcards_literally(http: httpx.Client, pattern: str) -> None:
    _create(http, f"wild-{pattern.replace('%', 'p').replace('_', 'u')}")
    assert _names(http, name=pattern) == []


def test_update_changes_only_the_given_fields(http: httpx.Client) -> None:
    before = _create(http, "recsys", description="old", tags=["x"])
    time.sleep(0.01)
    response = http.patch(
        "/api/v1/models/recsys", json={"description": "new", "risk_tier": "low", "tags": ["y"]}
    )
    assert response.status_code == 200, response.text
    after = response.json()
    assert (after["description"], after["risk_tier"], after["tags"]) == ("new", "low", ["y"])
    assert after["owner"] == before["owner"]
    assert after["created_at"] == before["created_at"]
    assert after["updated_at"] > before["updated_at"]
    assert http.get("/api/v1/models/recsys").json()["description"] == "new"


def test_deprecate_then_filter_by_status(http: httpx.Client) -> None:
    _create(http, "old-ranker")
    response = http.patch("/api/v1/models/old-ranker", json={"status": "deprecated"})
    assert response.json()["status"] == "deprecated"
    assert _names(http, status="deprecated") == ["old-ranker"]
    assert "old-ranker" not in _names(http, status="active")


@pytest.mark.parametrize(
    ("case", "payload"),
    [
        ("tier", {"risk_tier": "huge"}),
        ("owner", {"owner": ""}),
        ("rename", {"name": "renamed"}),
        ("tags", {"tags": [""]}),
    ],
)
def test_invalid_update_is_refused(http: httpx.Client, case: str, payload: dict[str, Any]) -> None:
    _create(http, f"stable-{case}")
    response = http.patch(f"/api/v1/models/stable-{case}", json=payload)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "invalid_field"
    shown = http.get(f"/api/v1/models/stable-{case}").json()
    assert shown["risk_tier"] == "medium" and shown["owner"] == "team"


def test_retire_keeps_the_model_and_its_versions(
    http: httpx.Client, shared_server: Any, skops_artifact: dict[str, Any]
) -> None:
    _create(http, "to-retire")
    with shared_server.client() as client:
        version = client.register_version("to-retire", flavor="sklearn", **skops_artifact)
    assert version["status"] == "ready", version
    assert version["number"] == 1

    response = http.post("/api/v1/models/to-retire/retire")
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "retired"
    # Retiring again is a no-op, not an error.
    assert http.post("/api/v1/models/to-retire/retire").json()["status"] == "retired"

    # Nothing was deleted: the model, its versions and its artifact are all still there.
    shown = http.get("/api/v1/models/to-retire").json()
    assert shown["status"] == "retired"
    assert [v["number"] for v in shown["versions"]] == [1]
    assert http.get("/api/v1/models/to-retire/versions/1").status_code == 200
    assert "to-retire" in _names(http)
    assert _names(http, status="retired", name="to-retire") == ["to-retire"]
    assert http.delete("/api/v1/models/to-retire").status_code == 405

    # A retired model takes no new version...
    with shared_server.client() as client, pytest.raises(errors.Conflict, match="retired"):
        client.register_version("to-retire", flavor="sklearn", **skops_artifact)
    assert [v["number"] for v in http.get("/api/v1/models/to-retire").json()["versions"]] == [1]
    # ...and no edits.
    edit = http.patch("/api/v1/models/to-retire", json={"description": "x"})
    assert edit.status_code == 409, edit.text
    assert edit.json()["error"]["code"] == "conflict"


def test_versions_register_on_an_active_model(
    http: httpx.Client, shared_server: Any, skops_artifact: dict[str, Any]
) -> None:
    _create(http, "versioned")
    with shared_server.client() as client:
        first = client.register_version("versioned", flavor="sklearn", **skops_artifact)
        second = client.register_version("versioned", flavor="sklearn", **skops_artifact)
    assert (first["number"], second["number"]) == (1, 2)
    assert first["artifact_sha256"] == second["artifact_sha256"]
    shown = http.get("/api/v1/models/versioned").json()
    assert [(v["number"], v["status"]) for v in shown["versions"]] == [(1, "ready"), (2, "ready")]


def test_unknown_model_is_404_everywhere(http: httpx.Client) -> None:
    for method, path in [
        ("GET", "/api/v1/models/ghost"),
        ("PATCH", "/api/v1/models/ghost"),
        ("POST", "/api/v1/models/ghost/retire"),
    ]:
        response = http.request(method, path, json={} if method == "PATCH" else None)
        assert response.status_code == 404, (method, path, response.text)
        assert response.json()["error"]["code"] == "not_found"


def test_sdk_round_trip(shared_server: Any) -> None:
    with shared_server.client() as client:
        client.create_model("sdk-model", owner="sdk", tags=["sdk"])
        assert [m["name"] for m in client.list_models(tag="sdk")] == ["sdk-model"]
        assert client.update_model("sdk-model", oncall="me")["oncall"] == "me"
        assert client.retire_model("sdk-model")["status"] == "retired"
        assert client.get_model("sdk-model")["status"] == "retired"
        with pytest.raises(errors.NotFound):
            client.get_model("sdk-ghost")
        with pytest.raises(errors.Conflict):
            client.create_model("sdk-model", owner="sdk")
        with pytest.raises(errors.ValidationFailed):
            client.create_model("SDK Model", owner="sdk")
