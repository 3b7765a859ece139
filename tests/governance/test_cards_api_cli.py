"""Model cards, the ML Test Score, reviews and the inventory over HTTP and through the
CLI, on one real server."""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from slipway.api.app import create_app
from slipway.errors import NotFound, ValidationFailed
from slipway.settings import Settings
from tests.api.conftest import check_error_response
from tests.cli.expect import as_json, assert_clean_failure
from tests.conftest import ServerProcess

pytestmark = pytest.mark.e2e

MODEL, OTHER, ENDPOINT = "card-m", "card-other", "card-e"
HOSTILE = "<script>alert(1)</script>"
SIGNATURE = {"inputs": [{"name": "x0", "type": "float"}, {"name": "x1", "type": "float"}]}
CONTRACT = {
    "inputs": [
        {"name": "x0", "type": "float", "min": -10, "max": 10},
        {"name": "x1", "type": "float", "pii": True},
    ]
}
ROWS = [{"x0": 0.0, "x1": 0.5}, {"x0": 1.0, "x1": 1.0}]
EVALUATION = {
    "metrics": {"accuracy": 0.9125, "f1": 0.8871},
    "slices": {"segment=new": {"accuracy": 0.8734}},
    "baseline": {"accuracy": 0.5},
}
EVIDENCE = "https://wiki.example.org/ml/card-m/feature-review"


def _artifact(tmp: Path) -> bytes:
    import numpy as np
    import skops.io
    from sklearn.linear_model import LogisticRegression

    X = np.array([[0.0, 0.0], [1.0, 1.0], [0.0, 1.0], [1.0, 0.0]] * 5)
    y = np.array(["no", "yes", "no", "yes"] * 5)
    path = tmp / "model.skops"
    skops.io.dump(LogisticRegression().fit(X, y), path)
    return path.read_bytes()


@pytest.fixture(scope="module")
def world(
    shared_server: ServerProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """``card-m`` v1 (with a contract and an evaluation record) serving on ``card-e``;
    ``card-other`` registered nowhere."""
    tmp = tmp_path_factory.mktemp("cards")
    with shared_server.client() as client:
        client.create_model(
            MODEL,
            owner="growth",
            risk_tier="high",
            description=HOSTILE,
            intended_use="Score sign-ups.",
        )
        client.create_model(OTHER, owner="finance", risk_tier="low")
        version = client.register_version(
            MODEL,
            artifact=_artifact(tmp),
            flavor="sklearn",
            signature=SIGNATURE,
            example_rows=ROWS,
            contract=CONTRACT,
        )
        assert version["status"] == "ready", version
        client.record_evaluation(MODEL, 1, **EVALUATION)
        client.deploy(ENDPOINT, model=MODEL, version=1)
    yield shared_server


def test_the_card_in_three_formats(world: ServerProcess, tmp_path: Path) -> None:
    with world.client() as client:
        card = client.model_card(MODEL, 1)
        stored = client.get_evaluations(MODEL, 1)["current"]
        markdown = client.model_card_text(MODEL, 1, format="markdown")
        page = client.model_card_text(MODEL, 1, format="html")
    for key in ("metrics", "slices", "baseline", "digest", "evaluated_at"):
        assert card["evaluation"][key] == stored[key], key
    assert card["evaluation"]["metrics"] == EVALUATION["metrics"]
    assert card["contract"]["inputs"][1]["pii"] is True
    assert [(d["endpoint"], d["role"]) for d in card["deployed"]] == [(ENDPOINT, "primary")]
    assert "## Evaluation" in markdown and "| accuracy | 0.9125 | 0.5 |" in markdown
    assert page.startswith("<!doctype html>") and "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page

    with httpx.Client(base_url=world.url, headers={"Authorization": f"Bearer {world.token}"}) as h:
        response = h.get(f"/api/v1/models/{MODEL}/versions/1/card", params={"format": "html"})
        assert response.headers["content-type"].startswith("text/html")
        response = h.get(f"/api/v1/models/{MODEL}/versions/1/card", params={"format": "markdown"})
        assert response.headers["content-type"].startswith("text/markdown")
        check_error_response(
            h.get(f"/api/v1/models/{MODEL}/versions/1/card", params={"format": "pdf"}),
            422,
            "invalid_field",
        )
        check_error_response(h.get(f"/api/v1/models/{MODEL}/versions/7/card"), 404, "not_found")

    cli = world.cli
    assert cli("model", "card", MODEL, "1").stdout.startswith(f"# Model card: {MODEL} v1")
    target = tmp_path / "card.html"
    cli("model", "card", MODEL, "1", "--format", "html", "--output", str(target))
    assert target.read_text().startswith("<!doctype html>")
    as_data = as_json(cli("model", "card", MODEL, "1", "--format", "json"))
    assert as_data["evaluation"]["metrics"] == EVALUATION["metrics"]
    assert_clean_failure(
        cli("model", "card", MODEL, "1", "--format", "pdf", check=False), "bad_request"
    )


def test_nobody_can_write_a_card() -> None:
    app = create_app(Settings({"home": "/nonexistent-unused"}, environ={}))
    methods = {
        method
        for path, operations in app.openapi()["paths"].items()
        if path.endswith("/card")
        for method in operations
    }
    assert methods == {"get"}


def _points(score: dict[str, Any], test: str) -> tuple[float, str]:
    found = {t["id"]: t for s in score["sections"].values() for t in s["tests"]}[test]
    return found["points"], found["how"]


def test_score_attest_and_withdraw(world: ServerProcess) -> None:
    cli = world.cli
    score = as_json(cli("model", "score", MODEL, "--json"))
    assert (score["model"], score["version"], score["endpoints"]) == (MODEL, 1, [ENDPOINT])
    assert _points(score, "data-1") == (1.0, "automated")
    assert _points(score, "data-2") == (0.0, "none")
    table = cli("model", "score", MODEL).stdout
    assert "Feature expectations are captured in a schema" in table
    assert f"{score['final']:g} {score['band']}" in table

    attest = ["model", "attest", MODEL, "data-2", "--evidence", EVIDENCE, "--note", "ablation"]
    attested = as_json(cli(*attest, "--json"))
    assert (attested["test"], attested["attested_by"]) == ("data-2", "admin")
    with world.client() as client:
        after = client.test_score(MODEL)
        assert _points(after, "data-2") == (0.5, "attested")
        assert after["sections"]["data"]["score"] == score["sections"]["data"]["score"] + 0.5
        with pytest.raises(ValidationFailed) as bad_url:
            client.attest(MODEL, "data-3", evidence_url="file:///etc/passwd", note="x")
        assert bad_url.value.details[0]["field"] == "evidence_url"

    bad_test = [*attest[:3], "data-9", *attest[4:]]
    line = assert_clean_failure(cli(*bad_test, check=False), "invalid_field")
    assert "test" in line and "data-1" in line
    assert "withdrew" in cli("model", "attest", MODEL, "data-2", "--withdraw").stdout
    with world.client() as client:
        assert _points(client.test_score(MODEL), "data-2") == (0.0, "none")
        with pytest.raises(NotFound):
            client.withdraw_attestation(MODEL, "data-2")
        actions = [e["action"] for e in client.audit_events(target=MODEL)]
    assert actions.count("testscore.attest") == 1 and actions.count("testscore.withdraw") == 1


def test_review_and_the_inventory(world: ServerProcess, tmp_path: Path) -> None:
    cli = world.cli
    with world.client() as client:
        before = {r["name"]: r for r in client.inventory()}
    assert before[MODEL]["deployed"] == [f"{ENDPOINT} (v1, primary)"]
    assert before[MODEL]["last_review"] is None and before[OTHER]["deployed"] == []

    reviewed = as_json(cli("model", "review", MODEL, "--notes", "Quarterly check: fine.", "--json"))
    assert (reviewed["model"], reviewed["reviewer"]) == (MODEL, "admin")
    with world.client() as client:
        with pytest.raises(ValidationFailed) as empty:
            client.review_model(MODEL, notes="  ")
        assert empty.value.details[0]["field"] == "notes"
        assert [r["id"] for r in client.list_reviews(MODEL)] == [reviewed["id"]]

    table = cli("model", "list").stdout
    for column in ("owner", "risk_tier", "deployed", "next_review", "overdue", "test_score"):
        assert column in table
    assert MODEL in table and ENDPOINT in table

    exported = cli("model", "list", "--export", "csv").stdout
    rows = {r["name"]: r for r in csv.DictReader(io.StringIO(exported))}
    assert rows[MODEL]["last_review"] == reviewed["created_at"]
    assert rows[MODEL]["deployed"] == f"{ENDPOINT} (v1, primary)"
    assert rows[MODEL]["overdue"] == "false" and rows[OTHER]["risk_tier"] == "low"
    target = tmp_path / "inventory.json"
    cli("model", "list", "--export", "json", "--owner", "finance", "--output", str(target))
    assert [r["name"] for r in json.loads(target.read_text())] == [OTHER]
    assert_clean_failure(cli("model", "list", "--export", "xlsx", check=False), "bad_request")


def test_a_model_scoped_reader_sees_only_its_models_in_the_inventory(world: ServerProcess) -> None:
    with world.client() as admin:
        admin.create_principal("card-reader")
        admin.create_grant("card-reader", "viewer", scope_kind="model", scope_name=OTHER)
        token = admin.create_token("card-reader")["token"]
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=world.url, headers=headers) as http:
        deadline = time.monotonic() + 10
        while (response := http.get("/api/v1/inventory")).status_code == 401:
            assert time.monotonic() < deadline, "the new token never resolved"
            time.sleep(0.1)
        assert [r["name"] for r in response.json()["models"]] == [OTHER]
        exported = http.get("/api/v1/inventory", params={"format": "csv"})
        assert exported.headers["content-type"].startswith("text/csv")
        assert [r["name"] for r in csv.DictReader(io.StringIO(exported.text))] == [OTHER]
        check_error_response(
            http.get(f"/api/v1/models/{MODEL}/test-score"), 403, "forbidden", secrets=[token]
        )
        forbidden = http.post(f"/api/v1/models/{OTHER}/reviews", json={"notes": "mine"})
        check_error_response(forbidden, 403, "forbidden", secrets=[token])
