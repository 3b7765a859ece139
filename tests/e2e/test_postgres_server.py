"""The same server, end to end, with its store on PostgreSQL (SLIPWAY_DATABASE_URL)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import make_server

pytestmark = pytest.mark.postgres


def test_server_on_postgres_registers_deploys_predicts_and_survives_restart(
    tmp_path: Path, postgres_url: str
) -> None:
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    X, y = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=500).fit(X, y)
    server = make_server(tmp_path / "home", SLIPWAY_DATABASE_URL=postgres_url)
    server.init()
    assert not (server.home / "slipway.db").exists()  # nothing went to SQLite
    server.start()
    try:
        with server.client() as client:
            version = client.register(model, name="iris", owner="o", X_train=X, y_train=y)
            assert version["status"] == "ready", version["status_reason"]
            client.deploy("iris", model="iris", version=version["number"])
            rows = [{f"f{i}": float(v) for i, v in enumerate(x)} for x in X[:3]]
            answer = client.predict("iris", rows)
            assert [p["prediction"] for p in answer["predictions"]] == model.predict(X[:3]).tolist()
        server.stop()
        server.start()  # the deployment is read back from PostgreSQL on start
        with server.client() as client:
            again = client.predict("iris", rows)
            assert again["version"] == version["number"]
            assert client.list_predictions("iris")["total"] == 2
    finally:
        server.stop()


def test_values_postgres_cannot_store_are_422_not_500(tmp_path: Path, postgres_url: str) -> None:
    import httpx

    server = make_server(tmp_path / "home", SLIPWAY_DATABASE_URL=postgres_url)
    server.init()
    server.start()
    try:
        auth = {"Authorization": f"Bearer {server.token}"}
        created = httpx.post(
            f"{server.url}/api/v1/models", headers=auth, json={"name": "nul", "owner": "x\u0000y"}
        )
        listed = httpx.get(f"{server.url}/api/v1/models", headers=auth, params={"owner": "x\x00"})
        for response in (created, listed):
            assert response.status_code == 422, response.text
            body = response.json()
            assert body["error"]["code"] == "invalid_field"
            assert "SELECT" not in response.text and "INSERT" not in response.text
    finally:
        server.stop()
