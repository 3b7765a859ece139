"""Default deny: every route but the public health ones declares a permission, and every
non-public route refuses an anonymous caller or a bad token with 401."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute, Route

from slipway.access.authz import Permission
from slipway.access.tokens import new_token_string, token_looks_valid
from slipway.api.app import create_app
from slipway.api.auth import PUBLIC_PATHS
from slipway.settings import Settings

PUBLIC = {"/healthz", "/readyz", "/v2/health/live", "/v2/health/ready", "/openapi.json"}


def _build_app(home: Path) -> FastAPI:
    # Routes exist as soon as the app is built; the store is only touched by the lifespan.
    return create_app(Settings({"home": str(home)}, environ={}))


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> FastAPI:
    return _build_app(tmp_path_factory.mktemp("routes"))


@dataclass(frozen=True)
class RouteInfo:
    path: str
    methods: tuple[str, ...]
    kind: str  # the type of the route as registered: APIRoute, Route, Mount...
    dependant: Any  # fastapi Dependant, or None for a route that cannot have one


def walk(routes: list[BaseRoute]) -> list[RouteInfo]:
    """Every route the app serves, with included routers flattened.

    Newer FastAPI keeps included routers as lazy entries in ``app.routes``;
    ``iter_route_contexts`` resolves them (with the router's prefix and dependencies).
    """
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # older FastAPI: app.routes is already flat
        contexts: list[Any] = list(routes)
    else:
        contexts = list(iter_route_contexts(routes))
    found = []
    for ctx in contexts:
        original = getattr(ctx, "original_route", ctx)
        found.append(
            RouteInfo(
                path=str(getattr(ctx, "path", None) or repr(original)),
                methods=tuple(sorted(getattr(ctx, "methods", None) or ())),
                kind=type(original).__name__,
                dependant=getattr(ctx, "dependant", None)
                if isinstance(original, APIRoute)
                else None,
            )
        )
    return found


def permissions(route: RouteInfo) -> list[Permission]:
    """Every permission declared anywhere in the route's dependency tree."""
    found: list[Permission] = []
    stack = list(route.dependant.dependencies) if route.dependant is not None else []
    while stack:
        dep = stack.pop()
        permission = getattr(dep.call, "permission", None)
        if permission is not None:
            found.append(permission)
        stack.extend(dep.dependencies)
    return found


def routes_without_permission(routes: list[BaseRoute]) -> list[str]:
    """``METHODS path`` of every route that is neither public nor declares a permission.

    A plain Starlette route or a mount has no dependencies to declare one with, so it
    counts as missing too.
    """
    return [
        f"{','.join(r.methods) or r.kind} {r.path}"
        for r in walk(routes)
        if r.path not in PUBLIC and not permissions(r)
    ]


def test_public_paths_are_exactly_the_health_routes() -> None:
    assert set(PUBLIC_PATHS) == PUBLIC


def test_every_non_public_route_declares_a_permission(app: FastAPI) -> None:
    assert routes_without_permission(app.routes) == []


def test_public_routes_exist_and_declare_none(app: FastAPI) -> None:
    public = {r.path: r for r in walk(app.routes) if r.path in PUBLIC}
    assert set(public) == PUBLIC
    for route in public.values():
        assert permissions(route) == [], route.path


def test_the_walk_sees_every_route(app: FastAPI) -> None:
    paths = {(m, r.path) for r in walk(app.routes) for m in r.methods}
    # A sample across every router, so a walk that skips included routers fails here.
    for expected in [
        ("POST", "/api/v1/models"),
        ("PATCH", "/api/v1/models/{name}"),
        ("POST", "/api/v1/artifacts"),
        ("POST", "/api/v1/models/{name}/versions"),
        ("POST", "/api/v1/endpoints/{name}/deploy"),
        ("GET", "/api/v1/predictions/{record_id}"),
        ("POST", "/v1/endpoints/{endpoint}/predict"),
        ("POST", "/v2/models/{endpoint}/infer"),
        ("GET", "/metrics"),
    ]:
        assert expected in paths
    for route in walk(app.routes):
        assert all(isinstance(p, Permission) for p in permissions(route)), route.path


def test_the_check_fails_for_a_route_without_permission(tmp_path: Path) -> None:
    app = _build_app(tmp_path)

    @app.get("/api/v1/forgotten")
    async def forgotten() -> dict[str, Any]:
        return {}

    async def plain(request: Any) -> Any:
        return None

    app.router.routes.append(Route("/api/v1/plain", plain))
    router = APIRouter(prefix="/api/v1/nested")

    @router.post("/thing")
    async def nested() -> dict[str, Any]:
        return {}

    app.include_router(router)
    assert sorted(routes_without_permission(app.routes)) == [
        "GET /api/v1/forgotten",
        "GET,HEAD /api/v1/plain",
        "POST /api/v1/nested/thing",
    ]


# -- every non-public route answers 401 ------------------------------------------------


def _concrete(path: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: "1" if m.group(1) == "number" else "x", path)


def _non_public_calls() -> list[tuple[str, str]]:
    app = create_app(Settings({"home": "/nonexistent-unused"}, environ={}))
    return [
        (method, _concrete(route.path))
        for route in walk(app.routes)
        if route.path not in PUBLIC
        for method in route.methods
        if method != "HEAD"
    ]


NON_PUBLIC = _non_public_calls()

BAD_CREDENTIALS = {
    "anonymous": None,
    "garbage": "Bearer slw_" + "garbage!" * 5,
    "never-issued": f"Bearer {new_token_string()}",
    "not-bearer": "Basic YWRtaW46YWRtaW4=",
    "bearer-no-token": "Bearer",
}


def test_the_never_issued_token_is_well_formed() -> None:
    assert token_looks_valid(BAD_CREDENTIALS["never-issued"].removeprefix("Bearer "))


@pytest.mark.parametrize("credential", sorted(BAD_CREDENTIALS))
def test_non_public_routes_refuse_bad_credentials(
    shared_server: Any, check_error: Any, credential: str
) -> None:
    header = BAD_CREDENTIALS[credential]
    headers = {"Authorization": header} if header else {}
    with httpx.Client(base_url=shared_server.url, timeout=30) as http:
        for method, path in NON_PUBLIC:
            response = http.request(method, path, headers=headers)
            check_error(response, 401, "unauthenticated", secrets=[shared_server.token])
            assert response.headers["www-authenticate"] == "Bearer", (method, path)


def test_a_valid_token_passes_authentication(shared_server: Any) -> None:
    # Guards the test above: the same calls with the real token never answer 401.
    headers = {"Authorization": f"Bearer {shared_server.token}"}
    with httpx.Client(base_url=shared_server.url, timeout=30) as http:
        for method, path in NON_PUBLIC:
            response = http.request(method, path, headers=headers)
            assert response.status_code != 401, (method, path, response.text)


@pytest.mark.parametrize("path", sorted(PUBLIC))
def test_public_routes_need_no_token(shared_server: Any, path: str) -> None:
    response = httpx.get(shared_server.url + path, timeout=30)
    assert response.status_code == 200, response.text
    assert response.headers["x-request-id"]
