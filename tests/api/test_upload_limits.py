"""Artifact uploads: capped by SLIPWAY_MAX_UPLOAD_MB whether the size is declared or the body
is streamed, content-addressed, pickles refused, and nothing left behind on refusal."""

from __future__ import annotations

import hashlib
import os
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

MB = 1024 * 1024


@pytest.fixture(scope="module")
def http(limited_server: Any) -> Iterator[httpx.Client]:
    headers = {
        "Authorization": f"Bearer {limited_server.token}",
        "Content-Type": "application/octet-stream",
    }
    with httpx.Client(base_url=limited_server.url, headers=headers, timeout=60) as client:
        yield client


def _stored(home: Path) -> list[str]:
    return sorted(p.name for p in (home / "artifacts" / "sha256").rglob("*") if p.is_file())


def _temp_files(home: Path) -> list[str]:
    return os.listdir(home / "artifacts" / "tmp")


def _chunks(data: bytes, size: int = 128 * 1024) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def test_upload_under_the_limit_is_stored_by_hash(http: httpx.Client, limited_server: Any) -> None:
    data = os.urandom(MB - 1)
    response = http.post("/api/v1/artifacts", content=data)
    assert response.status_code == 201, response.text
    digest = hashlib.sha256(data).hexdigest()
    assert response.json() == {"sha256": digest, "size": len(data)}
    assert digest in _stored(limited_server.home)
    # The same bytes again, streamed this time: the same answer, still one copy.
    again = http.post("/api/v1/artifacts", content=_chunks(data))
    assert again.status_code == 201
    assert again.json() == {"sha256": digest, "size": len(data)}
    assert _stored(limited_server.home).count(digest) == 1
    assert _temp_files(limited_server.home) == []


def test_upload_of_exactly_the_limit_is_accepted(http: httpx.Client) -> None:
    response = http.post("/api/v1/artifacts", content=_chunks(os.urandom(MB)))
    assert response.status_code == 201, response.text
    assert response.json()["size"] == MB


def test_oversized_upload_with_content_length_is_413(
    http: httpx.Client, limited_server: Any, check_error: Any
) -> None:
    before = _stored(limited_server.home)
    data = os.urandom(2 * MB)
    request = http.build_request("POST", "/api/v1/artifacts", content=data)
    assert request.headers["content-length"] == str(2 * MB)
    body = check_error(http.send(request), 413, "payload_too_large")
    assert str(MB) in body["error"]["message"]
    assert _stored(limited_server.home) == before
    assert _temp_files(limited_server.home) == []


def test_oversized_streamed_upload_is_413(
    http: httpx.Client, limited_server: Any, check_error: Any
) -> None:
    before = _stored(limited_server.home)
    request = http.build_request("POST", "/api/v1/artifacts", content=_chunks(os.urandom(2 * MB)))
    assert "content-length" not in request.headers
    assert request.headers["transfer-encoding"] == "chunked"
    check_error(http.send(request), 413, "payload_too_large")
    assert _stored(limited_server.home) == before
    assert _temp_files(limited_server.home) == []


@pytest.mark.parametrize("streamed", [False, True])
def test_pickle_upload_is_refused_and_not_stored(
    http: httpx.Client, limited_server: Any, check_error: Any, streamed: bool
) -> None:
    before = _stored(limited_server.home)
    data = pickle.dumps({"weights": list(range(1000))}, protocol=4)
    content: Any = _chunks(data, 512) if streamed else data
    body = check_error(http.post("/api/v1/artifacts", content=content), 422, "unsafe_artifact")
    assert "pickle" in body["error"]["message"].lower()
    assert _stored(limited_server.home) == before
    assert _temp_files(limited_server.home) == []


def test_upload_needs_a_token(limited_server: Any, check_error: Any) -> None:
    response = httpx.post(f"{limited_server.url}/api/v1/artifacts", content=b"abc", timeout=30)
    check_error(response, 401, "unauthenticated")


def test_json_limit_does_not_apply_to_artifacts_but_upload_limit_does(
    http: httpx.Client, check_error: Any
) -> None:
    # Both limits are 1 MiB here; the artifact answer names the *upload* limit.
    body = check_error(
        http.post("/api/v1/artifacts", content=os.urandom(MB + 1)), 413, "payload_too_large"
    )
    assert "upload limit" in body["error"]["message"]
