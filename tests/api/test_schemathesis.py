"""Property-based run of the control API (/api/v1/...) against its own OpenAPI schema.

schemathesis generates valid and invalid requests for every control operation, sends
them to a real server as the admin, and checks each answer: never a 5xx, only status
codes the schema documents, the documented content type and response shape.

Bounded: a few examples per operation (``MAX_EXAMPLES``), so the run stays well under a
minute and a half. Cases that would lock the admin out (revoking its token or grant,
disabling it) are not sent; everything else, including the destructive operations, runs
on whatever generated names and ids they pick.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from slipway.api.app import create_app
from slipway.settings import Settings
from tests.conftest import ServerProcess

pytestmark = pytest.mark.e2e

MAX_EXAMPLES = int(os.environ.get("SLIPWAY_SCHEMATHESIS_EXAMPLES", "15"))
# A deeper local run: SLIPWAY_SCHEMATHESIS_EXAMPLES=200 SLIPWAY_SCHEMATHESIS_RANDOM=1
DERANDOMIZE = not os.environ.get("SLIPWAY_SCHEMATHESIS_RANDOM")
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def admin(shared_server: ServerProcess) -> dict[str, Any]:
    """The admin's name, token id and grant ids: what no generated case may touch."""
    with shared_server.client() as client:
        tokens = [t for t in client.list_tokens() if t["principal"] == "admin"]
        grants = client.list_grants("admin")
    assert tokens and grants
    return {
        "principal": "admin",
        "token_id": {t["id"] for t in tokens},
        "grant_id": {g["id"] for g in grants},
    }


@pytest.fixture(scope="module")
def control_api(shared_server: ServerProcess) -> Any:
    return schemathesis.openapi.from_url(f"{shared_server.url}/openapi.json", timeout=30)


def _control_operations() -> list[tuple[str, str]]:
    # The same app, built in-process, names the operations (the server is not up yet
    # when tests are collected); test_every_operation_is_exercised checks they agree.
    app = create_app(Settings({"home": "/nonexistent-unused"}, environ={}))
    return [
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        if path.startswith("/api/v1/")
        for method in operations
    ]


OPERATIONS = _control_operations()


def _locks_out_the_admin(path_parameters: dict[str, Any], admin: dict[str, Any]) -> bool:
    return (
        path_parameters.get("principal") == admin["principal"]
        or path_parameters.get("token_id") in admin["token_id"]
        or path_parameters.get("grant_id") in admin["grant_id"]
    )


# schemathesis' own pytest integration (``schemathesis.pytest.from_fixture``) does not
# run under pytest 9 (it sets ``Function._nodeid``); its Python API does: one Hypothesis
# run per operation and generation mode.
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=str)
@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_control_api_conforms_to_its_schema(
    control_api: Any,
    shared_server: ServerProcess,
    admin: dict[str, Any],
    method: str,
    path: str,
    mode: GenerationMode,
) -> None:
    operation = control_api[path][method]
    headers = {"Authorization": f"Bearer {shared_server.token}"}

    @given(case=operation.as_strategy(mode))
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=DERANDOMIZE,
        database=None,
    )
    def run(case: Any) -> None:
        if _locks_out_the_admin(case.path_parameters or {}, admin):
            return
        case.call_and_validate(headers=headers, checks=CHECKS, timeout=60)

    try:
        run()
    except Unsatisfiable:
        # Nothing in this operation can be made invalid (no parameters, or only free
        # strings): there is no negative case to send.
        if mode is not GenerationMode.NEGATIVE:
            raise


def test_every_operation_is_exercised(control_api: Any) -> None:
    served = {
        (method.upper(), path)
        for path, operations in control_api.raw_schema["paths"].items()
        if path.startswith("/api/v1/")
        for method in operations
    }
    assert served == set(OPERATIONS)


def test_the_schema_documents_the_error_shape(control_api: Any) -> None:
    raw = control_api.raw_schema
    assert "ErrorResponse" in raw["components"]["schemas"]
    for path, operations in raw["paths"].items():
        if not path.startswith("/api/v1/"):
            continue
        for method, operation in operations.items():
            for status in ("401", "403", "422", "429"):
                assert status in operation["responses"], (method, path, status)
