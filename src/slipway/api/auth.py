"""Authentication and the per-route permission declaration.

Every route but health declares ``Depends(require(Permission.X))``. ``require`` returns a
dependency marked with the permission, so a test can walk the routes and fail on any
route that declares none (default deny).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Request

from slipway.access.authz import Permission, Principal, authorize
from slipway.errors import Unauthenticated
from slipway.runtime import Runtime

PUBLIC_PATHS = frozenset(
    {"/healthz", "/readyz", "/v2/health/live", "/v2/health/ready", "/openapi.json"}
)


def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def authenticate(request: Request) -> Principal:
    raw = request.headers.get("authorization", "")
    scheme, _, token = raw.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthenticated("missing bearer token (Authorization: Bearer slw_...)")
    info = runtime_of(request).tokens.resolve(token.strip())
    if info is None:
        raise Unauthenticated("invalid or revoked token")
    return Principal(name=info.principal, role=info.role, token_id=info.id)


def require(permission: Permission) -> Callable[[Request], Awaitable[Principal]]:
    async def dependency(request: Request) -> Principal:
        principal = authenticate(request)
        target = request.path_params.get("name") or request.path_params.get("endpoint")
        authorize(principal, permission, target)
        request.state.principal = principal
        return principal

    dependency.permission = permission  # type: ignore[attr-defined]
    return dependency
