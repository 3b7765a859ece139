"""/api/v1/models/{name}/versions: register (and smoke-test) immutable versions."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from slipway.access.authz import Permission, Principal
from slipway.api.auth import actor_of, require, runtime_of
from slipway.api.routes import MAX_INT32, PROTECTED, errors
from slipway.artifacts.sandbox import smoke_test
from slipway.audit import Actor
from slipway.errors import NotFound
from slipway.registry.versions import Version
from slipway.runtime import Runtime

VERSION_NUMBER = Path(ge=1, le=MAX_INT32, description="The version number (from 1).")
router = APIRouter(prefix="/api/v1/models/{name}/versions", tags=["versions"], responses=PROTECTED)


class VersionRegister(BaseModel):
    model_config = ConfigDict(extra="forbid")
    artifact_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    flavor: str = Field(min_length=1, max_length=32)
    signature: dict[str, Any]
    contract: dict[str, Any] | None = None
    # The reference profile (sketches of the training data), built by the SDK.
    profile: dict[str, Any] | None = None
    example_rows: list[dict[str, Any]] = Field(min_length=1)
    lineage: dict[str, Any] = {}
    trusted_types: list[str] = []
    description: str = ""
    library_versions: dict[str, str] = {}


def verify(runtime: Runtime, version: Version, actor: Actor) -> Version:
    """Smoke-test ``version`` in a sandbox process; mark it ready or failed."""
    settings = runtime.settings
    data = runtime.artifacts.read_verified(version.artifact_sha256, version.artifact_size)
    result = smoke_test(
        data,
        sha256=version.artifact_sha256,
        flavor=version.flavor,
        spec=version.load_spec(settings.trusted_pyfunc_modules),
        signature=version.signature,
        example_rows=version.example_rows,
        memory_mb=settings.sandbox_memory_mb,
        timeout_s=settings.sandbox_timeout_s,
    )
    if result.ok:
        return runtime.versions.set_status(version, "ready", actor=actor)
    return runtime.versions.set_status(version, "failed", result.reason, actor=actor)


@router.post("", status_code=201, responses=errors(400, 404, 409))
async def register_version(
    name: str,
    body: VersionRegister,
    request: Request,
    principal: Principal = Depends(require(Permission.VERSION_REGISTER)),
) -> dict[str, Any]:
    runtime = runtime_of(request)
    version = await run_in_threadpool(
        runtime.versions.register, name, actor=actor_of(request), **body.model_dump()
    )
    version = await run_in_threadpool(verify, runtime, version, actor_of(request))
    return version.to_dict()


@router.get("", responses=errors(404))
async def list_versions(
    name: str,
    request: Request,
    status: str | None = None,
    _: Principal = Depends(require(Permission.MODEL_READ)),
) -> dict[str, Any]:
    found = await run_in_threadpool(runtime_of(request).versions.list, name, status=status)
    return {"versions": [v.to_dict() for v in found]}


@router.get("/{number}", responses=errors(404))
async def show_version(
    name: str,
    request: Request,
    number: int = VERSION_NUMBER,
    _: Principal = Depends(require(Permission.MODEL_READ)),
) -> dict[str, Any]:
    version = await run_in_threadpool(runtime_of(request).versions.get, name, number)
    return version.to_dict(with_examples=True)


@router.post("/{number}/retire", responses=errors(404, 409))
async def retire_version(
    name: str,
    request: Request,
    number: int = VERSION_NUMBER,
    _: Principal = Depends(require(Permission.VERSION_REGISTER)),
) -> dict[str, Any]:
    version = await run_in_threadpool(
        runtime_of(request).versions.retire, name, number, actor=actor_of(request)
    )
    return version.to_dict()


@router.get("/{number}/profile", responses=errors(404))
async def show_profile(
    name: str,
    request: Request,
    number: int = VERSION_NUMBER,
    _: Principal = Depends(require(Permission.MODEL_READ)),
) -> dict[str, Any]:
    """The version's reference profile: sketches of its training data (404 if none)."""
    version = await run_in_threadpool(runtime_of(request).versions.get, name, number)
    if version.profile is None:
        raise NotFound(f"version {number} of {name!r} has no reference profile")
    return version.profile
