"""Fixtures for the HTTP API tests: a server with small body limits, the error-shape check,
and a tiny real scikit-learn model saved with skops."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ServerProcess, make_server

# Nothing from the inside of the server may reach a response body.
LEAKS = ("Traceback", "/work/", ".py", "sqlite", "SELECT")

ErrorCheck = Callable[..., dict[str, Any]]


def check_error_response(
    response: httpx.Response,
    status: int,
    code: str,
    *,
    secrets: Iterable[str] = (),
) -> dict[str, Any]:
    """Assert ``response`` is the one JSON error shape with ``status``/``code``; return it."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error", "request_id"}, body
    assert set(body["error"]) == {"code", "message", "details"}, body
    assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"], body
    assert isinstance(body["error"]["details"], list), body
    assert body["request_id"], body
    assert response.headers["x-request-id"] == body["request_id"]
    for leak in (*LEAKS, *secrets):
        assert leak not in response.text, (leak, response.text)
    return body


@pytest.fixture
def check_error() -> ErrorCheck:
    return check_error_response


@pytest.fixture(scope="session")
def limited_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server that accepts at most 1 MiB of JSON and 1 MiB of artifact."""
    proc = make_server(
        tmp_path_factory.mktemp("limited") / "home",
        SLIPWAY_MAX_REQUEST_MB="1",
        SLIPWAY_MAX_UPLOAD_MB="1",
    )
    proc.init()
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
def skops_artifact(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A two-feature logistic regression as skops bytes, with its signature and rows."""
    import numpy as np
    import skops.io
    from sklearn.linear_model import LogisticRegression

    X = np.array([[0.0, 0.0], [1.0, 1.0], [0.0, 1.0], [1.0, 0.0]] * 5)
    y = np.array(["no", "yes", "no", "yes"] * 5)
    path = Path(tmp_path_factory.mktemp("model")) / "model.skops"
    skops.io.dump(LogisticRegression().fit(X, y), path)
    rows = [{"x0": 0.0, "x1": 0.5}, {"x0": 1.0, "x1": 1.0}]
    signature = {"inputs": [{"name": "x0", "type": "float"}, {"name": "x1", "type": "float"}]}
    return {"artifact": path.read_bytes(), "signature": signature, "example_rows": rows}
