"""Roles x routes: every route, called by every role and by an anonymous caller, answers
as the declared policy (``ROLE_PERMISSIONS``, ``Principal.can``) says it must.

One real server holds two models (``A`` deployed to endpoint ``E``, ``B`` to ``F``), a
principal per role, a few scoped principals and throwaway objects for the routes that
destroy something (retire, disable, revoke). Expectations are computed from the policy
itself, never from a table here, so the test fails as soon as code and policy diverge:

    anonymous                      -> 401 (public paths: 200 without a token)
    policy says no                 -> 403 with the error shape
    policy says yes                -> neither 401 nor 403 (and never a 5xx)

Mutating routes get bodies that are harmless or invalid-but-authorized: a 422 proves the
request got past authorization without changing anything.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from slipway.access.authz import ROLE_PERMISSIONS, Grant, Permission, Principal
from slipway.api.app import create_app
from slipway.api.auth import PUBLIC_PATHS
from slipway.settings import Settings
from tests.api.conftest import check_error_response
from tests.api.test_routes_declare_permissions import permissions, walk
from tests.conftest import ServerProcess, make_server

pytestmark = pytest.mark.e2e

MODEL_A, MODEL_B = "matrix-a", "matrix-b"
ENDPOINT_E, ENDPOINT_F = "matrix-e", "matrix-f"
SCRATCH_MODEL = "matrix-scratch-model"  # POST /models/{name}/retire retires this one
SCRATCH_VERSIONED = "matrix-scratch-versioned"  # .../versions/1/retire retires its v1
SCRATCH_PRINCIPAL = "matrix-scratch-user"  # disabled and enabled again
ROWS = [{"x0": 0.0, "x1": 0.5}, {"x0": 1.0, "x1": 1.0}]
SIGNATURE = {"inputs": [{"name": "x0", "type": "float"}, {"name": "x1", "type": "float"}]}
V2_INPUTS = [{"name": "x", "shape": [2, 2], "datatype": "FP64", "data": [0.0, 0.5, 1.0, 1.0]}]


# -- the routes, as the app declares them ---------------------------------------------


@dataclass(frozen=True)
class Call:
    method: str
    path: str  # the template, e.g. /api/v1/models/{name}
    permission: Permission | None  # None: a public path


def _calls() -> list[Call]:
    app = create_app(Settings({"home": "/nonexistent-unused"}, environ={}))
    found = []
    for route in walk(app.routes):
        declared = permissions(route)
        assert len(set(declared)) <= 1, (route.path, declared)
        for method in route.methods:
            if method == "HEAD":
                continue
            found.append(Call(method, route.path, declared[0] if declared else None))
    return found


CALLS = _calls()
PROTECTED = [c for c in CALLS if c.path not in PUBLIC_PATHS]
MUTATING = {"POST", "PUT", "PATCH", "DELETE"}


def _id(call: Call) -> str:
    return f"{call.method} {call.path}"


# -- a world to call them in ----------------------------------------------------------


@dataclass
class World:
    server: ServerProcess
    tokens: dict[str, str] = field(default_factory=dict)  # caller -> secret
    principals: dict[str, Principal] = field(default_factory=dict)  # caller -> policy view
    prediction_id: str = ""
    revoke_token_id: str = ""
    rotate_token_id: str = ""
    grant_id: str = ""
    # One client per caller for the whole module: a new httpx.Client builds an SSL
    # context (about 30 ms), and the matrix sends some 1,600 requests.
    clients: dict[str | None, httpx.Client] = field(default_factory=dict)

    def http(self, caller: str | None) -> httpx.Client:
        if caller not in self.clients:
            headers = {"Authorization": f"Bearer {self.tokens[caller]}"} if caller else {}
            self.clients[caller] = httpx.Client(
                base_url=self.server.url, headers=headers, timeout=120
            )
        return self.clients[caller]

    def close(self) -> None:
        for client in self.clients.values():
            client.close()


def _artifact(tmp: Path) -> bytes:
    import numpy as np
    import skops.io
    from sklearn.linear_model import LogisticRegression

    X = np.array([[0.0, 0.0], [1.0, 1.0], [0.0, 1.0], [1.0, 0.0]] * 5)
    y = np.array(["no", "yes", "no", "yes"] * 5)
    path = tmp / "model.skops"
    skops.io.dump(LogisticRegression().fit(X, y), path)
    return path.read_bytes()


def _register(client: Any, model: str, artifact: bytes) -> None:
    client.create_model(model, owner="matrix")
    version = client.register_version(
        model, artifact=artifact, flavor="sklearn", signature=SIGNATURE, example_rows=ROWS
    )
    assert version["status"] == "ready", version


def _principal(
    world: World,
    client: Any,
    caller: str,
    grants: list[Grant],
    *,
    kind: str = "user",
    scopes: Sequence[str] = (),
) -> None:
    """Create ``caller`` with ``grants`` and a token; remember how the policy sees it."""
    client.create_principal(caller, kind=kind, owner="matrix" if kind == "service" else "")
    for g in grants:
        client.create_grant(caller, g.role, scope_kind=g.scope_kind, scope_name=g.scope_name)
    issued = client.create_token(caller, scopes=list(scopes) or None)
    world.tokens[caller] = issued["token"]
    world.principals[caller] = Principal(caller, issued["id"], tuple(grants), frozenset(scopes))


def _role_grant(role: str) -> Grant:
    # Service accounts (the predictor role) only ever hold it on a named endpoint.
    return Grant(role, "endpoint", ENDPOINT_E) if role == "predictor" else Grant(role)


ROLE_CALLERS = {role: f"role-{role}" for role in ROLE_PERMISSIONS}
# Narrower callers, exercised over both the objects they cover and the ones they do not.
SCOPED: dict[str, tuple[list[Grant], str, list[str]]] = {
    "dev-on-a": ([Grant("developer", "model", MODEL_A)], "user", []),
    "operator-on-e": ([Grant("operator", "endpoint", ENDPOINT_E)], "user", []),
    "predictor-on-e": ([Grant("predictor", "endpoint", ENDPOINT_E)], "service", []),
    "admin-read-models": ([Grant("admin")], "user", ["model:read"]),
}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("matrix")
    server = make_server(tmp / "home")
    server.init()
    server.start()
    w = World(server)
    try:
        client = server.client()
        artifact = _artifact(tmp)
        for model in (MODEL_A, MODEL_B, SCRATCH_VERSIONED):
            _register(client, model, artifact)
        client.create_model(SCRATCH_MODEL, owner="matrix")
        client.deploy(ENDPOINT_E, model=MODEL_A, version=1)
        client.deploy(ENDPOINT_F, model=MODEL_B, version=1)
        predicted = client.predict(ENDPOINT_E, ROWS)
        w.prediction_id = predicted["predictions"][0]["id"]

        for role, caller in ROLE_CALLERS.items():
            kind = "service" if role == "predictor" else "user"
            _principal(w, client, caller, [_role_grant(role)], kind=kind)
        for caller, (grants, kind, scopes) in SCOPED.items():
            _principal(w, client, caller, grants, kind=kind, scopes=scopes)

        client.create_principal(SCRATCH_PRINCIPAL)
        w.revoke_token_id = client.create_token(SCRATCH_PRINCIPAL, name="to-revoke")["id"]
        w.rotate_token_id = client.create_token(SCRATCH_PRINCIPAL, name="to-rotate")["id"]
        w.grant_id = client.create_grant(SCRATCH_PRINCIPAL, "viewer")["id"]
        client.close()
        # New tokens reach the server's token snapshot within its refresh interval (1 s).
        deadline = time.monotonic() + 10
        for caller in w.tokens:
            while w.http(caller).get("/api/v1/models").status_code == 401:
                assert time.monotonic() < deadline, f"token of {caller} never resolved"
                time.sleep(0.1)
        yield w
    finally:
        w.close()
        server.stop()


# -- one request per route ------------------------------------------------------------

# Every mutating route needs an entry here: a body that changes nothing (invalid, so a
# 422 shows authorization passed) or a target that is a throwaway object. A new mutating
# route without one fails test_every_mutating_route_has_a_harmless_request.
BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/api/v1/models"): {"json": {}},
    ("PATCH", "/api/v1/models/{name}"): {"json": {"risk_tier": "not-a-tier"}},
    ("POST", "/api/v1/models/{name}/retire"): {},
    ("POST", "/api/v1/artifacts"): {
        "content": b"matrix: harmless bytes, stored once",
        "headers": {"Content-Type": "application/octet-stream"},
    },
    ("POST", "/api/v1/models/{name}/versions"): {"json": {}},
    ("POST", "/api/v1/models/{name}/versions/{number}/retire"): {},
    ("POST", "/api/v1/endpoints/{name}/deploy"): {"json": {"model": MODEL_A, "version": 0}},
    ("PUT", "/api/v1/endpoints/{name}/limits"): {"json": {"max_inflight": 0}},
    ("POST", "/v1/endpoints/{endpoint}/predict"): {"json": {"inputs": ROWS}},
    ("POST", "/v2/models/{endpoint}/infer"): {"json": {"inputs": V2_INPUTS}},
    ("POST", "/api/v1/principals"): {"json": {}},
    ("POST", "/api/v1/principals/{principal}/disable"): {},
    ("POST", "/api/v1/principals/{principal}/enable"): {},
    ("POST", "/api/v1/tokens"): {"json": {}},
    ("POST", "/api/v1/tokens/{token_id}/revoke"): {"json": {"reason": "matrix"}},
    ("POST", "/api/v1/tokens/{token_id}/rotate"): {"json": {"overlap_s": 0}},
    ("POST", "/api/v1/grants"): {"json": {}},
    ("POST", "/api/v1/grants/{grant_id}/revoke"): {},
    # Replaying an id that is not quarantined replays nothing.
    ("POST", "/api/v1/endpoints/{endpoint}/quarantine/replay"): {"json": {"ids": ["0" * 32]}},
    ("POST", "/api/v1/endpoints/{endpoint}/feedback"): {"json": {"items": []}},
    ("POST", "/api/v1/endpoints/{endpoint}/monitors"): {"json": {"metric": "not-a-metric"}},
    ("PATCH", "/api/v1/endpoints/{endpoint}/monitors/{monitor}"): {"json": {"severity": "x"}},
    ("DELETE", "/api/v1/endpoints/{endpoint}/monitors/{monitor}"): {},  # no such monitor
    ("POST", "/api/v1/endpoints/{endpoint}/monitors/evaluate"): {},  # judges, changes no rule
    ("POST", "/api/v1/alerts/{alert_id}/resolve"): {"json": {}},
    ("POST", "/api/v1/channels"): {"json": {}},
    ("DELETE", "/api/v1/channels/{channel}"): {},  # no such channel
    ("POST", "/api/v1/channels/{channel}/test"): {},
    # Traffic plans and rollouts: invalid bodies (422) change nothing.
    ("PUT", "/api/v1/endpoints/{name}/traffic"): {"json": {"canary": None, "weight": 150}},
    ("POST", "/api/v1/endpoints/{name}/rollback"): {"json": {"reason": 123}},
    ("POST", "/api/v1/endpoints/{name}/stop"): {"json": {"reason": ""}},
    ("POST", "/api/v1/endpoints/{name}/resume"): {"json": {"reason": 123}},
    ("POST", "/api/v1/endpoints/{name}/rollout"): {"json": {"version": 0}},
    ("POST", "/api/v1/endpoints/{name}/rollout/pause"): {"json": {"reason": 123}},
    ("POST", "/api/v1/endpoints/{name}/rollout/resume"): {"json": {"reason": 123}},
    ("POST", "/api/v1/endpoints/{name}/rollout/promote"): {"json": {"reason": 123}},
    ("POST", "/api/v1/endpoints/{name}/rollout/abort"): {"json": {"reason": 123}},
    ("PUT", "/api/v1/analysis-templates/{template}"): {"json": {"checks": {"nope": {}}}},
    ("DELETE", "/api/v1/analysis-templates/{template}"): {},  # no such template
    # -- governance: evaluations and approvals
    ("POST", "/api/v1/models/{name}/versions/{number}/evaluations"): {"json": {"metrics": {}}},
    ("POST", "/api/v1/models/{name}/versions/{number}/approvals"): {"json": {"note": 5}},
    # An empty rationale is refused (422) before the (dummy) approval is looked up.
    ("POST", "/api/v1/approvals/{approval_id}/approve"): {"json": {"rationale": ""}},
    ("POST", "/api/v1/approvals/{approval_id}/reject"): {"json": {"rationale": ""}},
    # -- governance: policies
    # Unreadable YAML (422) stores nothing; there is no such policy to delete (404); a
    # check without its version (422) is refused before anything is read.
    ("PUT", "/api/v1/policies/{policy}"): {"json": {"source": "checks: [unclosed"}},
    ("DELETE", "/api/v1/policies/{policy}"): {},
    ("POST", "/api/v1/policies/check"): {"json": {"model": MODEL_A, "endpoint": ENDPOINT_E}},
    # -- governance: model cards, ML Test Score, inventory, reviews
    # An unknown test id and empty notes are refused (422); a test never attested: 404.
    ("POST", "/api/v1/models/{name}/test-score/attestations"): {
        "json": {"test": "data-9", "evidence_url": "https://example.org/e", "note": "matrix"}
    },
    ("DELETE", "/api/v1/models/{name}/test-score/attestations/{test}"): {},
    ("POST", "/api/v1/models/{name}/reviews"): {"json": {"notes": ""}},
    # -- governance: retention, legal hold, overrides
    # A dry run deletes nothing; an empty reason and a missing one are refused (422).
    ("POST", "/api/v1/retention/purge"): {"json": {"dry_run": True}},
    ("POST", "/api/v1/models/{name}/hold"): {"json": {"reason": ""}},
    ("POST", "/api/v1/models/{name}/release"): {"json": {"reason": ""}},
    ("POST", "/api/v1/predictions/{prediction_id}/override"): {"json": {"label": 1}},
}
# Routes that destroy what they name get a throwaway object instead of A/B/E/F.
THROWAWAY_NAME = {
    ("POST", "/api/v1/models/{name}/retire"): SCRATCH_MODEL,
    ("POST", "/api/v1/models/{name}/versions/{number}/retire"): SCRATCH_VERSIONED,
}


def _params(call: Call, world: World, *, other: bool) -> dict[str, str]:
    """Real values for the route's path parameters; ``other``: the second model and
    endpoint (B, F) instead of the first (A, E)."""
    model, endpoint = (MODEL_B, ENDPOINT_F) if other else (MODEL_A, ENDPOINT_E)
    on_endpoints = call.path.startswith("/api/v1/endpoints/")
    values = {
        "name": THROWAWAY_NAME.get((call.method, call.path))
        or (endpoint if on_endpoints else model),
        "endpoint": endpoint,
        "number": "1",
        "record_id": world.prediction_id,
        "principal": SCRATCH_PRINCIPAL,
        "token_id": world.rotate_token_id
        if call.path.endswith("/rotate")
        else world.revoke_token_id,
        "grant_id": world.grant_id,
        "quarantine_id": "0" * 32,  # authorized callers get 404, the others 401/403
        "alert_id": "0" * 32,
        "monitor": "matrix-no-such-monitor",
        "channel": "matrix-no-such-channel",
        "template": "matrix-no-such-template",
        # -- governance (one line per path parameter a governance route adds)
        "policy": "matrix-no-such-policy",
        "approval_id": "0" * 32,  # authorized callers get 404 (or 422), the others 403
        "prediction_id": world.prediction_id,
        "test": "monitor-1",  # never attested in the matrix: authorized callers get 404
    }
    names = re.findall(r"\{(\w+)\}", call.path)
    unknown = [n for n in names if not values.get(n)]
    assert not unknown, f"no value for path parameter(s) {unknown} of {_id(call)}"
    return {n: values[n] for n in names}


def _target(params: dict[str, str]) -> str | None:
    # The object a route acts on is its {name} or {endpoint} parameter (api/auth.require).
    return params.get("name") or params.get("endpoint")


def _send(world: World, caller: str | None, call: Call, *, other: bool = False) -> httpx.Response:
    params = _params(call, world, other=other)
    url = call.path.format(**params)
    return world.http(caller).request(call.method, url, **BODIES.get((call.method, call.path), {}))


def _check(world: World, caller: str, call: Call, *, other: bool = False) -> str:
    """Send ``call`` as ``caller``; assert the policy's answer; return allowed/denied."""
    assert call.permission is not None
    principal = world.principals[caller]
    target = _target(_params(call, world, other=other))
    allowed = principal.can(call.permission, target)
    response = _send(world, caller, call, other=other)
    where = (caller, _id(call), target, response.status_code, response.text[:300])
    assert response.status_code < 500, where
    if allowed:
        assert response.status_code not in (401, 403), where
        return "allowed"
    check_error_response(response, 403, "forbidden", secrets=list(world.tokens.values()))
    return "denied"


# -- the matrix -----------------------------------------------------------------------


def test_every_mutating_route_has_a_harmless_request() -> None:
    missing = [
        _id(c) for c in PROTECTED if c.method in MUTATING and (c.method, c.path) not in BODIES
    ]
    assert missing == []


def test_every_role_has_a_caller() -> None:
    assert set(ROLE_CALLERS) == set(ROLE_PERMISSIONS)


@pytest.mark.parametrize("call", [c for c in CALLS if c.path in PUBLIC_PATHS], ids=_id)
def test_public_paths_answer_without_a_token(world: World, call: Call) -> None:
    response = _send(world, None, call)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("call", PROTECTED, ids=_id)
def test_anonymous_gets_401(world: World, call: Call) -> None:
    response = _send(world, None, call)
    check_error_response(response, 401, "unauthenticated", secrets=list(world.tokens.values()))


@pytest.mark.parametrize("role", list(ROLE_PERMISSIONS))
@pytest.mark.parametrize("call", PROTECTED, ids=_id)
def test_role_matrix(world: World, call: Call, role: str) -> None:
    _check(world, ROLE_CALLERS[role], call)


def test_the_matrix_is_not_vacuous() -> None:
    """Every protected route is allowed to some role and denied to another (else the
    matrix above would prove nothing about it) — by the declared policy."""
    for call in PROTECTED:
        assert call.permission is not None
        holders = {r for r, perms in ROLE_PERMISSIONS.items() if call.permission in perms}
        assert holders and holders != set(ROLE_PERMISSIONS), _id(call)


@pytest.mark.parametrize("other", [False, True], ids=["own-objects", "other-objects"])
@pytest.mark.parametrize("caller", list(SCOPED))
@pytest.mark.parametrize("call", PROTECTED, ids=_id)
def test_scoped_matrix(world: World, call: Call, caller: str, other: bool) -> None:
    _check(world, caller, call, other=other)


# -- the scoped grants, spelled out ---------------------------------------------------


def _status(world: World, caller: str, method: str, path: str, **kwargs: Any) -> int:
    return world.http(caller).request(method, path, **kwargs).status_code


def test_developer_on_a_model_can_change_it_but_not_another(world: World) -> None:
    edit = {"json": {"description": "edited by its developer"}}
    assert _status(world, "dev-on-a", "GET", f"/api/v1/models/{MODEL_A}") == 200
    assert _status(world, "dev-on-a", "PATCH", f"/api/v1/models/{MODEL_A}", **edit) == 200
    assert _status(world, "dev-on-a", "GET", f"/api/v1/models/{MODEL_B}") == 403
    assert _status(world, "dev-on-a", "PATCH", f"/api/v1/models/{MODEL_B}", **edit) == 403
    versions_b = f"/api/v1/models/{MODEL_B}/versions"
    assert _status(world, "dev-on-a", "POST", versions_b, json={}) == 403
    assert _status(world, "dev-on-a", "POST", f"/api/v1/models/{MODEL_A}/versions", json={}) == 422
    # A grant on one model does not let it create others.
    new = {"json": {"name": "matrix-new", "owner": "x"}}
    assert _status(world, "dev-on-a", "POST", "/api/v1/models", **new) == 403


def test_operator_on_an_endpoint_can_deploy_it_but_not_another(world: World) -> None:
    for endpoint, expected in [(ENDPOINT_E, 200), (ENDPOINT_F, 403)]:
        body = {"json": {"model": MODEL_A if endpoint == ENDPOINT_E else MODEL_B, "version": 1}}
        path = f"/api/v1/endpoints/{endpoint}/deploy"
        assert _status(world, "operator-on-e", "POST", path, **body) == expected, endpoint
    assert _status(world, "operator-on-e", "GET", f"/api/v1/endpoints/{ENDPOINT_E}") == 200
    assert _status(world, "operator-on-e", "GET", f"/api/v1/endpoints/{ENDPOINT_F}") == 403


def test_predictor_service_account_predicts_on_its_endpoint_only(world: World) -> None:
    body = {"json": {"inputs": ROWS}}
    assert (
        _status(world, "predictor-on-e", "POST", f"/v1/endpoints/{ENDPOINT_E}/predict", **body)
        == 200
    )
    assert (
        _status(world, "predictor-on-e", "POST", f"/v1/endpoints/{ENDPOINT_F}/predict", **body)
        == 403
    )
    v2 = {"json": {"inputs": V2_INPUTS}}
    assert _status(world, "predictor-on-e", "POST", f"/v2/models/{ENDPOINT_E}/infer", **v2) == 200
    assert _status(world, "predictor-on-e", "POST", f"/v2/models/{ENDPOINT_F}/infer", **v2) == 403
    # Predicting is all it may do, even on its own endpoint.
    assert _status(world, "predictor-on-e", "GET", f"/api/v1/endpoints/{ENDPOINT_E}") == 403


def test_a_token_scoped_to_model_read_narrows_an_admin(world: World) -> None:
    caller = "admin-read-models"
    assert _status(world, caller, "GET", "/api/v1/models") == 200
    assert _status(world, caller, "GET", f"/api/v1/models/{MODEL_A}") == 200
    new = {"json": {"name": "matrix-by-scoped", "owner": "x"}}
    assert _status(world, caller, "POST", "/api/v1/models", **new) == 403
    edit = {"json": {"description": "x"}}
    assert _status(world, caller, "PATCH", f"/api/v1/models/{MODEL_A}", **edit) == 403
    assert _status(world, caller, "GET", "/api/v1/principals") == 403
    assert _status(world, caller, "GET", "/api/v1/endpoints") == 403


def test_service_accounts_hold_only_predictor_on_named_endpoints(world: World) -> None:
    headers = {"Authorization": f"Bearer {world.server.token}"}
    with httpx.Client(base_url=world.server.url, headers=headers, timeout=120) as http:
        response = http.post(
            "/api/v1/principals", json={"name": "matrix-svc", "kind": "service", "owner": "ml"}
        )
        assert response.status_code == 201, response.text
        refused = [{"role": role, "scope_kind": "global"} for role in ROLE_PERMISSIONS] + [
            {"role": "viewer", "scope_kind": "endpoint", "scope_name": ENDPOINT_E},
            {"role": "operator", "scope_kind": "endpoint", "scope_name": ENDPOINT_E},
            {"role": "predictor", "scope_kind": "model", "scope_name": MODEL_A},
        ]
        for grant in refused:
            response = http.post("/api/v1/grants", json={"principal": "matrix-svc", **grant})
            check_error_response(response, 422, "invalid_field")
        ok = {"role": "predictor", "scope_kind": "endpoint", "scope_name": ENDPOINT_E}
        response = http.post("/api/v1/grants", json={"principal": "matrix-svc", **ok})
        assert response.status_code == 201, response.text
        # And a service account needs an owner.
        response = http.post("/api/v1/principals", json={"name": "matrix-svc2", "kind": "service"})
        check_error_response(response, 422, "invalid_field")


def test_an_endpoint_scoped_reader_cannot_read_another_endpoints_predictions(
    world: World,
) -> None:
    with world.server.client() as client:
        on_f = client.predict(ENDPOINT_F, ROWS)["predictions"][0]["id"]
    assert _status(world, "operator-on-e", "GET", f"/api/v1/predictions/{on_f}") == 403
