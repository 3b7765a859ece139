"""Artifact safety end to end: pickles refused, tampered bytes never served, versions
that fail their smoke test never deployed."""

from __future__ import annotations

import io
import json
import pickle
from pathlib import Path
from typing import Any

import httpx
import joblib
import pytest

from slipway import errors

pytestmark = pytest.mark.e2e


def _stored_artifacts(home: Path) -> list[Path]:
    return [p for p in (home / "artifacts" / "sha256").rglob("*") if p.is_file()]


def _pickles(model: Any, tmp_path: Path) -> dict[str, bytes]:
    plain = tmp_path / "model.joblib"
    joblib.dump(model, plain)
    compressed = tmp_path / "model.joblib.z"
    joblib.dump(model, compressed, compress=3)
    buf = io.BytesIO()
    joblib.dump(model, buf)
    return {
        "pickle.dumps": pickle.dumps(model),
        "pickle protocol 0": pickle.dumps(model, protocol=0),
        "joblib.dump file": plain.read_bytes(),
        "joblib.dump compressed": compressed.read_bytes(),
    }


def test_pickles_are_refused_and_nothing_is_registered(
    server: Any, logreg: Any, iris: Any, e2e: Any, tmp_path: Path
) -> None:
    signature = {"inputs": [{"name": f, "type": "float"} for f in e2e.FEATURES]}
    with server.client() as client:
        client.create_model("pickled", owner="ml-team")
        for what, data in _pickles(logreg, tmp_path).items():
            with pytest.raises(errors.UnsafeArtifact) as raised:
                client.upload_artifact(data)
            assert raised.value.status == 422, what
            assert "skops" in raised.value.message, what
            assert "ONNX" in raised.value.message, what

            # The full SDK path (upload, then register) is refused just the same.
            with pytest.raises(errors.UnsafeArtifact):
                client.register_version(
                    "pickled",
                    artifact=data,
                    flavor="sklearn",
                    signature=signature,
                    example_rows=e2e.rows_of(iris.X[:2]),
                )

        # The raw HTTP answer has the error shape and code.
        r = httpx.post(
            f"{server.url}/api/v1/artifacts",
            content=pickle.dumps(logreg),
            headers={
                "Authorization": f"Bearer {server.token}",
                "Content-Type": "application/octet-stream",
            },
        )
        assert r.status_code == 422
        assert r.json()["error"]["code"] == "unsafe_artifact"

        assert client.list_versions("pickled") == []
    assert _stored_artifacts(server.home) == []
    assert list((server.home / "artifacts" / "tmp").iterdir()) == []


def _two_versions(server: Any, iris: Any, e2e: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    with server.client() as client:
        v1 = e2e.register_logreg(client, "iris", iris, e2e.train_logreg(iris, C=1.0))
        v2 = e2e.register_logreg(client, "iris", iris, e2e.train_logreg(iris, C=0.05))
    assert (v1["number"], v1["status"]) == (1, "ready")
    assert (v2["number"], v2["status"]) == (2, "ready")
    assert v1["artifact_sha256"] != v2["artifact_sha256"]
    return v1, v2


def test_tampered_artifact_is_refused_and_previous_version_keeps_serving(
    server: Any, iris: Any, e2e: Any
) -> None:
    v1, v2 = _two_versions(server, iris, e2e)
    row = e2e.rows_of(iris.X[:1])
    with server.client() as client:
        client.deploy("iris", model="iris", version=1)
        assert client.predict("iris", row)["version"] == 1

        path = e2e.artifact_file(server.home, v2["artifact_sha256"])
        assert path.is_file()
        e2e.flip_byte(path)

        with pytest.raises(errors.ArtifactIntegrityError) as raised:
            client.deploy("iris", model="iris", version=2)
        assert raised.value.status == 409
        assert "hash mismatch" in raised.value.message
        assert str(server.home) not in raised.value.message  # no server paths leak

        answer = client.predict("iris", row)
        assert answer["version"] == 1
        assert answer["predictions"][0]["version"] == 1
        shown = client.get_endpoint("iris")
        assert shown["version"] == 1
        assert shown["serving_version"] == 1
        assert shown["generation"] == 1
    assert httpx.get(f"{server.url}/readyz").status_code == 200


def test_restart_with_tampered_deployed_artifact_reports_unavailable(
    server: Any, iris: Any, e2e: Any
) -> None:
    v1, _ = _two_versions(server, iris, e2e)
    row = e2e.rows_of(iris.X[:1])
    with server.client() as client:
        client.deploy("iris", model="iris", version=1)
        assert client.predict("iris", row)["version"] == 1

    server.stop()  # exit status is test_shutdown.py's concern
    e2e.flip_byte(e2e.artifact_file(server.home, v1["artifact_sha256"]))
    server.start()

    assert httpx.get(f"{server.url}/healthz").json() == {"status": "ok"}
    auth = {"Authorization": f"Bearer {server.token}"}
    r = httpx.post(f"{server.url}/v1/endpoints/iris/predict", json={"inputs": row}, headers=auth)
    assert r.status_code == 503, r.text
    assert r.json()["error"]["code"] == "unavailable"
    tensor = {"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [5.1, 3.5, 1.4, 0.2]}
    r = httpx.post(f"{server.url}/v2/models/iris/infer", json={"inputs": [tensor]}, headers=auth)
    assert r.status_code == 503, r.text

    r = httpx.get(f"{server.url}/readyz")
    assert (r.status_code, r.json()) == (503, {"ready": False})
    r = httpx.get(f"{server.url}/v2/health/ready")
    assert (r.status_code, r.json()) == (503, {"ready": False})
    r = httpx.get(f"{server.url}/v2/models/iris/ready", headers=auth)
    assert (r.status_code, r.json()["ready"]) == (503, False)

    with server.client() as client:
        shown = client.get_endpoint("iris")
        assert shown["version"] == 1
        assert shown["serving_version"] is None
        assert "hash mismatch" in shown["load_error"]
        # Nothing was served, so nothing was recorded.
        assert client.list_predictions("iris")["total"] == 1
    assert "hash mismatch" in server.log()


def test_version_failing_its_smoke_test_is_failed_and_not_deployable(
    server: Any, logreg: Any, iris: Any, e2e: Any
) -> None:
    import skops.io

    with server.client() as client:
        client.create_model("mismatch", owner="ml-team")
        # The model takes 4 features; the signature (and examples) give it 3.
        three = e2e.FEATURES[:3]
        v = client.register_version(
            "mismatch",
            artifact=skops.io.dumps(logreg),
            flavor="sklearn",
            signature={"inputs": [{"name": f, "type": "float"} for f in three]},
            example_rows=[dict(zip(three, map(float, r[:3]), strict=True)) for r in iris.X[:3]],
        )
        assert v["status"] == "failed"
        assert v["status_reason"]
        assert str(server.home) not in v["status_reason"]
        assert client.get_version("mismatch", v["number"])["status"] == "failed"
        with pytest.raises(errors.Conflict) as raised:
            client.deploy("mismatch", model="mismatch", version=v["number"])
        assert raised.value.status == 409
        assert "failed" in raised.value.message

        # pyfunc code the server does not trust never reaches "ready".
        client.create_model("untrusted", owner="ml-team")
        doc = {"class": "os.path:Whatever", "init": {}}
        v = client.register_version(
            "untrusted",
            artifact=json.dumps(doc).encode(),
            flavor="pyfunc",
            signature={"inputs": [{"name": "x", "type": "float"}]},
            example_rows=[{"x": 1.0}],
        )
        assert v["status"] == "failed"
        assert "not trusted" in v["status_reason"]
        with pytest.raises(errors.Conflict):
            client.deploy("untrusted", model="untrusted", version=v["number"])

        # Neither endpoint came into being.
        names = {e["name"] for e in client.list_endpoints()}
        assert not names & {"mismatch", "untrusted"}
        with pytest.raises(errors.NotFound):
            client.get_endpoint("mismatch")
    assert httpx.get(f"{server.url}/readyz").status_code == 200
