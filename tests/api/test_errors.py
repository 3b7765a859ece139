"""One JSON error shape, with the right status, everywhere (DESIGN.md §4).

    {"error": {"code", "message", "details"}, "request_id"}   + the x-request-id header

and never a stack trace, a path, SQL or the caller's token in a response.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from slipway.api.app import create_app
from slipway.settings import Settings

MB = 1024 * 1024


@pytest.fixture(scope="module")
def http(limited_server: Any) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {limited_server.token}"}
    with httpx.Client(base_url=limited_server.url, headers=headers, timeout=60) as client:
        yield client


@pytest.fixture
def check(limited_server: Any, check_error: Any) -> Any:
    def run(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
        body: dict[str, Any] = check_error(
            response, status, code, secrets=[limited_server.token, str(limited_server.home)]
        )
        return body

    return run


JSON = {"content-type": "application/json"}


# -- 400 -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/api/v1/models", "/api/v1/endpoints/x/deploy", "/v1/endpoints/x/predict"]
)
@pytest.mark.parametrize("body", [b"{not json", b'{"inputs": ', b"\xff\xfe", b'{"inputs": [}'])
def test_malformed_json_is_400(http: httpx.Client, check: Any, path: str, body: bytes) -> None:
    body_json = check(http.post(path, content=body, headers=JSON), 400, "bad_request")
    assert "JSON" in body_json["error"]["message"]


def test_truncated_predict_body_with_unknown_key_is_400(http: httpx.Client, check: Any) -> None:
    check(http.post("/v1/endpoints/x/predict", content=b'{"name": "a",'), 400, "bad_request")


def test_empty_predict_body_is_400(http: httpx.Client, check: Any) -> None:
    check(http.post("/v1/endpoints/x/predict", content=b""), 400, "bad_request")


# -- 404 / 405 -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "payload"),
    [
        ("GET", "/api/v1/models/no-such-model", None),
        ("PATCH", "/api/v1/models/no-such-model", {"description": "x"}),
        ("POST", "/api/v1/models/no-such-model/retire", None),
        ("GET", "/api/v1/models/no-such-model/versions", None),
        ("GET", "/api/v1/endpoints/no-such-endpoint", None),
        ("POST", "/api/v1/endpoints/e/deploy", {"model": "no-such-model", "version": 1}),
        ("POST", "/v1/endpoints/no-such-endpoint/predict", {"inputs": [{"a": 1}]}),
        ("GET", "/v2/models/no-such-endpoint", None),
        ("GET", "/api/v1/predictions/no-such-record", None),
    ],
)
def test_unknown_things_are_404(
    http: httpx.Client, check: Any, method: str, path: str, payload: Any
) -> None:
    body = check(http.request(method, path, json=payload), 404, "not_found")
    assert "no-such" in body["error"]["message"]


@pytest.mark.parametrize("path", ["/nope", "/api/v1/nope", "/api/v2/models"])
def test_unknown_route_is_404(http: httpx.Client, check: Any, path: str) -> None:
    body = check(http.get(path), 404, "not_found")
    assert path in body["error"]["message"]


def test_unknown_route_is_404_for_anonymous_callers_too(limited_server: Any, check: Any) -> None:
    check(httpx.get(f"{limited_server.url}/nope", timeout=30), 404, "not_found")


def test_wrong_method_is_405(http: httpx.Client, check: Any) -> None:
    check(http.delete("/api/v1/models"), 405, "method_not_allowed")


# -- 409 -------------------------------------------------------------------------------


def test_duplicate_model_name_is_409(http: httpx.Client, check: Any) -> None:
    first = http.post("/api/v1/models", json={"name": "dupe", "owner": "team-a"})
    assert first.status_code == 201, first.text
    body = check(
        http.post("/api/v1/models", json={"name": "dupe", "owner": "team-b"}), 409, "conflict"
    )
    assert "dupe" in body["error"]["message"]
    # The first one is untouched.
    assert http.get("/api/v1/models/dupe").json()["owner"] == "team-a"


# -- 413 -------------------------------------------------------------------------------


def _big_json() -> bytes:
    return json.dumps({"name": "big", "owner": "x", "description": "d" * (2 * MB)}).encode()


def _chunks(data: bytes, size: int = 256 * 1024) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


@pytest.mark.parametrize("path", ["/api/v1/models", "/v1/endpoints/x/predict"])
def test_oversized_json_with_content_length_is_413(
    http: httpx.Client, check: Any, path: str
) -> None:
    body = check(http.post(path, content=_big_json(), headers=JSON), 413, "payload_too_large")
    assert str(MB) in body["error"]["message"]


@pytest.mark.parametrize("path", ["/api/v1/models", "/v1/endpoints/x/predict"])
def test_oversized_chunked_json_is_413(http: httpx.Client, check: Any, path: str) -> None:
    request = http.build_request("POST", path, content=_chunks(_big_json()), headers=JSON)
    assert "content-length" not in request.headers
    assert request.headers["transfer-encoding"] == "chunked"
    check(http.send(request), 413, "payload_too_large")
    assert http.get("/api/v1/models/big").status_code == 404


def test_json_just_under_the_limit_is_accepted(http: httpx.Client) -> None:
    payload = {"name": "under", "owner": "x", "description": "d" * (MB - 1024)}
    response = http.post("/api/v1/models", json=payload)
    assert response.status_code == 201, response.text[:300]


# -- 422 -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"name": "Not A Slug", "owner": "x"}, "name"),
        ({"name": "-leading-dash", "owner": "x"}, "name"),
        ({"name": "x" * 65, "owner": "x"}, "name"),
        ({"name": "no-owner"}, "owner"),
        ({"name": "blank-owner", "owner": ""}, "owner"),
        ({"name": "tier", "owner": "x", "risk_tier": "extreme"}, "risk_tier"),
        ({"name": "extra", "owner": "x", "colour": "blue"}, "colour"),
        ({"name": "tags", "owner": "x", "tags": "not-a-list"}, "tags"),
        ({"name": "runbook", "owner": "x", "runbook_url": "ftp://example"}, "runbook_url"),
    ],
)
def test_invalid_field_is_422_naming_it(
    http: httpx.Client, check: Any, payload: dict[str, Any], field: str
) -> None:
    body = check(http.post("/api/v1/models", json=payload), 422, "invalid_field")
    assert field in [d["field"] for d in body["error"]["details"]], body
    assert body["error"]["message"].startswith(field)


def test_invalid_update_is_422(http: httpx.Client, check: Any) -> None:
    assert http.post("/api/v1/models", json={"name": "upd", "owner": "x"}).status_code == 201
    body = check(http.patch("/api/v1/models/upd", json={"status": "retired"}), 422, "invalid_field")
    assert body["error"]["details"][0]["field"] == "status"


def test_invalid_predict_body_is_422(http: httpx.Client, check: Any) -> None:
    body = check(
        http.post("/v1/endpoints/x/predict", json={"inputs": "nope"}), 422, "invalid_field"
    )
    assert body["error"]["details"][0]["field"] == "inputs"


def test_unknown_predict_field_is_422_naming_it(http: httpx.Client, check: Any) -> None:
    body = check(
        http.post("/v1/endpoints/x/predict", json={"inputs": [{"a": 1}], "colour": "blue"}),
        422,
        "invalid_field",
    )
    assert body["error"]["details"][0]["field"] == "colour"


def test_invalid_path_parameter_is_422(http: httpx.Client, check: Any) -> None:
    body = check(http.get("/api/v1/models/m/versions/abc"), 422, "invalid_field")
    assert body["error"]["details"][0]["field"] == "number"


# -- 401 and the request id ------------------------------------------------------------


def test_401_has_the_shape_and_a_challenge(limited_server: Any, check: Any) -> None:
    response = httpx.get(f"{limited_server.url}/api/v1/models", timeout=30)
    check(response, 401, "unauthenticated")
    assert response.headers["www-authenticate"] == "Bearer"


def test_a_plain_caller_request_id_is_echoed(http: httpx.Client, check: Any) -> None:
    response = http.get("/api/v1/models/no-such-model", headers={"x-request-id": "trace-42"})
    assert check(response, 404, "not_found")["request_id"] == "trace-42"
    ok = http.get("/api/v1/models", headers={"x-request-id": "trace-43"})
    assert ok.headers["x-request-id"] == "trace-43"


@pytest.mark.parametrize("bad_id", ["x" * 65, "has space", "new\\nline", "<script>"])
def test_an_unsafe_caller_request_id_is_replaced(
    http: httpx.Client, check: Any, bad_id: str
) -> None:
    response = http.get("/api/v1/models/no-such-model", headers={"x-request-id": bad_id})
    body = check(response, 404, "not_found")
    assert body["request_id"] != bad_id


def test_request_ids_differ(http: httpx.Client) -> None:
    ids = {http.get("/api/v1/models").headers["x-request-id"] for _ in range(5)}
    assert len(ids) == 5


# -- 500: unexpected errors say nothing about the inside --------------------------------


def test_unexpected_error_is_a_generic_500_with_the_request_id(
    tmp_path: Path, check_error: Any, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(Settings({"home": str(tmp_path)}, environ={}))

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("at /work/main/src/x.py: SELECT * FROM sqlite_master")

    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.get("/boom")

    with caplog.at_level(logging.ERROR, logger="slipway.api"):
        response = asyncio.run(call())
    body = check_error(response, 500, "internal")
    assert body["error"]["message"] == "internal error; see the server log"
    # The details go to the log, under the same request id.
    logged = [r for r in caplog.records if body["request_id"] in r.getMessage()]
    assert logged and logged[0].exc_info is not None
